package topology_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// joinKind selects the join a joinRig declares.
type joinKind int

const (
	innerJoin joinKind = iota
	leftJoin
	outerJoin
)

// joinRig pipes records into topics "left" and "right" and reads
// "key:left+right@ms" results (a missing side shows as "-") from "out".
type joinRig struct {
	d           *testutil.TestDriver
	left, right *testutil.InputTopic[string, string]
	out         *testutil.OutputTopic[string, string]
}

func joinTopology(t *testing.T, kind joinKind, w topology.JoinWindows, opts ...topology.StreamJoinOption) *topology.Topology {
	t.Helper()
	b := topology.New()
	l := topology.Stream(b, "left", "left", serde.String(), serde.String())
	r := topology.Stream(b, "right", "right", serde.String(), serde.String())
	var joined topology.KStream[string, string]
	switch kind {
	case innerJoin:
		joined = topology.JoinStreams(l, r, "join", w, func(_ string, lv, rv string) (string, error) { return lv + "+" + rv, nil }, opts...)
	case leftJoin:
		joined = topology.LeftJoinStreams(l, r, "join", w, func(_ string, lv, rv string, ok bool) (string, error) {
			if !ok {
				rv = "-"
			}
			return lv + "+" + rv, nil
		}, opts...)
	case outerJoin:
		joined = topology.OuterJoinStreams(l, r, "join", w, func(_ string, lv string, lok bool, rv string, rok bool) (string, error) {
			if !lok {
				lv = "-"
			}
			if !rok {
				rv = "-"
			}
			return lv + "+" + rv, nil
		}, opts...)
	}
	joined.To("out", "out", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func newJoinRig(t *testing.T, kind joinKind, w topology.JoinWindows) *joinRig {
	t.Helper()
	d, err := testutil.NewTestDriver(joinTopology(t, kind, w))
	if err != nil {
		t.Fatal(err)
	}
	rig := &joinRig{}
	rig.attach(d)
	t.Cleanup(func() { rig.d.Close() })
	return rig
}

func (j *joinRig) attach(d *testutil.TestDriver) {
	j.d = d
	j.left = testutil.NewInputTopic(d, "left", serde.String(), serde.String())
	j.right = testutil.NewInputTopic(d, "right", serde.String(), serde.String())
	j.out = testutil.NewOutputTopic(d, "out", serde.String(), serde.String())
}

func (j *joinRig) restart(t *testing.T) {
	t.Helper()
	d, err := j.d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	j.attach(d)
}

func (j *joinRig) l(t *testing.T, key, v string, ms int64) {
	t.Helper()
	if err := j.left.Pipe(key, v, time.UnixMilli(ms)); err != nil {
		t.Fatal(err)
	}
}

func (j *joinRig) r(t *testing.T, key, v string, ms int64) {
	t.Helper()
	if err := j.right.Pipe(key, v, time.UnixMilli(ms)); err != nil {
		t.Fatal(err)
	}
}

// expect checks the results since the last call.
func (j *joinRig) expect(t *testing.T, want string) {
	t.Helper()
	recs, err := j.out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, fmt.Sprintf("%s:%s@%d", r.Key, r.Value, r.Timestamp.UnixMilli()))
	}
	if g := strings.Join(got, " "); g != want {
		t.Fatalf("results\n got %q\nwant %q", g, want)
	}
}

// TestStreamJoinWindowBounds: with 5s before and 10s after, a left record
// at t joins right records in [t-5s, t+10s], both ends included, and not
// a millisecond outside; mirrored, a right record at t joins left records
// in [t-10s, t+5s]. Results carry the larger timestamp.
func TestStreamJoinWindowBounds(t *testing.T) {
	j := newJoinRig(t, innerJoin, topology.JoinWindow(0).Before(5*time.Second).After(10*time.Second).Grace(time.Minute))
	j.l(t, "a", "L", 100_000)
	j.r(t, "a", "r1", 94_999)
	j.r(t, "a", "r2", 95_000)
	j.r(t, "a", "r3", 110_000)
	j.r(t, "a", "r4", 110_001)
	j.expect(t, "a:L+r2@100000 a:L+r3@110000")

	j.r(t, "b", "R", 100_000)
	j.l(t, "b", "l1", 89_999)
	j.l(t, "b", "l2", 90_000)
	j.l(t, "b", "l3", 105_000)
	j.l(t, "b", "l4", 105_001)
	j.expect(t, "b:l2+R@100000 b:l3+R@105000")

	// Keys never join across.
	j.l(t, "c", "L", 100_000)
	j.expect(t, "")
}

