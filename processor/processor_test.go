package processor_test

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// fakeCtx is a minimal Context that records forwarded records.
type fakeCtx[K, V any] struct {
	forwarded []processor.Record[K, V]
	stores    map[string]any
	failAfter int // Forward fails once this many records were forwarded (0: never)
}

func (c *fakeCtx[K, V]) StateStore(name string) (any, error) {
	if s, ok := c.stores[name]; ok {
		return s, nil
	}
	return nil, &processor.UnknownStoreError{Node: "fake", Store: name}
}

func (c *fakeCtx[K, V]) Forward(r processor.Record[K, V]) error {
	if c.failAfter > 0 && len(c.forwarded) == c.failAfter {
		return errors.New("child failed")
	}
	c.forwarded = append(c.forwarded, r)
	return nil
}

func (c *fakeCtx[K, V]) ForwardTo(_ string, r processor.Record[K, V]) error { return c.Forward(r) }
func (c *fakeCtx[K, V]) Schedule(time.Duration, processor.PunctuationType, processor.Punctuator) (processor.Cancellable, error) {
	return nil, errors.New("not supported")
}
func (c *fakeCtx[K, V]) RecordMetadata() (processor.RecordMetadata, bool) {
	return processor.RecordMetadata{}, false
}
func (c *fakeCtx[K, V]) TaskID() processor.TaskID { return processor.TaskID{} }
func (c *fakeCtx[K, V]) NodeName() string         { return "fake" }
func (c *fakeCtx[K, V]) StreamTime() time.Time    { return time.Time{} }
func (c *fakeCtx[K, V]) WallClockTime() time.Time { return time.Time{} }
func (c *fakeCtx[K, V]) RequestCommit()           {}
func (c *fakeCtx[K, V]) Logger() *slog.Logger     { return slog.New(slog.DiscardHandler) }

