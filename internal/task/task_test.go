package task_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// collector records what sinks send.
type collector struct {
	sent       []processor.ProducedRecord
	origins    []task.Origin
	partitions int32
	onSend     func(processor.ProducedRecord) error
}

func (c *collector) Send(r processor.ProducedRecord, from task.Origin) error {
	c.sent = append(c.sent, r)
	c.origins = append(c.origins, from)
	if c.onSend != nil {
		return c.onSend(r)
	}
	return nil
}

func (c *collector) PartitionCount(string) (int32, error) { return c.partitions, nil }

// engine counts flushes and closes of a memory engine.
type engine struct {
	store.Engine
	flushes, closes int
}

func (e *engine) Flush() error { e.flushes++; return e.Engine.Flush() }
func (e *engine) Close() error { e.closes++; return e.Engine.Close() }

type harness struct {
	t       *testing.T
	task    *task.Task
	col     *collector
	engines map[string]*engine
}

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, b *topology.Builder, sub int) *harness {
	t.Helper()
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	g, err := task.GraphOf(topo.InternalHandle())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, col: &collector{partitions: 4}, engines: map[string]*engine{}}
	tk, err := task.New(task.Config{
		ID:    processor.TaskID{SubTopology: sub, Partition: 3},
		Graph: g,
		Stores: func(id processor.TaskID, spec *task.StoreSpec) (store.Engine, []store.Option, error) {
			e := &engine{Engine: store.NewMemoryEngine()}
			h.engines[spec.Name] = e
			return e, nil, nil
		},
		Collector: h.col,
		WallClock: t0,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tk.Close(); err != nil {
			t.Error(err)
		}
	})
	h.task = tk
	return h
}

func (h *harness) process(topic string, offset int64, key, value string, ts time.Time) error {
	return h.task.Process(task.RawRecord{Topic: topic, Partition: 3, Offset: offset, Key: []byte(key), Value: []byte(value), Timestamp: ts})
}

// probe is a processor that logs what it sees into events.
type probe struct {
	events *[]string
	init   func(ctx processor.Context[string, string]) error
	ctx    processor.Context[string, string]
}

func (p *probe) Init(ctx processor.Context[string, string]) error {
	p.ctx = ctx
	if p.init != nil {
		return p.init(ctx)
	}
	return nil
}

func (p *probe) Process(ctx processor.Context[string, string], r processor.Record[string, string]) error {
	md, ok := ctx.RecordMetadata()
	*p.events = append(*p.events, fmt.Sprintf("process %s=%s md=%v/%v task=%s node=%s stream=%s",
		r.Key, r.Value, md, ok, ctx.TaskID(), ctx.NodeName(), ctx.StreamTime().Format("15:04:05")))
	return ctx.Forward(r)
}

func (p *probe) Close() error { *p.events = append(*p.events, "close"); return nil }

func TestProcessSendsAndCommitsOffsets(t *testing.T) {
	var events []string
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String(), topology.WithTopics("b"))
	p := topology.Process(b, "probe", in, func() processor.Processor[string, string, string, string] { return &probe{events: &events} })
	topology.Sink(b, "out", "o", p, serde.String(), serde.String())
	h := newHarness(t, b, 0)

	for i, rec := range []struct {
		topic string
		off   int64
	}{{"a", 10}, {"b", 5}, {"a", 11}} {
		if err := h.process(rec.topic, rec.off, fmt.Sprint("k", i), "v", t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"process k0=v md={a 3 10 false}/true task=0_3 node=probe stream=12:00:00",
		"process k1=v md={b 3 5 false}/true task=0_3 node=probe stream=12:00:01",
		"process k2=v md={a 3 11 false}/true task=0_3 node=probe stream=12:00:02",
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(events, "\n"), strings.Join(want, "\n"))
	}
	if len(h.col.sent) != 3 || h.col.sent[2].Topic != "o" || string(h.col.sent[2].Key) != "k2" || h.col.sent[2].Partition != -1 ||
		!h.col.sent[2].Timestamp.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("sent = %+v", h.col.sent)
	}
	offs, err := h.task.Commit()
	if err != nil {
		t.Fatal(err)
	}
	// Each offset carries the task's stream time, to commit with it.
	st := t0.Add(2 * time.Second)
	wantOffs := []task.Offset{{Topic: "a", Partition: 3, Offset: 12, StreamTime: st}, {Topic: "b", Partition: 3, Offset: 6, StreamTime: st}}
	if !slices.Equal(offs, wantOffs) {
		t.Fatalf("Commit offsets = %v, want %v", offs, wantOffs)
	}
	if offs, _ := h.task.Commit(); len(offs) != 0 {
		t.Fatalf("second Commit = %v, want nothing new", offs)
	}
	if err := h.process("c", 0, "k", "v", t0); err == nil || !strings.Contains(err.Error(), `topic "c"`) {
		t.Fatalf("unknown topic: err = %v", err)
	}
	if err := h.task.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.task.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if events[len(events)-1] != "close" || slices.Index(events, "close") != len(events)-1 {
		t.Fatalf("processor not closed exactly once: %v", events)
	}
	if err := h.process("a", 12, "k", "v", t0); err == nil {
		t.Fatal("Process after Close succeeded")
	}
}

