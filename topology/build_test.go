package topology_test

import (
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

func passThrough[K, V any]() processor.Func[K, V, K, V] {
	return func(ctx processor.Context[K, V], r processor.Record[K, V]) error { return ctx.Forward(r) }
}

func validationErrors(err error) []*topology.ValidationError {
	var out []*topology.ValidationError
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		for _, e := range joined.Unwrap() {
			var ve *topology.ValidationError
			if errors.As(e, &ve) {
				out = append(out, ve)
			}
		}
	}
	return out
}

func TestBuildValidation(t *testing.T) {
	str := serde.String()
	tests := []struct {
		name    string
		declare func(b *topology.Builder)
		want    topology.ValidationError // Detail is matched as a substring
	}{
		{
			name: "duplicate node name",
			declare: func(b *topology.Builder) {
				s := topology.Source(b, "in", "a", str, str)
				topology.ProcessFunc(b, "in", s, passThrough[string, string]())
			},
			want: topology.ValidationError{Code: topology.DuplicateName, Node: "in", Detail: "first by a source"},
		},
		{
			name: "duplicate store name",
			declare: func(b *topology.Builder) {
				s := topology.Source(b, "in", "a", str, str)
				topology.KeyValueStore(b, "st", str, str)
				topology.KeyValueStore(b, "st", str, serde.Int64())
				topology.ProcessFunc(b, "p", s, passThrough[string, string](), topology.WithStores("st"))
			},
			want: topology.ValidationError{Code: topology.DuplicateName, Store: "st", Detail: "store name used twice"},
		},
		{
			name: "parent from another builder",
			declare: func(b *topology.Builder) {
				other := topology.Source(topology.New(), "elsewhere", "a", str, str)
				topology.ProcessFunc(b, "p", other, passThrough[string, string]())
			},
			want: topology.ValidationError{Code: topology.UnknownParent, Node: "p", Detail: `parent "elsewhere" was declared on another Builder`},
		},
		{
			name: "zero parent handle",
			declare: func(b *topology.Builder) {
				topology.Sink(b, "out", "o", topology.Node[string, string]{}, str, str)
			},
			want: topology.ValidationError{Code: topology.UnknownParent, Node: "out", Detail: "zero Node handle"},
		},
		{
			name: "unknown store",
			declare: func(b *topology.Builder) {
				s := topology.Source(b, "in", "a", str, str)
				topology.ProcessFunc(b, "p", s, passThrough[string, string](), topology.WithStores("nope"))
			},
			want: topology.ValidationError{Code: topology.UnknownStore, Node: "p", Store: "nope", Detail: "not declared"},
		},
		{
			name: "unconnected store",
			declare: func(b *topology.Builder) {
				topology.Source(b, "in", "a", str, str)
				topology.KeyValueStore(b, "lonely", str, str)
			},
			want: topology.ValidationError{Code: topology.UnconnectedStore, Store: "lonely", Detail: `WithStores("lonely")`},
		},
		{
			name: "store connected twice",
			declare: func(b *topology.Builder) {
				s := topology.Source(b, "in", "a", str, str)
				topology.KeyValueStore(b, "st", str, str)
				topology.ProcessFunc(b, "p", s, passThrough[string, string](), topology.WithStores("st", "st"))
			},
			want: topology.ValidationError{Code: topology.InvalidNode, Node: "p", Store: "st", Detail: "connected twice"},
		},
		{
			name: "topic read by two sources",
			declare: func(b *topology.Builder) {
				topology.Source(b, "in1", "a", str, str)
				topology.Source(b, "in2", "b", str, str, topology.WithTopics("a"))
			},
			want: topology.ValidationError{Code: topology.DuplicateTopic, Node: "in2", Topic: "a", Detail: `already read by source "in1"`},
		},
		{
			name: "store shared with a pattern source",
			declare: func(b *topology.Builder) {
				p := topology.SourcePattern(b, "logs", regexp.MustCompile(`^logs-.*`), str, str)
				s := topology.Source(b, "in", "a", str, str)
				topology.KeyValueStore(b, "st", str, str)
				topology.ProcessFunc(b, "p1", p, passThrough[string, string](), topology.WithStores("st"))
				topology.ProcessFunc(b, "p2", s, passThrough[string, string](), topology.WithStores("st"))
			},
			want: topology.ValidationError{Code: topology.SharedStore, Node: "logs", Store: "st", Detail: "cannot be co-partitioned"},
		},
		{
			name:    "nil serde",
			declare: func(b *topology.Builder) { topology.Source[string, string](b, "in", "a", str, nil) },
			want:    topology.ValidationError{Code: topology.InvalidNode, Node: "in", Detail: "key serde and a value serde"},
		},
		{
			name:    "empty topic",
			declare: func(b *topology.Builder) { topology.Source(b, "in", "", str, str) },
			want:    topology.ValidationError{Code: topology.InvalidNode, Node: "in", Detail: "empty topic"},
		},
		{
			name:    "empty node name",
			declare: func(b *topology.Builder) { topology.Source(b, "", "a", str, str) },
			want:    topology.ValidationError{Code: topology.InvalidNode, Detail: "source has an empty name"},
		},
		{
			name: "timestamp extractor of other types",
			declare: func(b *topology.Builder) {
				topology.Source(b, "in", "a", str, str, topology.WithTimestampExtractor(
					func(r processor.Record[string, int64], _ time.Time) (time.Time, error) { return r.Timestamp, nil }))
			},
			want: topology.ValidationError{Code: topology.InvalidNode, Node: "in", Detail: "source emits Record[string, string]"},
		},
		{
			name: "partitioner of other types",
			declare: func(b *topology.Builder) {
				s := topology.Source(b, "in", "a", str, str)
				topology.Sink(b, "out", "o", s, str, str, topology.WithPartitioner(
					func(string, int64, string, int32) (int32, error) { return 0, nil }))
			},
			want: topology.ValidationError{Code: topology.InvalidNode, Node: "out", Topic: "o", Detail: "partitioner is a"},
		},
		{
			name: "nil supplier",
			declare: func(b *topology.Builder) {
				s := topology.Source(b, "in", "a", str, str)
				topology.Process[string, string, string, string](b, "p", s, nil)
			},
			want: topology.ValidationError{Code: topology.InvalidNode, Node: "p", Detail: "supplier is nil"},
		},
		{
			name: "pattern and topics",
			declare: func(b *topology.Builder) {
				topology.SourcePattern(b, "in", regexp.MustCompile("x"), str, str, topology.WithTopics("a"))
			},
			want: topology.ValidationError{Code: topology.InvalidNode, Node: "in", Detail: "either topics or a pattern"},
		},
		{
			name:    "merge without parents",
			declare: func(b *topology.Builder) { topology.Merge[string, string](b, "m") },
			want:    topology.ValidationError{Code: topology.InvalidNode, Node: "m", Detail: "at least one parent"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := topology.New()
			tc.declare(b)
			topo, err := b.Build()
			if err == nil {
				t.Fatalf("Build succeeded (%d sub-topologies); want %v", len(topo.SubTopologies()), tc.want.Code)
			}
			var found bool
			for _, ve := range validationErrors(err) {
				if ve.Code == tc.want.Code && ve.Node == tc.want.Node && ve.Store == tc.want.Store && ve.Topic == tc.want.Topic &&
					strings.Contains(ve.Detail, tc.want.Detail) {
					found = true
				}
			}
			if !found {
				t.Fatalf("Build error %q does not contain %+v", err, tc.want)
			}
			// The message names what it is about.
			for _, name := range []string{tc.want.Node, tc.want.Store, tc.want.Topic} {
				if name != "" && !strings.Contains(err.Error(), `"`+name+`"`) {
					t.Errorf("error %q does not name %q", err, name)
				}
			}
		})
	}
}

