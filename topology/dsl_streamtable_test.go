package topology_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// streamTableRig is a TestDriver over one stream–table join topology: "txns"
// (customer → amount) against the table "customers" (customer → name),
// output on "out" as "<amount>|<name>".
type streamTableRig struct {
	d         *testutil.TestDriver
	txns      *testutil.InputTopic[string, string]
	customers *testutil.InputTopic[string, string]
	out       *testutil.OutputTopic[string, string]
}

func newStreamTableRig(t *testing.T, build func(b *topology.Builder)) *streamTableRig {
	t.Helper()
	b := topology.New()
	build(b)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
	})
	return &streamTableRig{d: d,
		txns:      testutil.NewInputTopic(d, "txns", serde.String(), serde.String()),
		customers: testutil.NewInputTopic(d, "customers", serde.String(), serde.String()),
		out:       testutil.NewOutputTopic(d, "out", serde.String(), serde.String())}
}

func (r *streamTableRig) pipe(t *testing.T, topic *testutil.InputTopic[string, string], key, value string, ms int64, hs ...processor.Header) {
	t.Helper()
	if err := topic.Pipe(key, value, time.UnixMilli(ms), hs...); err != nil {
		t.Fatal(err)
	}
}

func (r *streamTableRig) tombstone(t *testing.T, key string, ms int64) {
	t.Helper()
	if err := r.d.PipeRaw("customers", []byte(key), nil, time.UnixMilli(ms), nil); err != nil {
		t.Fatal(err)
	}
}

// results reads the output as "key=value@ms" lines.
func (r *streamTableRig) results(t *testing.T) []string {
	t.Helper()
	recs, err := r.out.ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, rec := range recs {
		out = append(out, fmt.Sprintf("%s=%s@%d", rec.Key, rec.Value, rec.Timestamp.UnixMilli()))
	}
	return out
}

