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

	// A punctuator's record: no input record, an empty source field.
	p := processor.Lineage{ApplicationID: "app", Node: "sink", Offset: -1}
	hp := p.AppendTo(nil)
	if len(hp) != 1 || string(hp[0].Value) != "|sink|app" {
		t.Fatalf("punctuation lineage %v, want one header \"|sink|app\"", hp)
	}
	if got, ok := processor.LineageOf(hp); !ok || got != p {
		t.Fatalf("LineageOf(punctuation) = %+v, %v", got, ok)
	}
}

func TestLineageOfRejects(t *testing.T) {
	lin := func(v string) processor.Headers {
		return processor.Headers{{Key: processor.HeaderLineage, Value: []byte(v)}}
	}
	for name, h := range map[string]processor.Headers{
		"none":           {{Key: "trace", Value: []byte("x")}},
		"bad offset":     lin("t/0/x1|n|a"),
		"negative":       lin("t/0/-1|n|a"),
		"bad partition":  lin("t/p/1|n|a"),
		"no topic":       lin("/0/1|n|a"),
		"no partition":   lin("t/1|n|a"),
		"two fields":     lin("t/0/1|n"),
		"one field":      lin("t/0/1"),
		"bad escape":     lin("t/0/1|n%2|a"),
		"unknown escape": lin("t/0/1|n|a%41"),
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
		if h.Key == processor.HeaderLineage {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d lineage headers, want 1 (the upstream one replaced): %v", n, rec.Headers)
	}
}

// TestLineageValue pins the documented text of the header and checks that
// a node or application id holding the separator or the escape character
// survives the round trip.
func TestLineageValue(t *testing.T) {
	l := processor.Lineage{ApplicationID: "payments-enricher", Node: "enriched-sink", Topic: "payments", Partition: 3, Offset: 1234567}
	if got := string(l.Value()); got != "payments/3/1234567|enriched-sink|payments-enricher" {
		t.Fatalf("Value() = %q", got)
	}
	odd := processor.Lineage{ApplicationID: "a|b%7C|", Node: "n%|x", Topic: "t.v-1_x", Partition: 0, Offset: 0}
	v := odd.Value()
	if got := string(v); got != "t.v-1_x/0/0|n%25%7Cx|a%7Cb%257C%7C" {
		t.Fatalf("escaped Value() = %q", got)
	}
	if got, ok := processor.ParseLineage(v); !ok || got != odd {
		t.Fatalf("ParseLineage(%q) = %+v, %v; want %+v", v, got, ok, odd)
	}
	// Fields after the third are ignored (room for later versions).
	if got, ok := processor.ParseLineage([]byte("t/1/2|n|a|future")); !ok || got != (processor.Lineage{ApplicationID: "a", Node: "n", Topic: "t", Partition: 1, Offset: 2}) {
		t.Fatalf("ParseLineage with a fourth field = %+v, %v", got, ok)
	}
}