func TestBuildReportsEveryProblem(t *testing.T) {
	b := topology.New()
	s := topology.Source(b, "in", "a", serde.String(), serde.String())
	topology.ProcessFunc(b, "in", s, passThrough[string, string]())
	topology.KeyValueStore(b, "lonely", serde.String(), serde.String())
	topology.ProcessFunc(b, "p", s, passThrough[string, string](), topology.WithStores("missing"))
	_, err := b.Build()
	var codes []topology.ValidationCode
	for _, ve := range validationErrors(err) {
		codes = append(codes, ve.Code)
	}
	want := []topology.ValidationCode{topology.DuplicateName, topology.UnknownStore, topology.UnconnectedStore}
	if !slices.Equal(codes, want) {
		t.Fatalf("codes = %v, want %v (error: %v)", codes, want, err)
	}
	var first *topology.ValidationError
	if !errors.As(err, &first) || first.Code != topology.DuplicateName {
		t.Fatalf("errors.As gave %v", first)
	}
}

func TestSubTopologiesAndCoPartitioning(t *testing.T) {
	str := serde.String()
	b := topology.New()
	// Flow 1: payments enriched from a customer table (joined through the
	// table's store).
	topology.Table(b, "customers", "customer-profiles", str, str)
	pay := topology.Source(b, "payments", "payments", str, str)
	enriched := topology.ProcessFunc(b, "enrich", pay, passThrough[string, string](), topology.WithStores("customers"))
	topology.Sink(b, "enriched-out", "payments-enriched", enriched, str, str)
	// Flow 2: independent.
	logs := topology.Source(b, "logs", "app-logs", str, str)
	topology.Sink(b, "logs-out", "app-logs-copy", logs, str, str)
	// Flow 3: two topics merged, and two more joined by a shared store.
	x := topology.Source(b, "x", "x-topic", str, str)
	y := topology.Source(b, "y", "y-topic", str, str)
	topology.Merge(b, "xy", x, y)
	topology.KeyValueStore(b, "shared", str, str)
	z := topology.Source(b, "z", "z-topic", str, str)
	w := topology.Source(b, "w", "w-topic", str, str, topology.WithTopics("w2-topic"))
	topology.ProcessFunc(b, "pz", z, passThrough[string, string](), topology.WithStores("shared"))
	topology.ProcessFunc(b, "pw", w, passThrough[string, string](), topology.WithStores("shared"))

	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	subs := topo.SubTopologies()
	type sub struct{ nodes, topics, stores string }
	var got []sub
	for _, s := range subs {
		got = append(got, sub{strings.Join(s.Nodes, ","), strings.Join(s.SourceTopics, ","), strings.Join(s.Stores, ",")})
	}
	want := []sub{
		{"customers-source,customers-materialize,payments,enrich,enriched-out", "customer-profiles,payments", "customers"},
		{"logs,logs-out", "app-logs", ""},
		{"x,y,xy", "x-topic,y-topic", ""},
		{"z,w,pz,pw", "w-topic,w2-topic,z-topic", "shared"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sub-topologies:\n got %q\nwant %q", got, want)
	}
	groups := topo.CoPartitionGroups()
	wantGroups := [][]string{{"customer-profiles", "payments"}, {"x-topic", "y-topic"}, {"w-topic", "w2-topic", "z-topic"}}
	if !slices.EqualFunc(groups, wantGroups, slices.Equal) {
		t.Fatalf("co-partition groups = %v, want %v", groups, wantGroups)
	}
}
