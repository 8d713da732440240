package topology

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/brookstream/brook/internal/task"
)

// ValidationCode classifies a ValidationError.
type ValidationCode int

const (
	// InvalidNode: a node declaration is incomplete or inconsistent
	// (empty name or topic, nil serde or supplier, mismatched option).
	InvalidNode ValidationCode = iota + 1
	// InvalidStore: a store declaration is incomplete.
	InvalidStore
	// DuplicateName: two nodes, or two stores, share a name.
	DuplicateName
	// UnknownParent: a parent handle does not belong to this Builder.
	UnknownParent
	// UnknownStore: a processor is connected to a store that was never
	// declared.
	UnknownStore
	// UnconnectedStore: a store is connected to no processor.
	UnconnectedStore
	// Cycle: nodes depend on each other in a loop.
	Cycle
	// SharedStore: a store joins sub-topologies that cannot be merged
	// into one task.
	SharedStore
	// DuplicateTopic: two sources read the same topic.
	DuplicateTopic
)

var codeNames = map[ValidationCode]string{
	InvalidNode: "invalid node", InvalidStore: "invalid store", DuplicateName: "duplicate name",
	UnknownParent: "unknown parent", UnknownStore: "unknown store", UnconnectedStore: "unconnected store",
	Cycle: "cycle", SharedStore: "shared store", DuplicateTopic: "duplicate topic",
}

// String names the code.
func (c ValidationCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ValidationCode(%d)", int(c))
}

// ValidationError is one problem Build found. Build returns all of them
// joined (errors.Join); use errors.As to get the first, or unwrap the
// joined error's Unwrap() []error for all.
type ValidationError struct {
	// Code classifies the problem.
	Code ValidationCode
	// Node, Topic and Store name what the problem is about; empty when not
	// relevant.
	Node, Topic, Store string
	// Detail says what is wrong and, where it helps, what to do.
	Detail string
}

// Error implements error.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("topology: ")
	b.WriteString(e.Code.String())
	if e.Node != "" {
		fmt.Fprintf(&b, ": node %q", e.Node)
	}
	if e.Store != "" {
		fmt.Fprintf(&b, ": store %q", e.Store)
	}
	if e.Topic != "" {
		fmt.Fprintf(&b, ": topic %q", e.Topic)
	}
	b.WriteString(": ")
	b.WriteString(e.Detail)
	return b.String()
}

// Topology is a validated topology, ready to run (topology.App) or to test
// (testutil.TestDriver). It is immutable and safe for concurrent use.
type Topology struct {
	graph *task.Graph
	// nodeOrder and storeOrder keep declaration order for descriptions.
	nodeOrder  []string
	storeOrder []string
	// preflights are the serdes to check before joining the group;
	// storePreflights the stores' serdes.
	preflights      []preflight
	storePreflights []storePreflight
}

// Preflight runs every check the topology's serdes need before use: each
// Avro serde's schema against its subject in the schema registry, at the
// subject's compatibility level. It covers the serdes of sources, sinks and
// tables, and of the stores whose subject does not depend on the
// application id; a logged store's subjects derive from its changelog
// topic "<application-id>-<store>-changelog", which only PreflightFor
// knows. App.Run calls PreflightFor before joining the consumer group;
// call it yourself to fail fast in a deploy step. The error names the node
// (or store), topic and key/value part, and wraps the serde's error (a
// *avro.IncompatibleSchemaError (package serde/avro) names subject, level and the registry's
// reasons).
func (t *Topology) Preflight(ctx context.Context) error {
	return t.preflight(ctx, "")
}

// PreflightFor runs Preflight and also checks every logged store's serdes
// against the subjects of its changelog topic for applicationID. App.Run
// calls it before joining the consumer group.
func (t *Topology) PreflightFor(ctx context.Context, applicationID string) error {
	if applicationID == "" {
		return errors.New("topology: PreflightFor needs an application id")
	}
	return t.preflight(ctx, applicationID)
}

