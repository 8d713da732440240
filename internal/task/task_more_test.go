package task_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
)

func TestStoresFlushAtCommitAndCloseWithTask(t *testing.T) {
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.KeyValueStore(b, "kv", serde.String(), serde.String())
	var storeErrs []error
	topology.Process(b, "p", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: new([]string), init: func(ctx processor.Context[string, string]) error {
			_, err := processor.KeyValueStore[string, int64](ctx, "kv") // wrong value type
			storeErrs = append(storeErrs, err)
			_, err = processor.KeyValueStore[string, string](ctx, "other") // not connected
			storeErrs = append(storeErrs, err)
			kv, err := processor.KeyValueStore[string, string](ctx, "kv")
			if err != nil {
				return err
			}
			ctx.RequestCommit()
			storeErrs = append(storeErrs, ctx.Forward(processor.Record[string, string]{Key: "too", Value: "early"}))
			return kv.Put("seeded", "yes")
		}}
	}, topology.WithStores("kv"))
	h := newHarness(t, b, 0)

	var typeErr *processor.StoreTypeError
	var unknown *processor.UnknownStoreError
	if len(storeErrs) != 3 || !errors.As(storeErrs[0], &typeErr) || !errors.As(storeErrs[1], &unknown) ||
		unknown.Node != "p" || unknown.Store != "other" || typeErr.Store != "kv" ||
		storeErrs[2] == nil || !strings.Contains(storeErrs[2].Error(), "during Init") {
		t.Fatalf("store errors = %v", storeErrs)
	}
	s, err := h.task.Store("kv")
	if err != nil {
		t.Fatal(err)
	}
	if v, found, err := s.(store.KeyValueStore[string, string]).Get("seeded"); v != "yes" || !found || err != nil {
		t.Fatalf("Get = %q %v %v", v, found, err)
	}
	if _, err := h.task.Store("nope"); err == nil {
		t.Fatal("Store(nope) succeeded")
	}
	if !h.task.CommitRequested() {
		t.Fatal("RequestCommit not reported")
	}
	e := h.engines["kv"]
	if _, err := h.task.Commit(); err != nil || e.flushes != 1 || h.task.CommitRequested() {
		t.Fatalf("Commit: err %v, flushes %d, still requested %v", err, e.flushes, h.task.CommitRequested())
	}
	if err := h.task.Close(); err != nil || e.closes != 1 {
		t.Fatalf("Close: err %v, closes %d", err, e.closes)
	}
}

func TestInitFailureReleasesEverything(t *testing.T) {
	var events []string
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.KeyValueStore(b, "kv", serde.String(), serde.String())
	ok := topology.Process(b, "ok", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: &events}
	}, topology.WithStores("kv"))
	topology.Process(b, "bad", ok, func() processor.Processor[string, string, string, string] {
		return &probe{events: &events, init: func(processor.Context[string, string]) error { return errors.New("no database") }}
	})
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	g, _ := task.GraphOf(topo.InternalHandle())
	var eng *engine
	_, err = task.New(task.Config{Graph: g, Collector: &collector{},
		Stores: func(processor.TaskID, *task.StoreSpec) (store.Engine, []store.Option, error) {
			eng = &engine{Engine: store.NewMemoryEngine()}
			return eng, nil, nil
		}})
	if err == nil || !strings.Contains(err.Error(), `node "bad": init: no database`) {
		t.Fatalf("New error = %v", err)
	}
	if eng == nil || eng.closes != 1 {
		t.Fatalf("store engine not closed after failed init: %+v", eng)
	}
	// "ok" was initialized, so it is closed; "bad" was not.
	if len(events) != 1 || events[0] != "close" {
		t.Fatalf("events = %v, want one close (of the initialized processor)", events)
	}
}

func TestReentrantCallIsRefused(t *testing.T) {
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.Sink(b, "out", "a-copy", in, serde.String(), serde.String())
	h := newHarness(t, b, 0)
	var inner error
	h.col.onSend = func(processor.ProducedRecord) error {
		inner = h.process("a", 1, "k", "v", t0)
		return nil
	}
	if err := h.process("a", 0, "k", "v", t0); err != nil {
		t.Fatal(err)
	}
	if inner == nil || !strings.Contains(inner.Error(), "re-entrant") {
		t.Fatalf("re-entrant Process error = %v", inner)
	}
}

