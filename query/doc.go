// Package query reads the state stores of a running brook application:
// interactive queries.
//
// From Go, KeyValue returns a typed, read-only view of one key-value store
// across the tasks of this instance; Get routes a key to its partition and
// says (*NotLocalError) which instance holds it when that is another one,
// or (*NotReadyError) that its task is still restoring. Window does the
// same for a window store: Fetch and FetchRange route a key's windows like
// Get, FetchAll reads this instance's windows in a time range. Over HTTP,
// NewHandler serves every store as JSON for the whole application: it
// answers keys (and a key's windows) held here, forwards the others to
// their owner, and gathers key ranges (and all windows in a time range)
// from every instance, paged in key order. docs/QUERIES.md is the full
// reference of the HTTP API.
//
// Stale reads: a view made WithStaleReads (and an HTTP key lookup with
// ?stale=true) may be answered by this instance's standby or warm-up copy
// of a task it does not run (Config.NumStandbyReplicas); GetFrom and the
// HTTP answer say which copy answered and its lag, and KeyMetadata lists
// the instances with copies.
//
// StatusOf (topology's App.Status) takes a snapshot of an instance for
// operators: its tasks and their states, per input partition the
// committed offset, position, log end offset and lag, restores, store
// sizes and recent warnings. The handler serves it as GET /status, and at
// GET /status/ui a status page that draws the topology and refreshes
// itself, compiled into the binary (statusui/) and loading nothing from
// the network; docs/OPERATIONS.md describes it.
//
// Package topology's App satisfies App, and keeps the same calls on
// itself: app.QueryHandler(opts...) is NewHandler(app, opts...),
// topology.QueryKeyValue is KeyValue and topology.QueryWindow is Window.
// This package never imports topology: it reaches the App's runtime
// through the opaque Handle.
//
// An unknown store name is brook's one *processor.UnknownStoreError (with
// an empty Node), and a view asked for with other key or value types, or
// of the other kind (a key-value view of a window store or the reverse),
// a *processor.StoreTypeError.
package query
