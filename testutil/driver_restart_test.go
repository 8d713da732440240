package testutil_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

func rel(ts time.Time) string {
	if ts.IsZero() {
		return "none"
	}
	return fmt.Sprintf("%+dm", ts.Sub(dt0)/time.Minute)
}

// statefulTopology writes every "put" record of topic "ev" to a logged
// key-value store, a logged window store (window of the record's minute),
// a logged TTL store (TTL 5 minutes), an unlogged key-value store, and
// deletes "del" keys from the key-value store. A "get" record forwards what
// each store holds for its key, the profile of the key from the table
// "profiles", and the task's stream time. Its value after the colon is the
// minute of the window to fetch.
func statefulTopology(t *testing.T) *topology.Builder {
	t.Helper()
	b := topology.New()
	kv := topology.KeyValueStore(b, "kv", serde.String(), serde.String())
	win := topology.WindowStore(b, "win", serde.String(), serde.String(), store.WindowOptions{Retention: 10 * time.Minute})
	ttl := topology.TTLStore(b, "ttl", serde.String(), serde.String(), 5*time.Minute)
	scratch := topology.KeyValueStore(b, "scratch", serde.String(), serde.String(), topology.WithoutLogging())
	prof := topology.Table(b, "prof", "profiles", serde.String(), serde.String())
	in := topology.Source(b, "ev", "ev", serde.String(), serde.String())
	p := topology.ProcessFunc(b, "p", in, func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		k, err := kv.From(ctx)
		if err != nil {
			return err
		}
		w, err := win.From(ctx)
		if err != nil {
			return err
		}
		tt, err := ttl.From(ctx)
		if err != nil {
			return err
		}
		s, err := scratch.From(ctx)
		if err != nil {
			return err
		}
		pr, err := prof.From(ctx)
		if err != nil {
			return err
		}
		op, arg, _ := strings.Cut(r.Value, ":")
		switch op {
		case "put":
			return errorsJoin(k.Put(r.Key, arg), w.Put(r.Key, r.Timestamp.Truncate(time.Minute), arg),
				tt.PutAt(r.Key, arg, r.Timestamp), s.Put(r.Key, arg))
		case "del":
			return k.Delete(r.Key)
		case "off":
			md, _ := ctx.RecordMetadata()
			return ctx.Forward(processor.Revalue(r, fmt.Sprintf("offset %d", md.Offset)))
		case "get":
			var minute int
			if _, err := fmt.Sscan(arg, &minute); err != nil {
				return err
			}
			show := func(v string, found bool, err error) string {
				switch {
				case err != nil:
					return "error " + err.Error()
				case !found:
					return "-"
				}
				return v
			}
			out := fmt.Sprintf("%s: kv=%s win=%s ttl=%s scratch=%s prof=%s st=%s", r.Key,
				show(k.Get(r.Key)), show(w.Fetch(r.Key, dt0.Add(time.Duration(minute)*time.Minute))),
				show(tt.Get(r.Key)), show(s.Get(r.Key)), show(pr.Get(r.Key)), rel(ctx.StreamTime()))
			return ctx.Forward(processor.Revalue(r, out))
		}
		return fmt.Errorf("bad op %q", op)
	}, topology.WithStores("kv", "win", "ttl", "scratch", "prof"))
	topology.Sink(b, "out", "got", p, serde.String(), serde.String())
	return b
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// TestDriverRestartRestoresStoresAndStreamTime: after Restart, logged
// key-value, window and TTL stores and tables hold what the old driver's
// tasks committed (deletes and TTL expiries included), unlogged stores
// are empty, stream time is the committed one, input offsets continue,
// and the restored stores go on working (a TTL entry expires by the
// restored stream time).
func TestDriverRestartRestoresStoresAndStreamTime(t *testing.T) {
	d := newDriver(t, statefulTopology(t))
	pipe := func(d *testutil.TestDriver, topic, key, value string, at time.Duration) {
		t.Helper()
		if err := testutil.NewInputTopic(d, topic, serde.String(), serde.String()).Pipe(key, value, dt0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	query := func(d *testutil.TestDriver) []string {
		t.Helper()
		for _, q := range []struct{ key, minute string }{{"a", "0"}, {"b", "4"}, {"c", "6"}, {"x", "4"}} {
			pipe(d, "ev", q.key, "get:"+q.minute, 0) // an old timestamp: stream time stays
		}
		recs, err := testutil.NewOutputTopic(d, "got", serde.String(), serde.String()).ReadRecords()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.Value)
		}
		return got
	}
	pipe(d, "profiles", "a", "Ada", 0)
	pipe(d, "profiles", "b", "Bob", 0)
	pipe(d, "profiles", "b", "", 0)
	if err := d.PipeRaw("profiles", []byte("b"), nil, dt0, nil); err != nil { // tombstone
		t.Fatal(err)
	}
	pipe(d, "ev", "a", "put:v1", 0)
	pipe(d, "ev", "b", "put:v2", 4*time.Minute)
	pipe(d, "ev", "x", "put:gone", 4*time.Minute)
	pipe(d, "ev", "x", "del:", 4*time.Minute)
	pipe(d, "ev", "c", "put:v3", 6*time.Minute) // TTL: a expires (put at 0, TTL 5m)
	before := query(d)
	want := []string{
		"a: kv=v1 win=v1 ttl=- scratch=v1 prof=Ada st=+6m",
		"b: kv=v2 win=v2 ttl=v2 scratch=v2 prof=- st=+6m",
		"c: kv=v3 win=v3 ttl=v3 scratch=v3 prof=- st=+6m",
		"x: kv=- win=gone ttl=gone scratch=gone prof=- st=+6m",
	}
	if !slices.Equal(before, want) {
		t.Fatalf("before the restart:\n%q\nwant\n%q", before, want)
	}

	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	if err := testutil.NewInputTopic(d, "ev", serde.String(), serde.String()).Pipe("a", "get:0", dt0); err == nil {
		t.Fatal("the old driver still takes input after Restart")
	}
	after := query(d2)
	want = []string{
		"a: kv=v1 win=v1 ttl=- scratch=- prof=Ada st=+6m",
		"b: kv=v2 win=v2 ttl=v2 scratch=- prof=- st=+6m",
		"c: kv=v3 win=v3 ttl=v3 scratch=- prof=- st=+6m",
		"x: kv=- win=gone ttl=gone scratch=- prof=- st=+6m",
	}
	if !slices.Equal(after, want) {
		t.Fatalf("after the restart:\n%q\nwant (unlogged scratch empty)\n%q", after, want)
	}
	// The restored TTL store expires by the restored time: b (put at +4m)
	// expires at +9m.
	pipe(d2, "ev", "d", "put:v4", 10*time.Minute)
	got := query(d2)
	if !strings.HasPrefix(got[1], "b: kv=v2 win=v2 ttl=- ") || !strings.HasSuffix(got[1], "st=+10m") {
		t.Fatalf("after moving time on: %q", got)
	}
	// Input offsets continue: 6 puts and deletes, 3 rounds of 4 queries.
	if err := testutil.NewInputTopic(d2, "ev", serde.String(), serde.String()).Pipe("o", "off:", dt0); err != nil {
		t.Fatal(err)
	}
	if recs := d2.ReadRawOutput("got"); len(recs) != 1 || string(recs[0].Value) != "offset 18" {
		t.Fatalf("output %q, want offset 18", recs)
	}
}