// TestStreamJoinLateBeyondGrace: with 10s either side and 5s grace, a
// left record at 0 is accepted while stream time is at most 15s (its
// window's end + grace) and dropped from 15.001s; a right record at 1s
// likewise until 16s. Accepted out-of-order records join what is
// buffered.
func TestStreamJoinLateBeyondGrace(t *testing.T) {
	j := newJoinRig(t, innerJoin, topology.JoinWindow(10*time.Second).Grace(5*time.Second))
	j.r(t, "z", "x", 15_000)
	j.l(t, "a", "L0", 0)    // stream time 15s = end + grace: accepted
	j.r(t, "a", "R5", 5000) // out of order within grace
	j.expect(t, "a:L0+R5@5000")
	j.r(t, "z", "x", 15_001)
	j.l(t, "a", "late", 0)  // 1 ms past end + grace: dropped, not buffered
	j.r(t, "a", "R1", 1000) // right window [-9s, 11s] ends at 11s + 5s: accepted
	j.expect(t, "a:L0+R1@1000")
	j.r(t, "z", "x", 16_001)
	j.r(t, "a", "lateR", 1000) // past 16s: dropped
	j.expect(t, "")
}

// TestStreamJoinLeftUnmatchedAtWindowClose: a left join forwards an
// unmatched left record exactly when stream time passes its time +
// before + after + grace (25s here), not a millisecond earlier; a record
// matched before then, even after waiting, never comes out unmatched.
func TestStreamJoinLeftUnmatchedAtWindowClose(t *testing.T) {
	j := newJoinRig(t, leftJoin, topology.JoinWindow(10*time.Second).Grace(5*time.Second))
	j.l(t, "a", "A", 0)
	j.r(t, "z", "x", 25_000)
	j.expect(t, "")
	j.r(t, "z", "x", 25_001)
	j.expect(t, "a:A+-@0")

	// Matched at once: exactly at t + after.
	j.l(t, "b", "B", 30_000)
	j.r(t, "b", "RB", 40_000)
	j.expect(t, "b:B+RB@40000")
	// Matched after waiting until the last stream time at which a
	// matching right record is still on time.
	j.l(t, "c", "C", 100_000)
	j.r(t, "z", "x", 125_000)
	j.expect(t, "")
	j.r(t, "c", "RC", 110_000) // right window ends at 120s, + grace = 125s: on time
	j.expect(t, "c:C+RC@110000")
	j.r(t, "z", "x", 1_000_000)
	j.expect(t, "")
	// An unmatched right record is not forwarded by a left join.
	j.r(t, "d", "RD", 1_000_000)
	j.r(t, "z", "x", 2_000_000)
	j.expect(t, "")
}

// TestStreamJoinOuter: unmatched records of both sides come out once
// their windows have closed, in time order; matched ones only joined.
func TestStreamJoinOuter(t *testing.T) {
	j := newJoinRig(t, outerJoin, topology.JoinWindow(time.Second))
	j.r(t, "a", "RA", 1000)
	j.l(t, "b", "LB", 1500)
	j.l(t, "c", "LC", 2000)
	j.r(t, "c", "RC", 2500)
	j.expect(t, "c:LC+RC@2500")
	// Due at t + 2s + 1ms: RA at 3001, LB at 3501.
	j.l(t, "z", "x", 3000)
	j.expect(t, "")
	j.l(t, "z", "x", 3001)
	j.expect(t, "a:-+RA@1000")
	j.r(t, "y", "y", 10_000)
	j.expect(t, "b:LB+-@1500 z:x+-@3000 z:x+-@3001")
}

// TestStreamJoinDuplicates: records with the same key and timestamp are
// all kept, on both sides, joined and forwarded unmatched one by one.
func TestStreamJoinDuplicates(t *testing.T) {
	j := newJoinRig(t, outerJoin, topology.JoinWindow(time.Second))
	j.l(t, "a", "x", 0)
	j.l(t, "a", "y", 0)
	j.r(t, "a", "r", 0)
	j.expect(t, "a:x+r@0 a:y+r@0")
	j.r(t, "a", "s", 0)
	j.expect(t, "a:x+s@0 a:y+s@0")
	j.l(t, "b", "u", 5000)
	j.l(t, "b", "v", 5000)
	j.r(t, "c", "p", 5000)
	j.r(t, "c", "q", 5000)
	j.l(t, "z", "-", 7001)
	j.expect(t, "b:u+-@5000 b:v+-@5000 c:-+p@5000 c:-+q@5000")
}

