package metrics

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Registry collects the measurements of the Apps registered with it.
// Its methods are safe for concurrent use. The zero value is not usable;
// call NewRegistry.
type Registry struct {
	mu      sync.Mutex
	sources []*source
}

type source struct {
	appID   string
	collect func(*AppSnapshot)
}

// NewRegistry returns an empty Registry.
func NewRegistry() *Registry { return &Registry{} }

// ErrDuplicateApp is wrapped by Register's error when an App of the same
// application id is registered already.
var ErrDuplicateApp = errors.New("metrics: an App of this application id is registered already")

// Register adds a source of measurements for the application
// applicationID: Snapshot calls collect to fill the application's
// AppSnapshot (ApplicationID is set before the call). topology.NewApp
// registers every App configured with this Registry; programs rarely call
// it themselves. It returns a func that removes the source (App.Close
// calls it), and an error wrapping ErrDuplicateApp when applicationID is
// registered already: its series would be indistinguishable from the
// other App's.
func (r *Registry) Register(applicationID string, collect func(*AppSnapshot)) (unregister func(), err error) {
	if r == nil {
		return nil, errors.New("metrics: Register on a nil Registry")
	}
	if collect == nil {
		return nil, errors.New("metrics: Register needs a collect func")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.sources {
		if s.appID == applicationID {
			return nil, fmt.Errorf("%w: %q (two instances of one application in one process need a Registry each)", ErrDuplicateApp, applicationID)
		}
	}
	s := &source{appID: applicationID, collect: collect}
	r.sources = append(r.sources, s)
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.sources = slices.DeleteFunc(r.sources, func(x *source) bool { return x == s })
		})
	}, nil
}

// Snapshot returns the measurements of every registered App, by
// application id. It does not block on the Apps' processing: counters are
// read atomically and the gauges come from what the Apps last saw (end
// offsets are refreshed in the background every few seconds).
func (r *Registry) Snapshot() Snapshot {
	r.mu.Lock()
	srcs := slices.Clone(r.sources)
	r.mu.Unlock()
	out := Snapshot{Apps: make([]AppSnapshot, 0, len(srcs))}
	for _, s := range srcs {
		a := AppSnapshot{ApplicationID: s.appID}
		s.collect(&a)
		a.ApplicationID = s.appID
		out.Apps = append(out.Apps, a)
	}
	slices.SortFunc(out.Apps, func(a, b AppSnapshot) int { return strings.Compare(a.ApplicationID, b.ApplicationID) })
	return out
}