// TestDriverRestartStreamTimePunctuation: a stream-time punctuator does
// not fire at the first record after a restart; it is next due one
// interval after the restored stream time.
func TestDriverRestartStreamTimePunctuation(t *testing.T) {
	d := newDriver(t, tickerTopology(processor.StreamTime, time.Minute))
	pipe := func(d *testutil.TestDriver, at time.Duration) {
		t.Helper()
		if err := testutil.NewInputTopic(d, "events", serde.String(), serde.String()).Pipe("k", "v", dt0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	pipe(d, 0)
	pipe(d, 30*time.Second)
	if got, want := readTicks(t, d), []string{"1@09:30:00"}; !slices.Equal(got, want) {
		t.Fatalf("ticks = %v, want %v", got, want)
	}
	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	pipe(d2, 40*time.Second)
	pipe(d2, 89*time.Second)
	pipe(d2, 90*time.Second)
	if got, want := readTicks(t, d2), []string{"3@09:31:30"}; !slices.Equal(got, want) {
		t.Fatalf("ticks after the restart = %v, want %v (none before 09:31:30, one interval after the restored stream time)", got, want)
	}
}

// TestDriverRestartDropDuplicates: ids DropDuplicates remembered before a
// restart are remembered after it (its TTL store restores from the
// changelog), and expire by event time as before.
func TestDriverRestartDropDuplicates(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.String())
	id := func(_, v string) string { id, _, _ := strings.Cut(v, "|"); return id }
	s.DropDuplicates("dedup", id, 5*time.Minute).To("out", "out", serde.String(), serde.String())
	d := newDriver(t, b)
	pipe := func(d *testutil.TestDriver, v string, at time.Duration) {
		t.Helper()
		if err := testutil.NewInputTopic(d, "in", serde.String(), serde.String()).Pipe("k", v, dt0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(d *testutil.TestDriver) []string {
		t.Helper()
		recs, err := testutil.NewOutputTopic(d, "out", serde.String(), serde.String()).ReadRecords()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.Value)
		}
		return got
	}
	pipe(d, "x|1", 0)
	pipe(d, "y|1", 2*time.Minute)
	pipe(d, "x|2", 3*time.Minute)
	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	pipe(d2, "x|3", 4*time.Minute) // still remembered
	pipe(d2, "y|2", 6*time.Minute) // still remembered (first seen at +2m)
	pipe(d2, "x|4", 6*time.Minute) // expired at +5m: passes
	// Unread output moved to the new driver.
	if got, want := read(d2), []string{"x|1", "y|1", "x|4"}; !slices.Equal(got, want) {
		t.Fatalf("output %v, want %v", got, want)
	}
}