// TestStreamJoinRestart: the window stores and the pending records come
// back after a restart (TestDriver.Restart restores from the
// changelogs): a record buffered before joins a record after, a pending
// record matched after the restart never comes out unmatched, and one
// left unmatched comes out once at its window's close.
func TestStreamJoinRestart(t *testing.T) {
	j := newJoinRig(t, leftJoin, topology.JoinWindow(10*time.Second))
	j.l(t, "a", "A", 0)
	j.l(t, "b", "B", 1000)
	j.l(t, "b", "B2", 1000)
	j.restart(t)
	j.r(t, "a", "RA", 5000)
	j.expect(t, "a:A+RA@5000")
	j.restart(t)
	j.r(t, "z", "x", 21_000)
	j.expect(t, "")
	j.r(t, "z", "x", 21_001)
	j.expect(t, "b:B+-@1000 b:B2+-@1000")
	j.restart(t)
	j.r(t, "z", "x", 100_000)
	j.expect(t, "")
}

// TestStreamJoinNullKeys: as Kafka Streams 3.7+ (KIP-962), a left
// join forwards a left record with a null key unmatched at once and
// drops a right one.
func TestStreamJoinNullKeys(t *testing.T) {
	j := newJoinRig(t, leftJoin, topology.JoinWindow(time.Second))
	if err := j.d.PipeRaw("left", nil, []byte("L"), time.UnixMilli(10), nil); err != nil {
		t.Fatal(err)
	}
	if err := j.d.PipeRaw("right", nil, []byte("R"), time.UnixMilli(10), nil); err != nil {
		t.Fatal(err)
	}
	j.expect(t, ":L+-@10")
}

// TestStreamJoinTopology: stores, nodes and the repartition topic of a
// key-changed input, and the co-partition group of both inputs.
func TestStreamJoinTopology(t *testing.T) {
	b := topology.New()
	l := topology.Stream(b, "auths", "auths", serde.String(), serde.Int64())
	r := topology.SelectKey(topology.Stream(b, "caps", "caps", serde.String(), serde.Int64()), "by-auth",
		func(k string, _ int64) (string, error) { return k, nil })
	topology.LeftJoinStreams(l, r, "match", topology.JoinWindow(time.Hour), func(_ string, a, c int64, _ bool) (int64, error) { return a - c, nil }).
		To("out", "out", serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var joinSub topology.SubTopology
	for _, s := range topo.SubTopologies() {
		if slices.Contains(s.Nodes, "match") {
			joinSub = s
		}
	}
	if got, want := fmt.Sprint(joinSub.Stores), "[match-other-join-store match-outer-shared-join-store match-this-join-store]"; got != want {
		t.Errorf("stores %s, want %s", got, want)
	}
	if src := joinSub.SourceTopics; len(src) != 2 || !slices.Contains(src, "auths") || !slices.Contains(src, "<application-id>-match-right-repartition") {
		t.Errorf("join sub-topology reads %v, want auths and the repartition topic match-right-repartition", src)
	}
	if groups := fmt.Sprint(topo.CoPartitionGroups()); !strings.Contains(groups, "auths") || !strings.Contains(groups, "match-right-repartition") {
		t.Errorf("co-partition groups %s, want auths with match-right-repartition", groups)
	}
	for _, n := range []string{"match-left", "match-right", "match-right-repartition-sink", "match-right-repartition-source"} {
		if !strings.Contains(topo.Describe(), n) {
			t.Errorf("Describe has no node %s:\n%s", n, topo.Describe())
		}
	}

	// Inner joins have no outer store.
	if got := fmt.Sprint(joinTopology(t, innerJoin, topology.JoinWindow(time.Second)).SubTopologies()[0].Stores); got != "[join-other-join-store join-this-join-store]" {
		t.Errorf("inner join stores %s", got)
	}
}

// TestStreamJoinRefusals: bad windows, WithoutLogging and missing serdes
// fail Build with the join's name.
func TestStreamJoinRefusals(t *testing.T) {
	for name, tc := range map[string]struct {
		w    topology.JoinWindows
		opts []topology.StreamJoinOption
		want string
	}{
		"negative before": {topology.JoinWindow(time.Second).Before(-time.Second), nil, "before bound"},
		"sub-ms after":    {topology.JoinWindow(time.Second).After(time.Microsecond), nil, "after bound"},
		"negative grace":  {topology.JoinWindow(time.Second).Grace(-1), nil, "grace"},
		"unlogged":        {topology.JoinWindow(time.Second), []topology.StreamJoinOption{topology.StreamJoinStores(topology.WithoutLogging())}, "WithoutLogging"},
		"wrong serdes":    {topology.JoinWindow(time.Second), []topology.StreamJoinOption{topology.StreamJoinSerdes(serde.Int64(), serde.String(), serde.String())}, "StreamJoinSerdes"},
	} {
		t.Run(name, func(t *testing.T) {
			b := topology.New()
			l := topology.Stream(b, "left", "left", serde.String(), serde.String())
			r := topology.Stream(b, "right", "right", serde.String(), serde.String())
			topology.JoinStreams(l, r, "j", tc.w, func(_ string, a, b string) (string, error) { return a + b, nil }, tc.opts...).
				To("out", "out", serde.String(), serde.String())
			_, err := b.Build()
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "j") {
				t.Fatalf("Build: %v, want an error naming j and %q", err, tc.want)
			}
		})
	}
	// A stream whose value type changed carries no serde.
	b := topology.New()
	l := topology.MapValues(topology.Stream(b, "left", "left", serde.String(), serde.String()), "len",
		func(_ string, v string) (int64, error) { return int64(len(v)), nil })
	r := topology.Stream(b, "right", "right", serde.String(), serde.String())
	topology.JoinStreams(l, r, "j", topology.JoinWindow(time.Second), func(_ string, a int64, b string) (string, error) { return b, nil }).
		To("out", "out", serde.String(), serde.String())
	if _, err := b.Build(); err == nil || !strings.Contains(err.Error(), "left value") {
		t.Fatalf("Build: %v, want a missing left value serde", err)
	}
}

