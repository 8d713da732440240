package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/store"
)

// GlobalSubTopology is the SubTopology of the processor.TaskID in the
// ErrorContext of a record of a global table's topic: such records belong
// to no task.
const GlobalSubTopology = -1

// Global is one global store of an application instance (a store whose
// StoreSpec.Global is set): every partition of its source topic in one
// engine, written by the instance's global reader (the runtime's, or the
// TestDriver's at once) and read by every task through View.
//
// Writes come from one goroutine (Add into a batch, then Batch.Write);
// reads may come from any number of others, which both engines allow
// (store.Engine).
type Global struct {
	// Spec is the store's declaration.
	Spec *StoreSpec
	// Engine holds the store's bytes: the topic's keys and values as they
	// are (the topic is the changelog).
	Engine store.Engine
	// Typed is the typed store over Engine, for interactive queries.
	Typed any
	// View is Spec.ReadOnly(Typed): what processors get.
	View any
}

// OpenGlobal builds the typed store and the read-only view of the global
// store spec over e, an engine the caller opened (and restored); the
// Global owns e from then on (Close).
func OpenGlobal(spec *StoreSpec, e store.Engine) (*Global, error) {
	if !spec.Global || spec.ReadOnly == nil || spec.Decode == nil {
		return nil, fmt.Errorf("task: store %q is not a global store", spec.Name)
	}
	typed, err := spec.Open(e, store.WithSerdeTopic(spec.SourceTopic))
	if err != nil {
		return nil, fmt.Errorf("task: open global store %q: %w", spec.Name, err)
	}
	return &Global{Spec: spec, Engine: e, Typed: typed, View: spec.ReadOnly(typed)}, nil
}

// Add checks one record of the store's topic and adds it to b: a put of
// its key and value bytes, or a delete for a tombstone (nil value). The
// key and value are deserialized first: a record that cannot be goes to
// the deserialization handler of h, as a source's record does (Continue
// drops it with a warning; Fail, or no handler, returns a
// *processor.DeserializationError naming the store, topic, partition and
// offset). An unavailable schema registry is an outage, not bad data: no
// handler sees it, and the error is returned. A record with a null key
// cannot be stored: it is dropped with a warning, as a restore drops it.
func (g *Global) Add(ctx context.Context, b store.Batch, rec RawRecord, h Handlers, log *slog.Logger) error {
	if rec.Key == nil {
		log.Warn("brook: global table dropped a record with a null key", "action", "none if such records are expected; otherwise fix the producer that writes null keys", "store", g.Spec.Name,
			"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset)
		return nil
	}
	part, err := g.Spec.Decode(ctx, rec.Topic, rec.Key, rec.Value)
	if err != nil {
		ec := processor.ErrorContext{
			TaskID: processor.TaskID{SubTopology: GlobalSubTopology, Partition: rec.Partition},
			Node:   g.Spec.Name, Err: err,
			Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
			Key: rec.Key, Value: rec.Value, Headers: rec.Headers, Timestamp: rec.Timestamp,
		}
		if !unavailable(err) && ctx.Err() == nil && h.Deserialization != nil && h.Deserialization(ec) == processor.Continue {
			log.Warn("brook: global table dropped a record that could not be deserialized", "action", "your deserialization handler chose Continue: fix the producer of the record, or fail to stop on bad data", "store", g.Spec.Name,
				"topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "part", part, "error", err)
			return nil
		}
		return &processor.DeserializationError{Node: g.Spec.Name, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset, Part: part, Err: err}
	}
	if rec.Value == nil {
		b.Delete(rec.Key)
	} else {
		b.Put(rec.Key, rec.Value)
	}
	return nil
}

// Close closes the engine.
func (g *Global) Close() error {
	if err := g.Engine.Close(); err != nil {
		return &StoreCloseError{Task: processor.TaskID{SubTopology: GlobalSubTopology, Partition: -1}, Store: g.Spec.Name, Err: err}
	}
	return nil
}

// ErrGlobalStoreReadOnly is matched by the error of a write to a global
// store's view (topology.GlobalTable): only the store's topic writes it.
var ErrGlobalStoreReadOnly = errors.New("store is a global table's store, which only its topic writes")
