package topology_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// tableStep is one change of a join test: a value (or, with del, a
// tombstone) for key on the left ("L") or right ("R") topic at ms.
type tableStep struct {
	side, key, value string
	del              bool
	ms               int64
}

// The sequence every table–table join test runs: updates and tombstones
// on both sides, including tombstones of keys a side never had.
var tableJoinSteps = []tableStep{
	{side: "L", key: "k", value: "a1", ms: 1},
	{side: "R", key: "k", value: "b1", ms: 2},
	{side: "L", key: "k", value: "a2", ms: 3},
	{side: "R", key: "k", value: "b2", ms: 4},
	{side: "L", key: "k", del: true, ms: 5},
	{side: "L", key: "k", value: "a3", ms: 6},
	{side: "R", key: "k", del: true, ms: 7},
	{side: "R", key: "k", del: true, ms: 8}, // right never had it now
	{side: "L", key: "k", del: true, ms: 9},
	{side: "L", key: "x", del: true, ms: 10}, // neither side has x
	{side: "R", key: "y", value: "c1", ms: 11},
	{side: "R", key: "y", del: true, ms: 12},
}

// tableJoinDriver declares tables "left" (topic l) and "right" (topic r),
// lets join declare the join of them, writes its changes to topic out,
// and pipes tableJoinSteps.
func tableJoinDriver(t *testing.T, join func(l, r topology.KTable[string, string]) topology.KTable[string, string]) *testutil.TestDriver {
	t.Helper()
	b := topology.New()
	l := topology.TableOf(b, "left", "l", serde.String(), serde.String())
	r := topology.TableOf(b, "right", "r", serde.String(), serde.String())
	join(l, r).ToStream("out-changes").To("to-out", "out", serde.String(), topology.ChangeSerde(serde.String()))
	d := dslDriver(t, b)
	ins := map[string]*testutil.InputTopic[string, topology.Change[string]]{
		"L": testutil.NewInputTopic(d, "l", serde.String(), topology.ChangeSerde(serde.String())),
		"R": testutil.NewInputTopic(d, "r", serde.String(), topology.ChangeSerde(serde.String())),
	}
	for _, s := range tableJoinSteps {
		c := topology.Update(s.value)
		if s.del {
			c = topology.Deletion[string]()
		}
		if err := ins[s.side].Pipe(s.key, c, at(s.ms)); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

func orDash(v string, ok bool) string {
	if !ok {
		return "-"
	}
	return v
}

// Each expectation below is worked out case by case from Kafka Streams'
// KTableKTableInnerJoin, KTableKTableLeftJoin/RightJoin and
// KTableKTableOuterJoin processors with caching off (left and outer joins
// send old values, so a side's deletion of a key it did not have, while
// the other side lacks it too, forwards nothing).
func TestJoinTablesInner(t *testing.T) {
	d := tableJoinDriver(t, func(l, r topology.KTable[string, string]) topology.KTable[string, string] {
		return topology.JoinTables(l, r, "joined", func(_ string, a, b string) (string, error) { return a + "/" + b, nil }, serde.String())
	})
	checkStrings(t, "inner join", changes(t, d, "out", serde.String(), serde.String()),
		// 1: no right value, nothing.
		"k=a1/b1@2", "k=a2/b1@3", "k=a2/b2@4",
		"k=<deleted>@5", // left deleted while right has k
		"k=a3/b2@6",
		"k=<deleted>@7", // right deleted while left has k
		"k=<deleted>@8", // right's tombstone of a key it lacks: left has k, so Kafka Streams forwards it too
		// 9: left deleted, right lacks k: nothing. 10-12: never both.
	)
	if got := kvStoreContent[string, string](t, d, "joined"); len(got) != 0 {
		t.Errorf("result store = %v, want empty", got)
	}
}

func TestJoinTablesLeft(t *testing.T) {
	d := tableJoinDriver(t, func(l, r topology.KTable[string, string]) topology.KTable[string, string] {
		return topology.LeftJoinTables(l, r, "joined", func(_ string, a, b string, bok bool) (string, error) {
			return a + "/" + orDash(b, bok), nil
		}, serde.String())
	})
	checkStrings(t, "left join", changes(t, d, "out", serde.String(), serde.String()),
		"k=a1/-@1", "k=a1/b1@2", "k=a2/b1@3", "k=a2/b2@4",
		"k=<deleted>@5", // left deleted
		"k=a3/b2@6",
		"k=a3/-@7", "k=a3/-@8", // right deleted (twice): the left row stays with no right value
		"k=<deleted>@9", // left deleted, right lacks k
		// 10: left's tombstone of a key it lacks, right lacks it: nothing.
		// 11, 12: right only: nothing.
	)
}

func TestJoinTablesOuter(t *testing.T) {
	d := tableJoinDriver(t, func(l, r topology.KTable[string, string]) topology.KTable[string, string] {
		return topology.OuterJoinTables(l, r, "joined", func(_ string, a string, aok bool, b string, bok bool) (string, error) {
			return orDash(a, aok) + "/" + orDash(b, bok), nil
		}, serde.String())
	})
	checkStrings(t, "outer join", changes(t, d, "out", serde.String(), serde.String()),
		"k=a1/-@1", "k=a1/b1@2", "k=a2/b1@3", "k=a2/b2@4",
		"k=-/b2@5", // left deleted, right has k
		"k=a3/b2@6",
		"k=a3/-@7", "k=a3/-@8",
		"k=<deleted>@9", // left deleted, right lacks k
		// 10: nothing.
		"y=-/c1@11", "y=<deleted>@12",
	)
	if stored := kvStoreContent[string, string](t, d, "joined"); len(stored) != 0 {
		t.Errorf("result store = %v, want empty", stored)
	}
}

// The result table is materialized and queryable, and an update carries
// the larger timestamp of the two sides where a side's store keeps
// timestamps (an aggregation's).
func TestJoinTablesResultStoreAndTimestamps(t *testing.T) {
	b := topology.New()
	counts := topology.Count(topology.Stream(b, "events", "events", serde.String(), serde.String()).GroupByKey(), "counts")
	limits := topology.TableOf(b, "limits", "limits", serde.String(), serde.Int64())
	joined := topology.JoinTables(counts, limits, "over", func(_ string, n, limit int64) (bool, error) { return n > limit, nil }, serde.JSON[bool]())
	joined.ToStream("over-changes").To("to-over", "over", serde.String(), topology.ChangeSerde(serde.JSON[bool]()))
	if ref, ok := joined.Store(); !ok || ref.Name() != "over" {
		t.Fatalf("result store %v, %v; want over", ref.Name(), ok)
	}
	d := dslDriver(t, b)
	ev := testutil.NewInputTopic(d, "events", serde.String(), serde.String())
	lim := testutil.NewInputTopic(d, "limits", serde.String(), serde.Int64())
	for _, step := range []func() error{
		func() error { return ev.Pipe("c", "e", at(10)) }, // count 1 @10, no limit yet
		func() error { return lim.Pipe("c", 1, at(5)) },   // limit @5, count @10: result @10
		func() error { return ev.Pipe("c", "e", at(20)) }, // count 2 @20
		func() error { return lim.Pipe("c", 3, at(30)) },  // limit @30
		func() error { return ev.Pipe("c", "e", at(15)) }, // count 3 keeps @20 (out of order); limit has no timestamp
		func() error { return lim.Pipe("c", 2, at(25)) },  // limit @25, count @20: result @25
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	checkStrings(t, "joined", changes(t, d, "over", serde.String(), serde.JSON[bool]()),
		"c=false@10", "c=true@20", "c=false@30", "c=false@20", "c=true@25")
	if got := kvStoreContent[string, bool](t, d, "over"); len(got) != 1 || !got["c"] {
		t.Errorf("result store = %v, want c=true", got)
	}
}

// A table join needs both tables' stores and puts them in one
// sub-topology, so their topics are co-partitioned; Build refuses a
// derived table (no store) with a message that says what to do.
func TestJoinTablesBuild(t *testing.T) {
	b := topology.New()
	l := topology.TableOf(b, "left", "l", serde.String(), serde.String())
	r := topology.TableOf(b, "right", "r", serde.String(), serde.String())
	topology.JoinTables(l, r, "joined", func(_ string, a, b string) (string, error) { return a + b, nil }, serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	groups := topo.CoPartitionGroups()
	if len(groups) != 1 || strings.Join(groups[0], ",") != "l,r" {
		t.Errorf("co-partition groups %v, want [[l r]]", groups)
	}
	desc := topo.Describe()
	for _, want := range []string{"joined-left", "joined-right", "joined"} {
		if !strings.Contains(desc, want) {
			t.Errorf("Describe lacks %q:\n%s", want, desc)
		}
	}

	b = topology.New()
	l = topology.TableOf(b, "left", "l", serde.String(), serde.String())
	r = topology.TableOf(b, "right", "r", serde.String(), serde.String())
	derived := r.Filter("some", func(string, string) bool { return true })
	topology.LeftJoinTables(l, derived, "joined", func(_ string, a, b string, _ bool) (string, error) { return a + b, nil }, serde.String())
	_, err = b.Build()
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || ve.Node != "joined" || !strings.Contains(ve.Detail, `right table "some" has no store`) {
		t.Fatalf("Build error %v, want the right table named as having no store", err)
	}
}