func (t *Topology) preflight(ctx context.Context, appID string) error {
	var errs []error
	for _, p := range t.preflights {
		if err := ctx.Err(); err != nil {
			return err
		}
		topic := p.topic
		if rest, internal := strings.CutPrefix(topic, task.ApplicationIDPlaceholder); internal {
			// A repartition topic's subjects depend on the application id.
			if appID == "" {
				continue
			}
			topic = appID + rest
		}
		if err := p.check.Preflight(ctx, topic); err != nil {
			errs = append(errs, fmt.Errorf("topology: node %q, topic %q, %s serde: %w", p.node, topic, p.part, err))
		}
	}
	for _, p := range t.storePreflights {
		spec := t.graph.Stores[p.store]
		if spec == nil || spec.Logged && appID == "" {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		topic := spec.SerdeTopic(appID)
		if err := p.check.Preflight(ctx, topic); err != nil {
			errs = append(errs, fmt.Errorf("topology: store %q, topic %q, %s serde: %w", p.store, topic, p.part, err))
		}
	}
	return errors.Join(errs...)
}

// InternalHandle is for brook's own packages (testutil's TestDriver drives
// a topology through it); the value is opaque and of no use elsewhere.
func (t *Topology) InternalHandle() task.Handle {
	if t == nil {
		return task.Handle{}
	}
	return task.NewHandle(t.graph)
}

// Build validates the declarations and compiles them. Problems come back
// as *ValidationError values joined into one error, each naming the node,
// topic or store concerned: duplicate names, unknown parents, unknown or
// unconnected stores, cycles, a store that would join sub-topologies that
// cannot share a task, a topic read by two sources, incomplete
// declarations.
//
// Build computes the sub-topologies — the connected parts of the graph,
// where processors sharing a store are connected — and the source topics
// of each, which must be co-partitioned (same partition count, same keys
// in the same partitions). The Builder may be built again after more
// declarations.
func (b *Builder) Build() (*Topology, error) {
	problems := slices.Clone(b.problems)
	report := func(code ValidationCode, node, topic, st, format string, args ...any) {
		problems = append(problems, &ValidationError{Code: code, Node: node, Topic: topic, Store: st, Detail: fmt.Sprintf(format, args...)})
	}

	specs := make(map[string]*task.NodeSpec, len(b.nodes))
	for _, d := range b.nodes {
		s := d.spec
		s.Parents, s.Children = nil, nil
		s.Stores = slices.Clone(d.spec.Stores)
		specs[s.Name] = &s
	}
	// Parents and children.
	for _, d := range b.nodes {
		s := specs[d.spec.Name]
		for _, p := range d.parents {
			switch {
			case p.name == "":
				report(UnknownParent, s.Name, "", "", "parent is a zero Node handle; use the handle returned by Source, Process or Merge")
			case p.b != b:
				report(UnknownParent, s.Name, "", "", "parent %q was declared on another Builder", p.name)
			case specs[p.name] == nil:
				report(UnknownParent, s.Name, "", "", "parent %q is not declared", p.name)
			case specs[p.name].Kind == task.Sink:
				report(InvalidNode, s.Name, "", "", "parent %q is a sink; sinks have no children", p.name)
			case slices.Contains(s.Parents, p.name):
				report(InvalidNode, s.Name, "", "", "parent %q is given twice", p.name)
			default:
				s.Parents = append(s.Parents, p.name)
				specs[p.name].Children = append(specs[p.name].Children, s.Name)
			}
		}
	}
	// Stores.
	stores := make(map[string]*task.StoreSpec, len(b.stores))
	for _, d := range b.stores {
		s := d.spec
		s.Nodes = nil
		stores[s.Name] = &s
	}
	for _, d := range b.nodes {
		s := specs[d.spec.Name]
		seen := map[string]bool{}
		for _, name := range s.Stores {
			st := stores[name]
			switch {
			case seen[name]:
				report(InvalidNode, s.Name, "", name, "store connected twice")
			case st == nil:
				report(UnknownStore, s.Name, "", name, "store is not declared; declare it with topology.KeyValueStore or topology.Table")
			default:
				st.Nodes = append(st.Nodes, s.Name)
			}
			seen[name] = true
		}
	}
	for _, d := range b.stores {
		if st := stores[d.spec.Name]; len(st.Nodes) == 0 && !st.Global {
			report(UnconnectedStore, "", "", st.Name, "store is connected to no processor; connect it with topology.WithStores(%q) or remove it", st.Name)
		}
	}
	// Topics read by two sources.
	readers := map[string]string{}
	for _, d := range b.nodes {
		for _, t := range specs[d.spec.Name].Topics {
			if prev, ok := readers[t]; ok && t != "" {
				report(DuplicateTopic, d.spec.Name, t, "", "topic is already read by source %q; read it once and fan out from one source", prev)
				continue
			}
			readers[t] = d.spec.Name
		}
	}
	// A global table's topic is read by the instance's global reader:
	// no source may read it too (as in Kafka Streams).
	for _, d := range b.stores {
		if st := stores[d.spec.Name]; st.Global && st.SourceTopic != "" {
			if prev, ok := readers[st.SourceTopic]; ok {
				report(DuplicateTopic, "", st.SourceTopic, st.Name, "topic of a global table is already read by %q; read it once", prev)
				continue
			}
			readers[st.SourceTopic] = "global table " + st.Name
		}
	}
	// Cycles: Kahn's algorithm in declaration order.
	order := b.topoOrder(specs)
	if len(order) < len(b.nodes) {
		var stuck []string
		in := map[string]bool{}
		for _, n := range order {
			in[n] = true
		}
		for _, d := range b.nodes {
			if !in[d.spec.Name] {
				stuck = append(stuck, d.spec.Name)
			}
		}
		report(Cycle, stuck[0], "", "", "nodes %v form a cycle", stuck)
	}
	if len(problems) > 0 {
		return nil, joinProblems(problems)
	}

	subs, problems := b.subTopologies(specs, stores, order)
	if len(problems) > 0 {
		return nil, joinProblems(problems)
	}
	handlers := b.handlers
	handlers.Topics = nil
	for _, tp := range slices.Concat(b.deserTopics, b.procTopics) {
		if !slices.Contains(handlers.Topics, tp) {
			handlers.Topics = append(handlers.Topics, tp)
		}
	}
	g := &task.Graph{Nodes: specs, Stores: stores, SubTopologies: subs, Handlers: handlers, Repartitions: maps.Clone(b.repartitions)}
	t := &Topology{graph: g, preflights: slices.Clone(b.preflights), storePreflights: slices.Clone(b.storePreflights)}
	for _, d := range b.nodes {
		t.nodeOrder = append(t.nodeOrder, d.spec.Name)
	}
	for _, d := range b.stores {
		t.storeOrder = append(t.storeOrder, d.spec.Name)
	}
	return t, nil
}

func joinProblems(ps []*ValidationError) error {
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// topoOrder returns the nodes parents-first; ties keep declaration order.
// Nodes on a cycle are left out.
func (b *Builder) topoOrder(specs map[string]*task.NodeSpec) []string {
	indeg := make(map[string]int, len(specs))
	for _, d := range b.nodes {
		indeg[d.spec.Name] = len(specs[d.spec.Name].Parents)
	}
	var order []string
	done := map[string]bool{}
	for progress := true; progress; {
		progress = false
		for _, d := range b.nodes {
			n := d.spec.Name
			if done[n] || indeg[n] > 0 {
				continue
			}
			done[n], progress = true, true
			order = append(order, n)
			for _, c := range specs[n].Children {
				indeg[c]--
			}
		}
	}
	return order
}

func (b *Builder) subTopologies(specs map[string]*task.NodeSpec, stores map[string]*task.StoreSpec, order []string) ([]*task.SubTopology, []*ValidationError) {
	parent := map[string]string{}
	var find func(string) string
	find = func(n string) string {
		if p, ok := parent[n]; ok && p != n {
			r := find(p)
			parent[n] = r
			return r
		}
		return n
	}
	union := func(a, c string) { parent[find(a)] = find(c) }
	for _, d := range b.nodes {
		for _, p := range specs[d.spec.Name].Parents {
			union(d.spec.Name, p)
		}
	}
	// Components joined only by a store must not contain a pattern source.
	patternSource := func(root string) string {
		for _, d := range b.nodes {
			if s := specs[d.spec.Name]; s.Pattern != nil && find(s.Name) == root {
				return s.Name
			}
		}
		return ""
	}
	var problems []*ValidationError
	for _, d := range b.stores {
		st := stores[d.spec.Name]
		if st.Global {
			continue // read by every task: it joins no sub-topologies
		}
		roots := map[string]bool{}
		for _, n := range st.Nodes {
			roots[find(n)] = true
		}
		if len(roots) > 1 {
			for r := range roots {
				if src := patternSource(r); src != "" {
					problems = append(problems, &ValidationError{Code: SharedStore, Node: src, Store: st.Name,
						Detail: fmt.Sprintf("store is used by processors %v in different sub-topologies, and source %q reads a topic pattern, which cannot be co-partitioned; give each sub-topology its own store", st.Nodes, src)})
					break
				}
			}
		}
		for _, n := range st.Nodes[1:] {
			union(n, st.Nodes[0])
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	// Number components by their first declared node.
	ids := map[string]int{}
	var subs []*task.SubTopology
	for _, d := range b.nodes {
		r := find(d.spec.Name)
		if _, ok := ids[r]; !ok {
			ids[r] = len(subs)
			subs = append(subs, &task.SubTopology{ID: len(subs)})
		}
	}
	for _, n := range order {
		st := subs[ids[find(n)]]
		s := specs[n]
		st.Nodes = append(st.Nodes, n)
		st.SourceTopics = append(st.SourceTopics, s.Topics...)
		if s.Pattern != nil {
			st.SourcePatterns = append(st.SourcePatterns, s.Pattern)
		}
		for _, name := range s.Stores {
			if stores[name].Global {
				continue // not a task's store
			}
			if !slices.Contains(st.Stores, name) {
				st.Stores = append(st.Stores, name)
			}
		}
	}
	for _, st := range subs {
		slices.Sort(st.SourceTopics)
		st.SourceTopics = slices.Compact(st.SourceTopics)
		slices.Sort(st.Stores)
	}
	return subs, nil
}

// SubTopology describes one sub-topology of a built Topology.
type SubTopology struct {
	// ID numbers sub-topologies from 0 in declaration order.
	ID int
	// Nodes lists the node names, parents before children.
	Nodes []string
	// SourceTopics are the topics its sources read, sorted; they form one
	// co-partition group.
	SourceTopics []string
	// SourcePatterns are the topic patterns its sources read.
	SourcePatterns []*regexp.Regexp
	// Stores are the names of its stores, sorted.
	Stores []string
}

// SubTopologies returns the sub-topologies; a task runs one of them for
// one partition.
func (t *Topology) SubTopologies() []SubTopology {
	out := make([]SubTopology, len(t.graph.SubTopologies))
	for i, s := range t.graph.SubTopologies {
		out[i] = SubTopology{ID: s.ID, Nodes: slices.Clone(s.Nodes), SourceTopics: slices.Clone(s.SourceTopics),
			SourcePatterns: slices.Clone(s.SourcePatterns), Stores: slices.Clone(s.Stores)}
	}
	return out
}

// CoPartitionGroups returns, for every sub-topology that reads more than
// one topic, the sorted topics that must have the same number of
// partitions (and be partitioned by the same key). The runtime checks
// partition counts at start-up.
func (t *Topology) CoPartitionGroups() [][]string {
	var out [][]string
	for _, s := range t.graph.SubTopologies {
		if len(s.SourceTopics) > 1 {
			out = append(out, slices.Clone(s.SourceTopics))
		}
	}
	return out
}
