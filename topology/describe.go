package topology

import (
	"fmt"
	"strings"

	"github.com/brookstream/brook/internal/task"
)

// Describe returns a text description of the topology, in the spirit of
// Kafka Streams' TopologyDescription: each sub-topology with its nodes
// (parents first), what they read, emit, use and write, and the arrows
// between them ("-->" to children, "<--" from parents); then the stores
// and the co-partition groups. The output is deterministic.
func (t *Topology) Describe() string {
	var b strings.Builder
	g := t.graph
	fmt.Fprintf(&b, "Topology: %d sub-topolog%s, %d store%s\n", len(g.SubTopologies), plural(len(g.SubTopologies), "y", "ies"),
		len(g.Stores), plural(len(g.Stores), "", "s"))
	for _, st := range g.SubTopologies {
		fmt.Fprintf(&b, "  Sub-topology %d\n", st.ID)
		for _, name := range st.Nodes {
			n := g.Nodes[name]
			switch n.Kind {
			case task.Source:
				if n.Pattern != nil {
					fmt.Fprintf(&b, "    Source: %s (pattern: %s) -> Record[%s, %s]\n", n.Name, n.Pattern, n.KeyType, n.ValueType)
				} else {
					fmt.Fprintf(&b, "    Source: %s (topics: [%s]) -> Record[%s, %s]\n", n.Name, strings.Join(n.Topics, ", "), n.KeyType, n.ValueType)
				}
			case task.Processor:
				fmt.Fprintf(&b, "    Processor: %s (stores: [%s]) -> Record[%s, %s]\n", n.Name, strings.Join(n.Stores, ", "), n.KeyType, n.ValueType)
			case task.Sink:
				fmt.Fprintf(&b, "    Sink: %s (topic: %s) <- Record[%s, %s]\n", n.Name, sinkTopic(n), n.KeyType, n.ValueType)
			}
			for _, c := range n.Children {
				fmt.Fprintf(&b, "      --> %s\n", c)
			}
			for _, p := range n.Parents {
				fmt.Fprintf(&b, "      <-- %s\n", p)
			}
		}
	}
	if len(t.storeOrder) > 0 {
		b.WriteString("  Stores\n")
		for _, name := range t.storeOrder {
			s := g.Stores[name]
			var attrs []string
			switch {
			case s.Global:
				attrs = append(attrs, "global table of topic "+s.SourceTopic+" (all partitions on every instance)")
			case s.SourceTopic != "":
				attrs = append(attrs, "table of topic "+s.SourceTopic)
			case s.Logged:
				attrs = append(attrs, "logged to <application-id>-"+s.Name+"-changelog")
			default:
				attrs = append(attrs, "not logged")
			}
			if s.InMemory {
				attrs = append(attrs, "in memory")
			} else {
				attrs = append(attrs, "persistent")
			}
			fmt.Fprintf(&b, "    %s: %s[%s, %s], %s, used by [%s]\n", s.Name, s.Kind, s.KeyType, s.ValueType,
				strings.Join(attrs, ", "), strings.Join(s.Nodes, ", "))
		}
	}
	groups := t.CoPartitionGroups()
	if len(groups) == 0 {
		b.WriteString("  Co-partition groups: none\n")
	} else {
		b.WriteString("  Co-partition groups\n")
		for _, gr := range groups {
			fmt.Fprintf(&b, "    [%s]\n", strings.Join(gr, ", "))
		}
	}
	return b.String()
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sinkTopic(n *task.NodeSpec) string {
	if n.SinkTopic == "" {
		return "<chosen per record>"
	}
	return n.SinkTopic
}

// DescribeMermaid returns the topology as a Mermaid flowchart for docs:
// one box per sub-topology, topics as stadiums, stores as cylinders
// joined to their processors by dotted lines.
func (t *Topology) DescribeMermaid() string {
	var b strings.Builder
	g := t.graph
	b.WriteString("flowchart LR\n")
	ids := map[string]string{}
	for i, name := range t.nodeOrder {
		ids[name] = fmt.Sprintf("n%d", i)
	}
	topicIDs := map[string]string{}
	var topicOrder []string
	topicID := func(name string) string {
		if id, ok := topicIDs[name]; ok {
			return id
		}
		id := fmt.Sprintf("t%d", len(topicIDs))
		topicIDs[name] = id
		topicOrder = append(topicOrder, name)
		return id
	}
	var edges []string
	for _, st := range g.SubTopologies {
		fmt.Fprintf(&b, "  subgraph sub%d[\"Sub-topology %d\"]\n", st.ID, st.ID)
		for _, name := range st.Nodes {
			n := g.Nodes[name]
			fmt.Fprintf(&b, "    %s[\"%s: %s\"]\n", ids[name], n.Kind, mermaidText(name))
			switch n.Kind {
			case task.Source:
				for _, tp := range n.Topics {
					edges = append(edges, fmt.Sprintf("  %s --> %s", topicID(tp), ids[name]))
				}
				if n.Pattern != nil {
					edges = append(edges, fmt.Sprintf("  %s --> %s", topicID("/"+n.Pattern.String()+"/"), ids[name]))
				}
			case task.Sink:
				edges = append(edges, fmt.Sprintf("  %s --> %s", ids[name], topicID(sinkTopic(n))))
			}
			for _, c := range n.Children {
				edges = append(edges, fmt.Sprintf("  %s --> %s", ids[name], ids[c]))
			}
		}
		b.WriteString("  end\n")
	}
	for _, name := range topicOrder {
		fmt.Fprintf(&b, "  %s([\"%s\"])\n", topicIDs[name], mermaidText(name))
	}
	for i, name := range t.storeOrder {
		fmt.Fprintf(&b, "  s%d[(\"%s\")]\n", i, mermaidText(name))
		for _, n := range g.Stores[name].Nodes {
			edges = append(edges, fmt.Sprintf("  %s -.- s%d", ids[n], i))
		}
	}
	for _, e := range edges {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	return b.String()
}

// mermaidText escapes a label for a quoted Mermaid node label.
func mermaidText(s string) string {
	return strings.NewReplacer(`"`, "#quot;", "<", "#lt;", ">", "#gt;").Replace(s)
}
