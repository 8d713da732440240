package assign

import (
	"context"
	"fmt"
	"testing"

	"github.com/IBM/sarama"
)

// BenchmarkRouting measures what an instance does to route its first
// query after a rebalance: assemble the whole assignment from the group
// coordinator's description of 100 and 1,000 members (decoding every
// member's subscription and assignment), and then one Owner look-up.
func BenchmarkRouting(b *testing.B) {
	for _, size := range []struct{ members, tasks int }{{100, 2_000}, {1_000, 20_000}} {
		b.Run(fmt.Sprintf("%dx%d", size.members, size.tasks), func(b *testing.B) {
			sim := newScaleSim(b, size.members, size.tasks)
			sim.rebalance()
			r := sim.rebalance()
			desc := &sarama.GroupDescription{State: "Stable", Protocol: StrategyName, Members: map[string]*sarama.GroupMemberDescription{}}
			bytes := 0
			for id := range r.meta {
				desc.Members[id] = &sarama.GroupMemberDescription{MemberId: id, MemberMetadata: r.metaBytes[id], MemberAssignment: r.asgBytes[id]}
				bytes += len(r.metaBytes[id]) + len(r.asgBytes[id])
			}
			var self string
			var s *Strategy
			for id, m := range sim.members {
				self, s = id, m
				break
			}
			s.SetMemberID(self)
			s.describe = func(context.Context) (*sarama.GroupDescription, error) { return desc, nil }
			own, _ := s.Local()
			b.ReportAllocs()
			for b.Loop() {
				a, err := s.routingFrom(desc, own, self)
				if err != nil {
					b.Fatal(err)
				}
				if _, ok := a.Owner(TaskID{1, int32(size.tasks/2 - 1)}); !ok {
					b.Fatal("no owner")
				}
			}
			b.ReportMetric(float64(bytes), "member-bytes-described")
		})
	}
}
