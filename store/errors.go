package store

import (
	"errors"
	"fmt"
)

// ErrClosed is returned by an operation on an engine or store that has been
// closed.
var ErrClosed = errors.New("store: closed")

// OpenIteratorsError is returned by Close when iterators are still open: the
// engine stays open so that the caller can close them and try again.
type OpenIteratorsError struct {
	// Engine describes the engine ("memory" or the LevelDB directory).
	Engine string
	// Open is the number of iterators not yet closed.
	Open int
}

// Error implements error.
func (e *OpenIteratorsError) Error() string {
	return fmt.Sprintf("store: cannot close engine %s: %d iterator(s) still open (close every iterator first)", e.Engine, e.Open)
}