func wantLines(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

func innerJoiner(_ string, amount, name string) (string, error) { return amount + "|" + name, nil }

func leftJoiner(_ string, amount, name string, found bool) (string, error) {
	if !found {
		name = "none"
	}
	return amount + "|" + name, nil
}

func stJoinTopology(left bool) func(b *topology.Builder) {
	return func(b *topology.Builder) {
		txns := topology.Stream(b, "txns", "txns", serde.String(), serde.String())
		customers := topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
		var out topology.KStream[string, string]
		if left {
			out = topology.LeftJoin(txns, customers, "enrich", leftJoiner)
		} else {
			out = topology.Join(txns, customers, "enrich", innerJoiner)
		}
		out.To("to-out", "out", serde.String(), serde.String())
	}
}

// TestStreamTableJoinInnerAndLeft: a stream record joins the table's
// value for its key at processing time; a key not in the table (never
// there, or deleted) produces nothing in the inner join and
// joiner(..., found=false) in the left join; table updates and
// tombstones produce nothing themselves; output carries the stream
// record's timestamp and headers.
func TestStreamTableJoinInnerAndLeft(t *testing.T) {
	for _, left := range []bool{false, true} {
		t.Run(map[bool]string{false: "inner", true: "left"}[left], func(t *testing.T) {
			r := newStreamTableRig(t, stJoinTopology(left))
			r.pipe(t, r.txns, "c1", "10", 1)       // no customer yet
			r.pipe(t, r.customers, "c1", "ann", 2) // no output
			r.pipe(t, r.txns, "c1", "20", 3, processor.Header{Key: "trace", Value: []byte("t-20")})
			r.pipe(t, r.customers, "c1", "anne", 4) // rename: no output
			r.pipe(t, r.txns, "c1", "30", 5)
			r.pipe(t, r.txns, "c2", "40", 6) // another key
			r.tombstone(t, "c1", 7)          // no output
			r.pipe(t, r.txns, "c1", "50", 8)
			r.pipe(t, r.customers, "c1", "ann-again", 9)
			r.pipe(t, r.txns, "c1", "60", 10)
			recs, err := r.out.ReadRecords()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, rec := range recs {
				got = append(got, fmt.Sprintf("%s=%s@%d", rec.Key, rec.Value, rec.Timestamp.UnixMilli()))
				if rec.Value == "20|ann" && (len(rec.Headers) != 1 || string(rec.Headers[0].Value) != "t-20") {
					t.Errorf("headers of 20|ann: %v, want the stream record's", rec.Headers)
				}
			}
			if left {
				wantLines(t, got, "c1=10|none@1", "c1=20|ann@3", "c1=30|anne@5", "c2=40|none@6", "c1=50|none@8", "c1=60|ann-again@10")
			} else {
				wantLines(t, got, "c1=20|ann@3", "c1=30|anne@5", "c1=60|ann-again@10")
			}
		})
	}
}

// TestStreamTableJoinOutOfOrderStream: a plain (not versioned) table is
// looked up at processing time: an out-of-order stream record joins the
// latest value, not the one of its own time (Kafka Streams' semantics
// without a versioned store), and keeps its own timestamp.
func TestStreamTableJoinOutOfOrderStream(t *testing.T) {
	r := newStreamTableRig(t, stJoinTopology(true))
	r.pipe(t, r.customers, "c1", "v1", 100)
	r.pipe(t, r.customers, "c1", "v2", 200)
	r.pipe(t, r.txns, "c1", "late", 150)
	r.pipe(t, r.txns, "c1", "early", 50)
	wantLines(t, r.results(t), "c1=late|v2@150", "c1=early|v2@50")
}

// TestStreamTableJoinNullKeys: a stream record with a null key (on the
// wire) is dropped by the inner join and joined with no table value by
// the left join (KIP-962); a table record with a null key does not reach
// the table (the key serde turns it into "", which is not the stream's
// key here).
func TestStreamTableJoinNullKeys(t *testing.T) {
	for _, left := range []bool{false, true} {
		t.Run(map[bool]string{false: "inner", true: "left"}[left], func(t *testing.T) {
			r := newStreamTableRig(t, stJoinTopology(left))
			r.pipe(t, r.customers, "", "empty-key-name", 1)
			if err := r.d.PipeRaw("txns", nil, []byte("10"), time.UnixMilli(2), nil); err != nil {
				t.Fatal(err)
			}
			r.pipe(t, r.txns, "", "20", 3) // an empty key is a key
			if left {
				wantLines(t, r.results(t), "=10|none@2", "=20|empty-key-name@3")
			} else {
				wantLines(t, r.results(t), "=20|empty-key-name@3")
			}
		})
	}
}

// TestStreamTableJoinRepartitionsKeyChangedStream: a stream whose key was
// changed goes through "<application-id>-<name>-repartition" before the
// join, so each record meets the table in its new key's partition.
func TestStreamTableJoinRepartitionsKeyChangedStream(t *testing.T) {
	var topoDesc string
	build := func(b *topology.Builder) {
		// txns are keyed by transaction id; the value is "customer:amount".
		txns := topology.Stream(b, "txns", "txns", serde.String(), serde.String())
		byCustomer := topology.Map(txns, "by-customer", func(_ string, v string) (string, string, error) {
			c, amount, ok := strings.Cut(v, ":")
			if !ok {
				return "", "", errors.New("bad transaction " + v)
			}
			return c, amount, nil
		})
		customers := topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
		topology.Join(byCustomer, customers, "enrich", innerJoiner, topology.WithSerdes(serde.String(), serde.String())).
			To("to-out", "out", serde.String(), serde.String())
	}
	b := topology.New()
	build(b)
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	topoDesc = topo.Describe()
	for _, want := range []string{"<application-id>-enrich-repartition", "enrich-repartition-sink", "enrich-repartition-source"} {
		if !strings.Contains(topoDesc, want) {
			t.Errorf("Describe has no %q:\n%s", want, topoDesc)
		}
	}
	r := newStreamTableRig(t, build)
	r.pipe(t, r.customers, "c1", "ann", 1)
	r.pipe(t, r.txns, "tx1", "c1:10", 2)
	r.pipe(t, r.txns, "tx2", "c2:20", 3)
	r.pipe(t, r.customers, "c2", "bob", 4)
	r.pipe(t, r.txns, "tx3", "c2:30", 5)
	wantLines(t, r.results(t), "c1=10|ann@2", "c2=30|bob@5")
	if n := len(r.d.ReadRawOutput(testutil.DriverApplicationID + "-enrich-repartition")); n != 3 {
		t.Errorf("%d records through the repartition topic, want 3", n)
	}
}

// TestStreamTableJoinDerivedTables: a table derived by Filter or
// MapTableValues is read through its parent's store with the derivation
// applied, as Kafka Streams' value getters: a filtered-out key is not in
// the table, a mapped value is the mapped one.
func TestStreamTableJoinDerivedTables(t *testing.T) {
	r := newStreamTableRig(t, func(b *topology.Builder) {
		txns := topology.Stream(b, "txns", "txns", serde.String(), serde.String())
		customers := topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
		active := customers.FilterNot("active", func(_ string, name string) bool { return strings.HasPrefix(name, "closed-") })
		upper := topology.MapTableValues(active, "upper", func(_ string, name string) (int, error) { return len(name), nil })
		topology.LeftJoin(txns, upper, "enrich", func(_ string, amount string, n int, found bool) (string, error) {
			return fmt.Sprintf("%s|%d|%v", amount, n, found), nil
		}).To("to-out", "out", serde.String(), serde.String())
	})
	r.pipe(t, r.customers, "c1", "ann", 1)
	r.pipe(t, r.customers, "c2", "closed-bob", 2)
	r.pipe(t, r.txns, "c1", "10", 3)
	r.pipe(t, r.txns, "c2", "20", 4)
	r.pipe(t, r.customers, "c2", "bob", 5)
	r.pipe(t, r.txns, "c2", "30", 6)
	wantLines(t, r.results(t), "c1=10|3|true@3", "c2=20|0|false@4", "c2=30|3|true@6")
}

// TestStreamTableJoinBuildErrors: Build refuses a join with a table that
// has no key-value store behind it, and a nil joiner.
func TestStreamTableJoinBuildErrors(t *testing.T) {
	b := topology.New()
	txns := topology.Stream(b, "txns", "txns", serde.String(), serde.String())
	sessions := topology.CountSessions(txns.GroupByKey().SessionWindowedBy(topology.SessionWindows(time.Minute)), "sessions")
	keyed := topology.Map(txns, "windowed", func(k, v string) (topology.Windowed[string], string, error) {
		return topology.Windowed[string]{Key: k}, v, nil
	})
	topology.Join(keyed, sessions, "by-session", func(_ topology.Windowed[string], v string, n int64) (string, error) { return v, nil })
	customers := topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
	topology.Join[string, string, string, string](txns, customers, "nil-joiner", nil)
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted the joins")
	}
	for _, want := range []string{`"by-session"`, "no key-value store", `"nil-joiner"`, "joiner function is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build error has no %q: %v", want, err)
		}
	}
}
