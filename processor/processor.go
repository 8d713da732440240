package processor

import (
	"log/slog"
	"time"
)

// Processor processes records of type Record[KIn,VIn] and forwards
// records of type Record[KOut,VOut] to its children.
//
// A task creates one Processor per node with the node's supplier, calls
// Init once before any record, Process for each record that reaches the
// node, and Close once when the task closes. All calls for one instance
// come from one goroutine, so a processor needs no locking. An error from
// Init or Close stops the task; an error from Process goes to the
// topology's processing-error handler.
type Processor[KIn, VIn, KOut, VOut any] interface {
	// Init prepares the processor: fetch stores, schedule punctuators.
	// It must not forward records (children may not be initialized yet).
	// ctx stays valid for the processor's lifetime.
	Init(ctx Context[KOut, VOut]) error
	// Process handles one record.
	Process(ctx Context[KOut, VOut], r Record[KIn, VIn]) error
	// Close releases what Init acquired. Stores are closed by the task.
	Close() error
}

// StoreProvider gives untyped access to the state stores connected to a
// processor node. Use the typed helpers ([KeyValueStore], and the window
// and TTL helpers) rather than calling it directly.
type StoreProvider interface {
	// StateStore returns the store named name, which must be connected
	// to the calling node, or an *UnknownStoreError.
	StateStore(name string) (any, error)
}

// Context is what a processor sees of its task: where to send records,
// punctuation, stores, record metadata, commit requests and logging.
//
// A Context must only be used from the processor's own calls (Init,
// Process, Close and its punctuators).
type Context[K, V any] interface {
	StoreProvider
	// Forward sends r to every child of the node, in the order the
	// children were added to the topology. It returns the first error a
	// child reported that the error handlers did not absorb.
	Forward(r Record[K, V]) error
	// ForwardTo sends r only to the child named child; it returns an
	// *UnknownChildError if the node has no such child.
	ForwardTo(child string, r Record[K, V]) error
	// Schedule calls fn every interval of stream time or of wall-clock
	// time (see [PunctuationType]) until the returned handle is
	// cancelled or the task closes. interval must be positive.
	Schedule(interval time.Duration, typ PunctuationType, fn Punctuator) (Cancellable, error)
	// RecordMetadata reports the topic, partition and offset of the
	// source record being processed. ok is false during punctuation.
	RecordMetadata() (md RecordMetadata, ok bool)
	// TaskID is the id of the task running this processor.
	TaskID() TaskID
	// NodeName is the name of this processor's node.
	NodeName() string
	// StreamTime is the largest record timestamp the task has seen,
	// including before a restart or rebalance (it is committed with the
	// task's offsets and restored when the task opens, before Init); zero
	// while unknown (a task that has never seen a timestamp).
	StreamTime() time.Time
	// WallClockTime is the task's wall-clock time: the runtime's clock, or
	// the TestDriver's fake clock.
	WallClockTime() time.Time
	// RequestCommit asks the runtime to commit the task as soon as
	// possible after the current record or punctuation: the task
	// processes no further record before that commit.
	RequestCommit()
	// Logger returns a logger that tags entries with the task and node.
	Logger() *slog.Logger
}

// PunctuationType selects the clock that drives a punctuator.
type PunctuationType int

const (
	// StreamTime punctuators fire as the task's stream time (the largest
	// record timestamp seen) passes each interval. The first one fires
	// with the first record after scheduling if stream time is still
	// unknown then, otherwise one interval after the stream time at
	// scheduling (for a punctuator scheduled in Init after a restart: one
	// interval after the restored stream time). When stream time jumps over several intervals the
	// punctuator fires once and its next due time moves past the new
	// stream time. Punctuation runs after the record that advanced stream
	// time has been processed.
	StreamTime PunctuationType = iota
	// WallClockTime punctuators fire as the wall clock passes each
	// interval: the runtime's clock, or the TestDriver's clock when the
	// test advances it. Missed intervals fire once, as for StreamTime.
	WallClockTime
)

// String returns "stream-time" or "wall-clock-time".
func (t PunctuationType) String() string {
	switch t {
	case StreamTime:
		return "stream-time"
	case WallClockTime:
		return "wall-clock-time"
	default:
		return "unknown"
	}
}

// Punctuator is called by a scheduled punctuation with the time that
// triggered it: the current stream time or wall-clock time. Its error goes
// to the processing-error handler like an error from Process.
type Punctuator func(timestamp time.Time) error

// Cancellable cancels a scheduled punctuator.
type Cancellable interface {
	// Cancel stops future calls of the punctuator. It is safe to call more
	// than once and from within the punctuator itself.
	Cancel()
}