func TestExtractorPatternAndPartitioner(t *testing.T) {
	b := topology.New()
	// The value carries the event time as RFC 3339.
	in := topology.SourcePattern(b, "in", regexp.MustCompile(`^events-`), serde.String(), serde.String(),
		topology.WithTimestampExtractor(func(r processor.Record[string, string], _ time.Time) (time.Time, error) {
			return time.Parse(time.RFC3339, r.Value)
		}))
	topology.Sink(b, "out", "o", in, serde.String(), serde.String(),
		topology.WithPartitioner(func(_ string, key, _ string, n int32) (int32, error) { return int32(len(key)) % n, nil }))
	h := newHarness(t, b, 0)

	if err := h.process("events-eu", 0, "abcdef", "2026-02-03T04:05:06Z", time.Time{}); err != nil {
		t.Fatal(err)
	}
	got := h.col.sent[0]
	if want := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC); !got.Timestamp.Equal(want) || !h.task.StreamTime().Equal(want) {
		t.Fatalf("timestamp %v, stream time %v, want %v", got.Timestamp, h.task.StreamTime(), want)
	}
	if got.Partition != 2 { // len("abcdef") % 4
		t.Fatalf("partition = %d, want 2", got.Partition)
	}
	err := h.process("events-us", 7, "k", "not a time", time.Time{})
	var de *processor.DeserializationError
	if !errors.As(err, &de) || de.Part != "timestamp" || de.Topic != "events-us" || de.Offset != 7 || de.Node != "in" {
		t.Fatalf("bad timestamp: err = %v", err)
	}
	if err := h.process("other", 0, "k", "v", time.Time{}); err == nil {
		t.Fatal("a topic the pattern does not match was processed")
	}
}

// TestSendOriginNamesNodeAndSourceRecord: every record handed to the
// Collector says which node sent it and which source record (or
// punctuation) it came from, so that a failure the broker reports later
// can name them; a dead-letter record sent by an error handler names the
// failing node.
func TestSendOriginNamesNodeAndSourceRecord(t *testing.T) {
	b := topology.New(topology.WithDeserializationHandler(processor.DeadLetter("dlq", nil)))
	in := topology.Source(b, "in", "a", serde.String(), serde.Int64())
	p := topology.ProcessFunc(b, "p", in, func(ctx processor.Context[string, int64], r processor.Record[string, int64]) error {
		return ctx.Forward(r)
	})
	topology.Sink(b, "out", "o", p, serde.String(), serde.Int64())
	h := newHarness(t, b, 0)
	if err := h.task.Process(task.RawRecord{Topic: "a", Partition: 3, Offset: 41, Key: []byte("k"), Value: make([]byte, 8), Timestamp: t0}); err != nil {
		t.Fatal(err)
	}
	if err := h.task.Process(task.RawRecord{Topic: "a", Partition: 3, Offset: 42, Key: []byte("k"), Value: []byte("bad"), Timestamp: t0}); err != nil {
		t.Fatal(err)
	}
	want := []task.Origin{
		{Node: "out", Topic: "a", Partition: 3, Offset: 41},
		{Node: "in", Topic: "a", Partition: 3, Offset: 42},
	}
	if len(h.col.origins) != 2 || h.col.origins[0] != want[0] || h.col.origins[1] != want[1] || h.col.sent[1].Topic != "dlq" {
		t.Fatalf("origins = %+v (sent %d), want %+v", h.col.origins, len(h.col.sent), want)
	}
}

// TestFailedStreamTimePunctuationLeavesRecordUnconsumed: when a stream-time
// punctuator that the record made due fails, Process returns the error and
// the record is not marked consumed (the runtime rolls back its effects
// and resumes at it), as for any other failure of Process.
func TestFailedStreamTimePunctuationLeavesRecordUnconsumed(t *testing.T) {
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	boom := errors.New("punctuator failed")
	topology.Process(b, "p", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: new([]string), init: func(ctx processor.Context[string, string]) error {
			_, err := ctx.Schedule(time.Minute, processor.StreamTime, func(ts time.Time) error {
				if ts.After(t0) {
					return boom
				}
				return nil
			})
			return err
		}}
	})
	h := newHarness(t, b, 0)
	if err := h.process("a", 7, "k", "v", t0); err != nil {
		t.Fatal(err)
	}
	if err := h.process("a", 8, "k", "v", t0.Add(2*time.Minute)); !errors.Is(err, boom) {
		t.Fatalf("Process = %v, want the punctuator's error", err)
	}
	offs, err := h.task.Commit()
	if err != nil {
		t.Fatal(err)
	}
	// Nor does its timestamp reach the stream time committed with the
	// offsets: a restart processes it again from the same stream time.
	if want := []task.Offset{{Topic: "a", Partition: 3, Offset: 8, StreamTime: t0}}; len(offs) != 1 || offs[0] != want[0] {
		t.Fatalf("Commit = %v, want %v (the record whose punctuation failed is not consumed)", offs, want)
	}
	if !h.task.StreamTime().Equal(t0) {
		t.Fatalf("stream time %v after the failed record, want %v", h.task.StreamTime(), t0)
	}
}
