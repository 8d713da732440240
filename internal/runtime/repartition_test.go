package runtime

import (
	"fmt"
	"strings"
	"testing"

	"github.com/brookstream/brook/internal/task"
)

// graphOf builds a graph for repartitionCounts: subs[i] lists the source
// topics of sub-topology i, sinks[i] the topics it writes.
func graphOf(subs [][]string, sinks [][]string, declared map[string]int32) *task.Graph {
	g := &task.Graph{Nodes: map[string]*task.NodeSpec{}, Repartitions: declared}
	for i, topics := range subs {
		st := &task.SubTopology{ID: i, SourceTopics: topics}
		for j, t := range sinks[i] {
			name := fmt.Sprintf("sink-%d-%d", i, j)
			g.Nodes[name] = &task.NodeSpec{Name: name, Kind: task.Sink, SinkTopic: t}
			st.Nodes = append(st.Nodes, name)
		}
		g.SubTopologies = append(g.SubTopologies, st)
	}
	return g
}

func TestRepartitionCounts(t *testing.T) {
	for _, tc := range []struct {
		name     string
		subs     [][]string
		sinks    [][]string
		declared map[string]int32
		counts   map[int]int32 // from external topics; -1 none
		want     string
		err      string
	}{
		{name: "from writer", subs: [][]string{{"in"}, {"r1"}}, sinks: [][]string{{"r1"}, nil},
			declared: map[string]int32{"r1": 0}, counts: map[int]int32{0: 6, 1: -1}, want: "map[r1:6]"},
		{name: "largest writer", subs: [][]string{{"a"}, {"b"}, {"r1"}}, sinks: [][]string{{"r1"}, {"r1"}, nil},
			declared: map[string]int32{"r1": 0}, counts: map[int]int32{0: 2, 1: 5, 2: -1}, want: "map[r1:5]"},
		{name: "co-partitioned with the reader's input", subs: [][]string{{"in"}, {"r1", "table"}}, sinks: [][]string{{"r1"}, nil},
			declared: map[string]int32{"r1": 0}, counts: map[int]int32{0: 6, 1: 4}, want: "map[r1:4]"},
		{name: "declared wins", subs: [][]string{{"in"}, {"r1"}}, sinks: [][]string{{"r1"}, nil},
			declared: map[string]int32{"r1": 3}, counts: map[int]int32{0: 6, 1: -1}, want: "map[r1:3]"},
		{name: "chained", subs: [][]string{{"in"}, {"r1"}, {"r2"}}, sinks: [][]string{{"r1"}, {"r2"}, nil},
			declared: map[string]int32{"r1": 2, "r2": 0}, counts: map[int]int32{0: 6, 1: -1, 2: -1}, want: "map[r1:2 r2:2]"},
		{name: "two read together get one count", subs: [][]string{{"a"}, {"b"}, {"r1", "r2"}}, sinks: [][]string{{"r1"}, {"r2"}, nil},
			declared: map[string]int32{"r1": 0, "r2": 0}, counts: map[int]int32{0: 2, 1: 8, 2: -1}, want: "map[r1:8 r2:8]"},
		{name: "declared against co-partitioned input", subs: [][]string{{"in"}, {"r1", "table"}}, sinks: [][]string{{"r1"}, nil},
			declared: map[string]int32{"r1": 3}, counts: map[int]int32{0: 6, 1: 4}, err: "needs 3 partitions to be co-partitioned"},
		{name: "cycle", subs: [][]string{{"r1"}, {"r2"}}, sinks: [][]string{{"r2"}, {"r1"}},
			declared: map[string]int32{"r1": 0, "r2": 0}, counts: map[int]int32{0: -1, 1: -1}, err: "cannot work out the partition count"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := repartitionCounts(graphOf(tc.subs, tc.sinks, tc.declared), tc.counts)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != tc.want {
				t.Fatalf("counts %v, want %s", got, tc.want)
			}
		})
	}
}