var ts = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestFuncHelpers(t *testing.T) {
	in := processor.Record[string, string]{Key: "k", Value: "a b c", Timestamp: ts, Headers: processor.Headers{{Key: "h", Value: []byte("1")}}}

	t.Run("MapValues keeps key, timestamp and headers", func(t *testing.T) {
		ctx := &fakeCtx[string, int]{}
		f := processor.MapValues(func(k, v string) (int, error) { return len(k + v), nil })
		if err := f.Process(ctx, in); err != nil {
			t.Fatal(err)
		}
		got := ctx.forwarded[0]
		if len(ctx.forwarded) != 1 || got.Key != "k" || got.Value != 6 || !got.Timestamp.Equal(ts) || len(got.Headers) != 1 {
			t.Fatalf("forwarded %+v", ctx.forwarded)
		}
	})
	t.Run("Map", func(t *testing.T) {
		ctx := &fakeCtx[int, string]{}
		f := processor.Map(func(r processor.Record[string, string]) (processor.Record[int, string], error) {
			return processor.Rekey(r, len(r.Value)), nil
		})
		if err := f.Process(ctx, in); err != nil || ctx.forwarded[0].Key != 5 || ctx.forwarded[0].Value != "a b c" {
			t.Fatalf("forwarded %+v, err %v", ctx.forwarded, err)
		}
		bad := processor.Map(func(processor.Record[string, string]) (processor.Record[int, string], error) {
			return processor.Record[int, string]{}, errors.New("nope")
		})
		if err := bad.Process(ctx, in); err == nil || len(ctx.forwarded) != 1 {
			t.Fatalf("failing Map: err %v, forwarded %d", err, len(ctx.forwarded))
		}
	})
	t.Run("Filter", func(t *testing.T) {
		ctx := &fakeCtx[string, string]{}
		f := processor.Filter(func(r processor.Record[string, string]) (bool, error) { return r.Key == "keep", nil })
		for _, k := range []string{"keep", "drop", "keep"} {
			if err := f.Process(ctx, in.WithKey(k)); err != nil {
				t.Fatal(err)
			}
		}
		if len(ctx.forwarded) != 2 {
			t.Fatalf("forwarded %d, want 2", len(ctx.forwarded))
		}
	})
	t.Run("FlatMap stops at the first failing child", func(t *testing.T) {
		split := processor.FlatMap(func(r processor.Record[string, string]) ([]processor.Record[string, string], error) {
			var out []processor.Record[string, string]
			for _, w := range strings.Fields(r.Value) {
				out = append(out, r.WithValue(w))
			}
			return out, nil
		})
		ctx := &fakeCtx[string, string]{}
		if err := split.Process(ctx, in); err != nil {
			t.Fatal(err)
		}
		var words []string
		for _, r := range ctx.forwarded {
			words = append(words, r.Value)
		}
		if !slices.Equal(words, []string{"a", "b", "c"}) {
			t.Fatalf("words = %v", words)
		}
		failing := &fakeCtx[string, string]{failAfter: 1}
		if err := split.Process(failing, in); err == nil || len(failing.forwarded) != 1 {
			t.Fatalf("err %v, forwarded %d", err, len(failing.forwarded))
		}
	})
	t.Run("Peek", func(t *testing.T) {
		var peeked []string
		ctx := &fakeCtx[string, string]{}
		f := processor.Peek(func(r processor.Record[string, string]) { peeked = append(peeked, r.Key) })
		if err := f.Process(ctx, in); err != nil || !slices.Equal(peeked, []string{"k"}) || len(ctx.forwarded) != 1 {
			t.Fatalf("peeked %v, forwarded %d, err %v", peeked, len(ctx.forwarded), err)
		}
	})
	t.Run("Init and Close do nothing", func(t *testing.T) {
		f := processor.Peek(func(processor.Record[string, string]) {})
		if err := errors.Join(f.Init(&fakeCtx[string, string]{}), f.Close()); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHeaders(t *testing.T) {
	h := processor.Headers{{Key: "a", Value: []byte("1")}, {Key: "b", Value: nil}, {Key: "a", Value: []byte("2")}}
	if v, ok := h.Get("a"); !ok || string(v) != "2" {
		t.Fatalf("Get(a) = %q %v, want the last one", v, ok)
	}
	if v, ok := h.Get("b"); !ok || v != nil {
		t.Fatalf("Get(b) = %q %v", v, ok)
	}
	if _, ok := h.Get("c"); ok {
		t.Fatal("Get(c) found a header")
	}
	c := h.Clone()
	c[0].Value[0] = 'x'
	if string(h[0].Value) != "1" {
		t.Fatal("Clone shares value bytes")
	}
	if processor.Headers(nil).Clone() != nil {
		t.Fatal("Clone(nil) != nil")
	}
	w := h[:1].With("z", []byte("9"))
	if len(w) != 2 || h[1].Key != "b" {
		t.Fatalf("With modified the original: %v / %v", w, h)
	}
}

func TestKeyValueStoreHelper(t *testing.T) {
	kv := store.NewKeyValueStore("counts", store.NewMemoryEngine(), serde.String(), serde.Int64())
	ctx := &fakeCtx[string, string]{stores: map[string]any{"counts": kv}}
	got, err := processor.KeyValueStore[string, int64](ctx, "counts")
	if err != nil || got != kv {
		t.Fatalf("KeyValueStore = %v, %v", got, err)
	}
	_, err = processor.KeyValueStore[string, string](ctx, "counts")
	var te *processor.StoreTypeError
	if !errors.As(err, &te) || te.Store != "counts" || !strings.Contains(te.Want, "KeyValueStore[string,string]") {
		t.Fatalf("wrong types: %v", err)
	}
	_, err = processor.KeyValueStore[string, int64](ctx, "missing")
	var ue *processor.UnknownStoreError
	if !errors.As(err, &ue) || ue.Store != "missing" || !strings.Contains(err.Error(), `WithStores("missing")`) {
		t.Fatalf("missing store: %v", err)
	}
}

func TestErrorsAndHandlers(t *testing.T) {
	cause := errors.New("cause")
	errs := []struct {
		err  error
		want []string
	}{
		{&processor.DeserializationError{Node: "src", Topic: "t", Partition: 2, Offset: 9, Part: "key", Err: cause},
			[]string{`source "src"`, "key", `topic "t"`, "partition 2", "offset 9"}},
		{&processor.ProcessingError{Node: "p", TaskID: processor.TaskID{SubTopology: 1, Partition: 2}, Topic: "t", Offset: 9, Err: cause},
			[]string{`processor: node "p"`, "task 1_2", `topic "t"`, "offset 9"}},
		{&processor.ProcessingError{Node: "p", Punctuation: true, Offset: -1, Err: cause},
			[]string{`processor: node "p"`, "punctuation failed"}},
		{&processor.ProductionError{Node: "s", OutputTopic: "out", Topic: "t", Offset: 9, Err: cause},
			[]string{`sink "s"`, `topic "out"`, `topic "t"`, "offset 9"}},
	}
	for _, e := range errs {
		if !errors.Is(e.err, cause) {
			t.Errorf("%T does not unwrap to its cause", e.err)
		}
		for _, w := range e.want {
			if !strings.Contains(e.err.Error(), w) {
				t.Errorf("%q does not contain %q", e.err, w)
			}
		}
	}
	if processor.Fail.String() != "fail" || processor.Continue.String() != "continue" {
		t.Error("HandlerResponse.String")
	}
	var zero processor.HandlerResponse
	if zero != processor.Fail {
		t.Error("the zero HandlerResponse must be Fail")
	}
	var buf bytes.Buffer
	h := processor.LogAndContinue(slog.New(slog.NewTextHandler(&buf, nil)))
	var dh processor.DeserializationHandler = h
	var ph processor.ProcessingHandler = h
	if dh(processor.ErrorContext{Topic: "t", Offset: 4, Err: cause}) != processor.Continue || ph(processor.ErrorContext{}) != processor.Continue {
		t.Fatal("LogAndContinue did not continue")
	}
	if !strings.Contains(buf.String(), "topic=t") || !strings.Contains(buf.String(), "offset=4") {
		t.Fatalf("log = %q", buf.String())
	}
	_ = processor.LogAndContinue(nil) // falls back to slog.Default
	if processor.StreamTime.String() != "stream-time" || processor.WallClockTime.String() != "wall-clock-time" {
		t.Error("PunctuationType.String")
	}
	if (processor.TaskID{SubTopology: 3, Partition: 7}).String() != "3_7" {
		t.Error("TaskID.String")
	}
}

// TestDeadLetterReportsItsTopic: the handler DeadLetter returns names its
// topic through TopicWriter without producing anything; a function merely
// converted to DeadLetterHandler names none.
func TestDeadLetterReportsItsTopic(t *testing.T) {
	h := processor.DeadLetter("payments-dlq", slog.New(slog.DiscardHandler))
	var tw processor.TopicWriter = h
	if got := tw.OutputTopics(); !slices.Equal(got, []string{"payments-dlq"}) {
		t.Fatalf("OutputTopics = %v, want [payments-dlq]", got)
	}
	var calls []processor.ErrorContext
	other := processor.DeadLetterHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
		calls = append(calls, ec)
		return processor.Continue
	})
	if got := other.OutputTopics(); got != nil {
		t.Fatalf("a converted function reports topics %v", got)
	}
	if len(calls) != 1 || calls[0].Offset != -1 || calls[0].Produce != nil || calls[0].Err == nil {
		t.Fatalf("the converted function saw %+v, want one call without a record or a producer", calls)
	}
}
