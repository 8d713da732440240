package task

import (
	"fmt"
	"testing"

	"github.com/brookstream/brook/processor"
)

// TestWithLineageSlabsKeepEveryRecordsOwnHeader: the lineage values and
// header slices are carved from shared slabs, so a record's header must
// still say what it said when it was made after thousands more (across
// several slabs), and the caller's headers are never written to.
func TestWithLineageSlabsKeepEveryRecordsOwnHeader(t *testing.T) {
	tk := &Task{appID: "app|x"}
	suffix := tk.LineageSuffix("sink%1")
	user := processor.Headers{{Key: "trace", Value: []byte("t")}, {Key: processor.HeaderLineage, Value: []byte("up/0/1|n|a")}}
	userCopy := append(processor.Headers(nil), user...)
	type made struct {
		h    processor.Headers
		want processor.Lineage
	}
	var all []made
	for i := range 5000 {
		from := Origin{Topic: fmt.Sprintf("topic-%d", i%7), Partition: int32(i % 13), Offset: int64(i) * 1_000_003}
		want := processor.Lineage{ApplicationID: "app|x", Node: "sink%1", Topic: from.Topic, Partition: from.Partition, Offset: from.Offset}
		if i%11 == 0 { // a punctuator's record
			from = Origin{Offset: -1}
			want = processor.Lineage{ApplicationID: "app|x", Node: "sink%1", Offset: -1}
		}
		var in processor.Headers
		if i%3 == 0 {
			in = user
		}
		h := tk.withLineage(in, from, suffix)
		all = append(all, made{h, want})
	}
	for i, m := range all {
		got, ok := processor.LineageOf(m.h)
		if !ok || got != m.want {
			t.Fatalf("record %d: lineage %+v, %v; want %+v (headers %q)", i, got, ok, m.want, m.h)
		}
		wantLen := 1
		if i%3 == 0 {
			wantLen = 2 // trace kept, upstream lineage replaced
			if v, _ := m.h.Get("trace"); string(v) != "t" {
				t.Fatalf("record %d lost its trace header: %q", i, m.h)
			}
		}
		if len(m.h) != wantLen || cap(m.h) != wantLen {
			t.Fatalf("record %d: %d headers (cap %d), want %d: appending to one must not reach the next", i, len(m.h), cap(m.h), wantLen)
		}
		if v := m.h[len(m.h)-1].Value; cap(v) != len(v) {
			t.Fatalf("record %d: lineage value has spare capacity %d", i, cap(v)-len(v))
		}
	}
	for i := range user {
		if user[i].Key != userCopy[i].Key || string(user[i].Value) != string(userCopy[i].Value) {
			t.Fatalf("the caller's headers changed: %q", user)
		}
	}
}
