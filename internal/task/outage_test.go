package task_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// outageSerde stands in for a registry-backed serde: the value "down"
// fails as an unavailable registry would, "bad" as bad bytes. It
// implements serde.ContextDeserializer and remembers the context it got.
type outageSerde struct {
	gotCtx context.Context
}

func (s *outageSerde) Serialize(topic string, v string) ([]byte, error) {
	switch v {
	case "sink-down":
		return nil, &serde.EncodeError{Format: "fake", Topic: topic, Err: fmt.Errorf("register: %w", serde.ErrRegistryUnavailable)}
	case "sink-bad":
		return nil, &serde.EncodeError{Format: "fake", Topic: topic, Err: errors.New("value out of range")}
	}
	return []byte(v), nil
}

func (s *outageSerde) Deserialize(topic string, data []byte) (string, error) {
	return s.DeserializeContext(context.Background(), topic, data)
}

func (s *outageSerde) DeserializeContext(ctx context.Context, topic string, data []byte) (string, error) {
	s.gotCtx = ctx
	switch string(data) {
	case "down":
		cause := errors.New("connection refused")
		if ctx.Err() != nil {
			cause = ctx.Err()
		}
		return "", &serde.DecodeError{Format: "fake", Topic: topic, SchemaID: 9, Kind: serde.ErrRegistryUnavailable, Err: cause}
	case "bad":
		return "", &serde.DecodeError{Format: "fake", Topic: topic, SchemaID: -1, Kind: serde.ErrCorrupt}
	}
	return string(data), nil
}

var _ serde.ContextDeserializer[string] = (*outageSerde)(nil)

// TestUnavailableRegistryIsNotBadData: whether the registry outage shows
// at the source (deserialization), in a processor (a store or lookup
// serde) or at a sink (serialization), the task returns it as the
// record's error, leaves the record unconsumed, and never asks the
// deserialization, processing or production handler — all of which answer
// Continue here and would drop the record. Bad data still goes to them.
func TestUnavailableRegistryIsNotBadData(t *testing.T) {
	var asked []string
	b := topology.New(
		topology.WithDeserializationHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
			asked = append(asked, fmt.Sprintf("deserialization@%d", ec.Offset))
			return processor.Continue
		}),
		topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
			asked = append(asked, fmt.Sprintf("processing@%d", ec.Offset))
			return processor.Continue
		}),
		topology.WithProductionHandler(func(ec processor.ErrorContext, _ processor.ProducedRecord) processor.HandlerResponse {
			asked = append(asked, fmt.Sprintf("production@%d", ec.Offset))
			return processor.Continue
		}),
	)
	values := &outageSerde{}
	src := topology.Source(b, "in", "in", serde.String(), serde.Serde[string](values))
	p := topology.ProcessFunc(b, "p", src, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		switch r.Value {
		case "proc-down":
			return fmt.Errorf("enrich: %w", serde.ErrRegistryUnavailable)
		case "proc-bad":
			return errors.New("no such account")
		}
		return ctx.Forward(r)
	})
	topology.Sink(b, "out", "out", p, serde.String(), serde.Serde[string](values))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	g, err := task.GraphOf(topo.InternalHandle())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	col := &collector{}
	tk, err := task.New(task.Config{ID: processor.TaskID{}, Graph: g, Collector: col, Context: ctx})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	rec := func(off int64, v string) task.RawRecord {
		return task.RawRecord{Topic: "in", Offset: off, Key: []byte("k"), Value: []byte(v), Timestamp: t0}
	}
	// Bad data goes to the handlers, which drop it: consumed.
	for i, v := range []string{"ok", "bad", "proc-bad", "sink-bad"} {
		if err := tk.Process(rec(int64(i), v)); err != nil {
			t.Fatalf("%s: %v", v, err)
		}
	}
	if want := "[deserialization@1 processing@2 production@3]"; fmt.Sprint(asked) != want {
		t.Fatalf("handlers asked %v, want %s", asked, want)
	}
	if values.gotCtx != ctx {
		t.Fatal("the source did not deserialize with the task's context")
	}
	asked = nil
	var de *processor.DeserializationError
	var pe *processor.ProcessingError
	var pre *processor.ProductionError
	outages := []struct {
		value string
		as    any
	}{{"down", &de}, {"proc-down", &pe}, {"sink-down", &pre}}
	for _, o := range outages {
		err := tk.Process(rec(4, o.value))
		if !errors.Is(err, serde.ErrRegistryUnavailable) || !errors.As(err, o.as) || errors.Is(err, task.ErrInterrupted) {
			t.Fatalf("%s: got %v, want a %T that is serde.ErrRegistryUnavailable", o.value, err, o.as)
		}
	}
	if de.Offset != 4 || de.Part != "value" || pe.Offset != 4 || pre.Offset != 4 {
		t.Fatalf("errors locate offsets %d %d %d, want 4", de.Offset, pe.Offset, pre.Offset)
	}
	if len(asked) > 0 {
		t.Fatalf("handlers asked about an outage: %v", asked)
	}
	offs, err := tk.Commit()
	if err != nil || len(offs) != 1 || offs[0].Offset != 4 {
		t.Fatalf("commit %v, %v; want next offset 4 (the held-up record)", offs, err)
	}

	// Once the task is stopping, a source wait for the registry ends as
	// an interruption: not the record's failure, not consumed.
	cancel()
	err = tk.Process(rec(4, "down"))
	if !errors.Is(err, task.ErrInterrupted) || !errors.Is(err, context.Canceled) {
		t.Fatalf("stopping: got %v, want task.ErrInterrupted", err)
	}
	if offs, _ := tk.Commit(); len(offs) != 0 || len(asked) > 0 {
		t.Fatalf("interrupted record: committed %v, handlers asked %v", offs, asked)
	}
}
