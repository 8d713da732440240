package assign

import (
	"fmt"
	"testing"

	"github.com/IBM/sarama"
)

// BenchmarkPlan measures one leader Plan (decode member data, balance,
// build the plan) for a large group: 3 sub-topologies of 64 partitions
// (192 tasks, 320 partitions) over 30 members that all report previous
// tasks and restored offsets.
func BenchmarkPlan(b *testing.B) {
	groups := []TaskGroup{
		{ID: 0, Topics: []string{"a", "b"}},
		{ID: 1, Topics: []string{"c"}},
		{ID: 2, Topics: []string{"d", "e"}},
	}
	topics := map[string][]int32{}
	for _, t := range []string{"a", "b", "c", "d", "e"} {
		for p := range int32(64) {
			topics[t] = append(topics[t], p)
		}
	}
	s, err := NewStrategy(Config{Groups: groups})
	if err != nil {
		b.Fatal(err)
	}
	meta := map[string]sarama.ConsumerGroupMemberMetadata{}
	for m := range 30 {
		d := MemberData{Endpoint: fmt.Sprintf("host-%d:8080", m), Generation: 9, Warm: map[TaskID]int64{}}
		for p := int32(m); p < 64; p += 30 {
			for g := range int32(3) {
				t := TaskID{g, p}
				d.Owned = append(d.Owned, t)
				d.Warm[t] = int64(1000 * p)
			}
		}
		ud, _ := d.MarshalBinary()
		meta[fmt.Sprintf("member-%02d", m)] = sarama.ConsumerGroupMemberMetadata{Topics: s.Topics(), UserData: ud}
	}
	delete(meta, "member-07") // one member left: its tasks must move
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Plan(meta, topics); err != nil {
			b.Fatal(err)
		}
	}
	data, err := s.AssignmentData("member-00", nil, 10)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(data)), "assignment-bytes")
}
