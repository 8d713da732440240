package task_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

func TestStreamTimeMetadataRoundTrip(t *testing.T) {
	for _, st := range []time.Time{
		time.UnixMilli(0), time.UnixMilli(1), time.UnixMilli(-1500), t0, t0.Add(123 * time.Millisecond),
		time.UnixMilli(1<<62 - 1),
	} {
		meta := task.EncodeStreamTime(st)
		got, err := task.ParseStreamTime(meta)
		if err != nil || !got.Equal(st) {
			t.Errorf("ParseStreamTime(%q) = %v, %v; want %v", meta, got, err, st)
		}
	}
	if got := task.EncodeStreamTime(t0.Add(123 * time.Millisecond)); got != "brook:v1:1767268800123" {
		t.Errorf("EncodeStreamTime = %q", got)
	}
	if got := task.EncodeStreamTime(time.Time{}); got != "" {
		t.Errorf("EncodeStreamTime(zero) = %q, want empty", got)
	}
	if got, err := task.ParseStreamTime(""); err != nil || !got.IsZero() {
		t.Errorf("ParseStreamTime(\"\") = %v, %v; want unknown, no error", got, err)
	}
}

func TestStreamTimeMetadataForeignOrBad(t *testing.T) {
	for _, c := range []struct {
		meta    string
		foreign bool
	}{
		{"AQAAAZOMRIRA", true}, // Kafka Streams writes base64 of a version byte and a long
		{"some consumer's note", true},
		{"brook", true},
		{"brook:v2:1767268800000", false},
		{"brook:v1:", false},
		{"brook:v1:12x", false},
		{"brook:v1:1.5", false},
		{"brook:v1", false},
	} {
		got, err := task.ParseStreamTime(c.meta)
		if err == nil || !got.IsZero() {
			t.Errorf("ParseStreamTime(%q) = %v, %v; want unknown and an error", c.meta, got, err)
			continue
		}
		if errors.Is(err, task.ErrForeignMetadata) != c.foreign {
			t.Errorf("ParseStreamTime(%q): %v; foreign = %v, want %v", c.meta, err, !c.foreign, c.foreign)
		}
	}
}

// TestRestoredStreamTime: a task created with Config.StreamTime sees it in
// Init and in process, does not move it back for older records, commits it
// with every offset, and its stream-time punctuator scheduled in Init is
// first due one interval after it (no punctuation at the first record).
func TestRestoredStreamTime(t *testing.T) {
	var events []string
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.Process(b, "p", in, func() processor.Processor[string, string, string, string] {
		return &probe{events: &events, init: func(ctx processor.Context[string, string]) error {
			events = append(events, "init at "+ctx.StreamTime().Format("15:04:05"))
			_, err := ctx.Schedule(time.Minute, processor.StreamTime, func(ts time.Time) error {
				events = append(events, "punctuate "+ts.Format("15:04:05"))
				return nil
			})
			return err
		}}
	})
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	g, err := task.GraphOf(topo.InternalHandle())
	if err != nil {
		t.Fatal(err)
	}
	restored := t0.Add(10 * time.Minute)
	tk, err := task.New(task.Config{ID: processor.TaskID{Partition: 3}, Graph: g, Collector: &collector{}, WallClock: t0, StreamTime: restored})
	if err != nil {
		t.Fatal(err)
	}
	defer tk.Close()
	if !tk.StreamTime().Equal(restored) {
		t.Fatalf("StreamTime = %v, want %v", tk.StreamTime(), restored)
	}
	for i, at := range []time.Duration{5 * time.Minute, 10*time.Minute + 30*time.Second, 11 * time.Minute} {
		if err := tk.Process(task.RawRecord{Topic: "a", Partition: 3, Offset: int64(i), Key: []byte("k"), Value: []byte(fmt.Sprint(i)), Timestamp: t0.Add(at)}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			offs, err := tk.Commit()
			if err != nil {
				t.Fatal(err)
			}
			want := []task.Offset{{Topic: "a", Partition: 3, Offset: 1, StreamTime: restored}}
			if !slices.EqualFunc(offs, want, func(a, b task.Offset) bool { return a.Offset == b.Offset && a.StreamTime.Equal(b.StreamTime) }) {
				t.Fatalf("Commit = %+v, want %+v (an older record does not move stream time back)", offs, want)
			}
		}
	}
	want := []string{
		"init at 12:10:00",
		"process k=0 md={a 3 0 false}/true task=0_3 node=p stream=12:10:00", // 12:05 does not move it back
		"process k=1 md={a 3 1 false}/true task=0_3 node=p stream=12:10:30", // not due before 12:11
		"process k=2 md={a 3 2 false}/true task=0_3 node=p stream=12:11:00",
		"punctuate 12:11:00",
	}
	if !slices.Equal(events, want) {
		t.Fatalf("events\n%q\nwant\n%q", events, want)
	}
}

// TestFailedRecordLeavesStreamTime: a record whose processing fails does
// not move stream time, so the stream time committed with the records
// before it is theirs.
func TestFailedRecordLeavesStreamTime(t *testing.T) {
	boom := errors.New("boom")
	b := topology.New()
	in := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.ProcessFunc(b, "p", in, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		if r.Value == "bad" {
			return boom
		}
		return nil
	})
	h := newHarness(t, b, 0)
	if err := h.process("a", 0, "k", "ok", t0); err != nil {
		t.Fatal(err)
	}
	if err := h.process("a", 1, "k", "bad", t0.Add(time.Hour)); !errors.Is(err, boom) {
		t.Fatalf("Process = %v, want %v", err, boom)
	}
	if got := h.task.StreamTime(); !got.Equal(t0) {
		t.Fatalf("stream time %v after a failed record, want %v", got, t0)
	}
	offs, err := h.task.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if len(offs) != 1 || offs[0].Offset != 1 || !offs[0].StreamTime.Equal(t0) {
		t.Fatalf("Commit = %+v, want offset 1 with stream time %v", offs, t0)
	}
}
