package processor_test

import (
	"errors"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
)

func TestLineageRoundTrip(t *testing.T) {
	in := processor.Headers{{Key: "trace", Value: []byte("t1")}}
	l := processor.Lineage{ApplicationID: "app", Node: "sink", Topic: "payments", Partition: 3, Offset: 1234567890123}
	h := l.AppendTo(in)
	if len(in) != 1 {
		t.Fatalf("AppendTo changed its input: %v", in)
	}
	got, ok := processor.LineageOf(h)
	if !ok || got != l {
		t.Fatalf("LineageOf(%v) = %+v, %v; want %+v", h, got, ok, l)
	}
	if v, _ := h.Get("trace"); string(v) != "t1" {
		t.Fatalf("other headers lost: %v", h)
	}

	// A second hop replaces the first hop's lineage.
	l2 := processor.Lineage{ApplicationID: "app2", Node: "out", Topic: "enriched", Partition: 0, Offset: 7}
	h2 := l2.AppendTo(h)
	if len(h2) != len(h) {
		t.Fatalf("second hop has %d headers, want %d (replaced, not added): %v", len(h2), len(h), h2)
	}
	if got, _ := processor.LineageOf(h2); got != l2 {
		t.Fatalf("second hop lineage %+v, want %+v", got, l2)
	}
	if got, _ := processor.LineageOf(h); got != l {
		t.Fatalf("second hop changed the first record's headers: %+v", got)
	}

	// A punctuator's record: no input record, no location headers.
	p := processor.Lineage{ApplicationID: "app", Node: "sink", Offset: -1}
	hp := p.AppendTo(nil)
	if len(hp) != 2 {
		t.Fatalf("punctuation lineage %v, want application id and node only", hp)
	}
	if got, ok := processor.LineageOf(hp); !ok || got != p {
		t.Fatalf("LineageOf(punctuation) = %+v, %v", got, ok)
	}
}

func TestLineageOfRejects(t *testing.T) {
	for name, h := range map[string]processor.Headers{
		"none":        {{Key: "trace", Value: []byte("x")}},
		"bad offset":  {{Key: processor.HeaderLineageApplicationID, Value: []byte("a")}, {Key: processor.HeaderLineageOffset, Value: []byte("x1")}, {Key: processor.HeaderLineagePartition, Value: []byte("0")}},
		"bad partion": {{Key: processor.HeaderLineageApplicationID, Value: []byte("a")}, {Key: processor.HeaderLineageOffset, Value: []byte("1")}, {Key: processor.HeaderLineagePartition, Value: []byte("p")}},
	} {
		if l, ok := processor.LineageOf(h); ok {
			t.Errorf("%s: LineageOf = %+v, true; want false", name, l)
		}
	}
}

func TestDeadLetterRecordUsesLineage(t *testing.T) {
	now := time.UnixMilli(2000)
	upstream := processor.Lineage{ApplicationID: "up", Node: "n", Topic: "raw", Partition: 1, Offset: 5}.AppendTo(processor.Headers{{Key: "trace", Value: []byte("t")}})
	rec := processor.DeadLetterRecord("dlq", processor.ErrorContext{
		ApplicationID: "app", Node: "parse", Topic: "payments", Partition: 2, Offset: 40,
		Key: []byte("k"), Value: []byte("v"), Headers: upstream, Timestamp: time.UnixMilli(1000), Err: errors.New("boom"),
	}, now)
	want := processor.Lineage{ApplicationID: "app", Node: "parse", Topic: "payments", Partition: 2, Offset: 40}
	if got, ok := processor.LineageOf(rec.Headers); !ok || got != want {
		t.Fatalf("dead letter lineage %+v, want %+v (headers %v)", got, want, rec.Headers)
	}
	for k, v := range map[string]string{"trace": "t", processor.HeaderDLQError: "boom", processor.HeaderDLQTimestamp: "1000", processor.HeaderDLQTime: "2000"} {
		if got, _ := rec.Headers.Get(k); string(got) != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	n := 0
	for _, h := range rec.Headers {
		if h.Key == processor.HeaderLineageOffset {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d offset lineage headers, want 1 (the upstream one replaced): %v", n, rec.Headers)
	}
}
