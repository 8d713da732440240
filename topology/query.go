package topology

import (
	"net/http"

	"github.com/brookstream/brook/query"
)

// This file keeps the interactive-query entry points on App; the views,
// the HTTP handler, forwarding and their errors live in package query.

// QueryHandle hands package query the running side of the App (see
// query.App); the Handle is opaque and of no use elsewhere.
func (a *App) QueryHandle() query.Handle {
	if a == nil {
		return query.Handle{}
	}
	return query.NewHandle(a.rt)
}

// QueryHandler returns the http.Handler that serves the App's stores as
// JSON and forwards keys held by other instances to them; it is
// query.NewHandler(a, opts...). Serve it on the address given as
// Config.QueryEndpoint. See docs/QUERIES.md for the API.
func (a *App) QueryHandler(opts ...query.Option) http.Handler {
	return query.NewHandler(a, opts...)
}

// QueryKeyValue returns a read-only view of the key-value store named
// storeName of app, whose keys are K and values V; it is
// query.KeyValue[K, V](app, storeName, opts...). query.WithStaleReads
// lets the view read this instance's standby and warm-up copies.
func QueryKeyValue[K, V any](app *App, storeName string, opts ...query.ViewOption) (*query.KeyValueView[K, V], error) {
	return query.KeyValue[K, V](app, storeName, opts...)
}

// QueryWindow returns a read-only view of the window store named
// storeName of app, whose keys are K and values V; it is
// query.Window[K, V](app, storeName).
func QueryWindow[K, V any](app *App, storeName string) (*query.WindowView[K, V], error) {
	return query.Window[K, V](app, storeName)
}

// Instances returns every instance of the application with its tasks,
// from the current assignment, and its generation; false before the
// first assignment. It is query.Instances(a).
func (a *App) Instances() ([]query.Instance, int32, bool) { return query.Instances(a) }
