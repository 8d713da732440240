package store

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by an operation on an engine or store that has been
// closed.
var ErrClosed = errors.New("store: closed")

// OpenIteratorsError is returned by Close when iterators were still open: a
// leak (the code that made them forgot to close them). The engine is closed
// anyway; the leaked iterators fail from then on (Next returns false, Err
// returns ErrClosed).
type OpenIteratorsError struct {
	// Engine describes the engine ("memory" or the LevelDB directory).
	Engine string
	// Open is the number of iterators not yet closed.
	Open int
}

// Error implements error.
func (e *OpenIteratorsError) Error() string {
	return fmt.Sprintf("store: engine %s closed with %d iterator(s) still open: they leaked (every iterator must be closed) and fail from now on", e.Engine, e.Open)
}

// CorruptionError reports a persistent engine whose files are damaged (for
// the LevelDB engine of package store/leveldb: a truncated or overwritten
// file, a bad checksum, a missing table). The data cannot be
// trusted: wipe the directory and restore the store from its changelog,
// which Restore does by itself.
type CorruptionError struct {
	// Dir is the database directory.
	Dir string
	// Err is the error from the engine (goleveldb).
	Err error
}

// Error implements error.
func (e *CorruptionError) Error() string {
	return fmt.Sprintf("store: LevelDB in %s is corrupt: %v", e.Dir, e.Err)
}

// Unwrap returns the engine's error.
func (e *CorruptionError) Unwrap() error { return e.Err }

// ErrReadOnly is returned by writes to a store's query view (QueryView):
// only the task writes its stores.
var ErrReadOnly = errors.New("store: a query view is read-only")