func TestStreamTimePunctuation(t *testing.T) {
	var fired []string
	var cancel processor.Cancellable
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.Process(b, "p", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: new([]string), init: func(ctx processor.Context[string, string]) (err error) {
			cancel, err = ctx.Schedule(time.Minute, processor.StreamTime, func(ts time.Time) error {
				_, hasMD := ctx.RecordMetadata()
				fired = append(fired, fmt.Sprintf("%s md=%v", ts.Format("15:04:05"), hasMD))
				return nil
			})
			return err
		}}
	})
	h := newHarness(t, b, 0)

	steps := []struct {
		at   time.Duration
		want []string // punctuations fired by this record
	}{
		{0, []string{"12:00:00 md=false"}}, // the first record starts stream time
		{30 * time.Second, nil},
		{20 * time.Second, nil}, // out of order: stream time stays 12:00:30
		{time.Minute, []string{"12:01:00 md=false"}},
		{5*time.Minute + 30*time.Second, []string{"12:05:30 md=false"}}, // missed intervals fire once
		{5*time.Minute + 59*time.Second, nil},
		{6 * time.Minute, []string{"12:06:00 md=false"}},
	}
	for i, s := range steps {
		fired = nil
		if err := h.process("a", int64(i), "k", "v", t0.Add(s.at)); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(fired, s.want) {
			t.Fatalf("record at +%v fired %v, want %v", s.at, fired, s.want)
		}
	}
	if got := h.task.StreamTime(); !got.Equal(t0.Add(6 * time.Minute)) {
		t.Fatalf("stream time = %v", got)
	}
	cancel.Cancel()
	fired = nil
	if err := h.process("a", 99, "k", "v", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(fired) != 0 {
		t.Fatalf("cancelled punctuator fired: %v", fired)
	}
	// Wall-clock time does not drive stream-time punctuators.
	if n, err := h.task.Punctuate(t0.Add(48 * time.Hour)); n != 0 || err != nil {
		t.Fatalf("Punctuate = %d, %v", n, err)
	}
}

func TestWallClockPunctuationAndCancelFromPunctuator(t *testing.T) {
	var fired []string
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.Process(b, "p", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: new([]string), init: func(ctx processor.Context[string, string]) error {
			if _, err := ctx.Schedule(10*time.Second, processor.WallClockTime, func(ts time.Time) error {
				fired = append(fired, "every10s@"+ts.Format("15:04:05"))
				return nil
			}); err != nil {
				return err
			}
			n := 0
			var c processor.Cancellable
			c, err := ctx.Schedule(15*time.Second, processor.WallClockTime, func(ts time.Time) error {
				fired = append(fired, "twice@"+ts.Format("15:04:05")+"/"+ctx.WallClockTime().Format("15:04:05"))
				if n++; n == 2 {
					c.Cancel()
				}
				return nil
			})
			if err != nil {
				return err
			}
			if _, err := ctx.Schedule(0, processor.WallClockTime, func(time.Time) error { return nil }); err == nil {
				return errors.New("zero interval accepted")
			}
			return nil
		}}
	})
	h := newHarness(t, b, 0)

	steps := []struct {
		at    time.Duration
		fired int
		want  []string
	}{
		{5 * time.Second, 0, nil},
		{10 * time.Second, 1, []string{"every10s@12:00:10"}},
		{15 * time.Second, 1, []string{"twice@12:00:15/12:00:15"}},
		{5 * time.Second, 0, nil},                                                       // the clock never goes back
		{45 * time.Second, 2, []string{"every10s@12:00:45", "twice@12:00:45/12:00:45"}}, // due at :20 and :30: fire in due order, once each
		{2 * time.Minute, 1, []string{"every10s@12:02:00"}},
	}
	if due, ok := h.task.NextWallClockPunctuation(); !ok || !due.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("NextWallClockPunctuation = %v %v", due, ok)
	}
	for _, s := range steps {
		fired = nil
		n, err := h.task.Punctuate(t0.Add(s.at))
		if err != nil {
			t.Fatal(err)
		}
		if n != s.fired || !slices.Equal(fired, s.want) {
			t.Fatalf("Punctuate(+%v) = %d %v, want %d %v", s.at, n, fired, s.fired, s.want)
		}
	}
	// "twice" was cancelled; "every10s" is next due at 12:02:10.
	if due, ok := h.task.NextWallClockPunctuation(); !ok || !due.Equal(t0.Add(2*time.Minute+10*time.Second)) {
		t.Fatalf("NextWallClockPunctuation = %v %v", due, ok)
	}
	// Record processing does not drive wall-clock punctuators.
	fired = nil
	if err := h.process("a", 0, "k", "v", t0.Add(time.Hour)); err != nil || len(fired) != 0 {
		t.Fatalf("Process fired %v, err %v", fired, err)
	}
}