// TestStreamJoinEmitsOnStreamTimePunctuation: a record that advances the
// task's stream time without reaching the join (here dropped by a filter
// before it) still closes windows: the join emits on a stream-time
// punctuation.
func TestStreamJoinEmitsOnStreamTimePunctuation(t *testing.T) {
	b := topology.New()
	l := topology.Stream(b, "left", "left", serde.String(), serde.String())
	r := topology.Stream(b, "right", "right", serde.String(), serde.String()).
		Filter("no-ticks", func(k, _ string) bool { return k != "tick" })
	topology.LeftJoinStreams(l, r, "join", topology.JoinWindow(time.Second), func(_ string, lv, rv string, ok bool) (string, error) {
		if !ok {
			rv = "-"
		}
		return lv + "+" + rv, nil
	}).To("out", "out", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	j := &joinRig{}
	j.attach(d)
	t.Cleanup(func() { j.d.Close() })
	j.l(t, "a", "A", 0)
	j.r(t, "tick", "x", 2000)
	j.expect(t, "")
	j.r(t, "tick", "x", 2001)
	j.expect(t, "a:A+-@0")
}

// TestStreamJoinRepartitionsKeyChangedInput: a re-keyed input goes
// through "<name>-right-repartition" and joins by its new key.
func TestStreamJoinRepartitionsKeyChangedInput(t *testing.T) {
	b := topology.New()
	l := topology.Stream(b, "left", "left", serde.String(), serde.String())
	r := topology.SelectKey(topology.Stream(b, "right", "right", serde.String(), serde.String()), "by-value",
		func(_ string, v string) (string, error) { return v, nil })
	topology.JoinStreams(l, r, "join", topology.JoinWindow(time.Second), func(k string, lv, rv string) (string, error) { return lv + "+" + rv, nil }).
		To("out", "out", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	j := &joinRig{}
	j.attach(d)
	t.Cleanup(func() { j.d.Close() })
	j.l(t, "a", "A", 0)
	j.r(t, "x", "a", 500)
	j.expect(t, "a:A+a@500")
	if n := len(d.ReadRawOutput(testutil.DriverApplicationID + "-join-right-repartition")); n != 1 {
		t.Fatalf("%d records went through the repartition topic, want 1", n)
	}
}
