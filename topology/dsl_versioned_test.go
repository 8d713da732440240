package topology_test

import (
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// versionedJoinTopology joins "txns" (currency → amount) with the
// versioned table of "rates" (currency → rate), keeping history for
// history; the left join writes "<amount>|<rate or none>" and the rates'
// changes go to "rate-changes".
func versionedJoinTopology(history time.Duration) func(b *topology.Builder) {
	return func(b *topology.Builder) {
		txns := topology.Stream(b, "txns", "txns", serde.String(), serde.String())
		rates := topology.TableOf(b, "rates", "customers", serde.String(), serde.String(), topology.Versioned(history))
		topology.LeftJoin(txns, rates, "price", leftJoiner).To("to-out", "out", serde.String(), serde.String())
		rates.ToStream("rate-changes").To("to-rate-changes", "rate-changes", serde.String(), topology.ChangeSerde(serde.String()))
	}
}

// TestVersionedTableJoinByTimestamp: against a versioned table a stream
// record joins the value valid at its own timestamp: nothing before the
// first version, the version in force between updates, nothing after a
// tombstone; an out-of-order table update is filed by its time (and is
// not forwarded as a change, since it is not the latest); a late
// transaction gets the rate of its own time.
func TestVersionedTableJoinByTimestamp(t *testing.T) {
	r := newStreamTableRig(t, versionedJoinTopology(time.Hour))
	rates := r.customers                // the rig's "customers" topic holds the rates here
	r.pipe(t, r.txns, "EUR", "t0", 500) // before the first version
	r.pipe(t, rates, "EUR", "1.10", 1000)
	r.pipe(t, rates, "EUR", "1.20", 2000)
	r.pipe(t, r.txns, "EUR", "t1", 1500)  // late: the rate of 1500
	r.pipe(t, r.txns, "EUR", "t2", 2000)  // at the update: the new rate
	r.pipe(t, r.txns, "EUR", "t3", 2500)  // after it
	r.pipe(t, rates, "EUR", "1.15", 1700) // out-of-order update
	r.pipe(t, r.txns, "EUR", "t4", 1800)
	r.pipe(t, r.txns, "EUR", "t5", 1600)
	r.tombstone(t, "EUR", 3000)
	r.pipe(t, r.txns, "EUR", "t6", 3500)  // deleted
	r.pipe(t, r.txns, "EUR", "t7", 2999)  // just before the deletion
	r.pipe(t, r.txns, "EUR", "t8", 999)   // before the first version
	r.pipe(t, rates, "EUR", "1.30", 4000) // back
	r.pipe(t, r.txns, "EUR", "t9", 4000)
	wantLines(t, r.results(t),
		"EUR=t0|none@500", "EUR=t1|1.10@1500", "EUR=t2|1.20@2000", "EUR=t3|1.20@2500",
		"EUR=t4|1.15@1800", "EUR=t5|1.10@1600", "EUR=t6|none@3500", "EUR=t7|1.20@2999",
		"EUR=t8|none@999", "EUR=t9|1.30@4000")
	changes, err := testutil.NewOutputTopic(r.d, "rate-changes", serde.String(), topology.ChangeSerde(serde.String())).ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range changes {
		if c.Value.Deleted {
			got = append(got, "deleted")
		} else {
			got = append(got, c.Value.Value)
		}
	}
	// 1.15 went into the history only.
	if strings.Join(got, ",") != "1.10,1.20,deleted,1.30" {
		t.Errorf("rate changes forwarded: %v, want 1.10,1.20,deleted,1.30", got)
	}
}

// TestVersionedTableJoinBeyondRetention: a stream record older than the
// table's observed time minus the history retention finds no version (as
// Kafka Streams: no inner join result, a left join with null), even when
// the key had a value then; a table record that old is dropped.
func TestVersionedTableJoinBeyondRetention(t *testing.T) {
	r := newStreamTableRig(t, versionedJoinTopology(10*time.Second))
	rates := r.customers
	r.pipe(t, rates, "EUR", "1.10", 1000)
	r.pipe(t, rates, "EUR", "1.20", 20_000) // observed 20s: history back to 10s
	r.pipe(t, r.txns, "EUR", "in-retention", 10_000)
	r.pipe(t, r.txns, "EUR", "beyond", 9_999)
	r.pipe(t, rates, "EUR", "too-late", 5_000) // dropped
	r.pipe(t, rates, "GBP", "0.80", 9_000)     // dropped: older than the cutoff
	r.pipe(t, r.txns, "GBP", "gbp", 15_000)
	r.pipe(t, r.txns, "EUR", "latest", 30_000)
	wantLines(t, r.results(t), "EUR=in-retention|1.10@10000", "EUR=beyond|none@9999", "GBP=gbp|none@15000", "EUR=latest|1.20@30000")
}

// TestVersionedTableDerivedAndRestart: a table derived from a versioned
// one is read through the versioned store at the record's time; the
// history survives a restart (restored from the table's own changelog).
func TestVersionedTableDerivedAndRestart(t *testing.T) {
	b := topology.New()
	txns := topology.Stream(b, "txns", "txns", serde.String(), serde.String())
	rates := topology.TableOf(b, "rates", "rates", serde.String(), serde.String(), topology.Versioned(time.Hour))
	if _, ok := rates.Store(); ok {
		t.Error("a versioned table reports a key-value store")
	}
	if ref, ok := rates.VersionedStore(); !ok || ref.Name() != "rates" {
		t.Errorf("VersionedStore() = %v, %v", ref, ok)
	}
	marked := topology.MapTableValues(rates, "marked", func(_ string, v string) (string, error) { return v + "*", nil })
	if _, ok := marked.VersionedStore(); ok {
		t.Error("a derived table reports its parent's versioned store as its own")
	}
	topology.Join(txns, marked, "price", innerJoiner).To("to-out", "out", serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if d := topo.Describe(); !strings.Contains(d, "rates: versioned[string, string]") {
		t.Errorf("Describe does not show the versioned store:\n%s", d)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	in := testutil.NewInputTopic(d, "rates", serde.String(), serde.String())
	for i, v := range []string{"1.1", "1.2", "1.3"} {
		if err := in.Pipe("EUR", v, time.UnixMilli(int64(1000*(i+1)))); err != nil {
			t.Fatal(err)
		}
	}
	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	tx := testutil.NewInputTopic(d2, "txns", serde.String(), serde.String())
	for _, ms := range []int64{2500, 1500, 3500} {
		if err := tx.Pipe("EUR", "t", time.UnixMilli(ms)); err != nil {
			t.Fatal(err)
		}
	}
	recs, err := testutil.NewOutputTopic(d2, "out", serde.String(), serde.String()).ReadRecords()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.Value)
	}
	if strings.Join(got, ",") != "t|1.2*,t|1.1*,t|1.3*" {
		t.Errorf("after restart: %v", got)
	}
}

// TestVersionedTableBuildErrors: a history below 1 ms and an unlogged
// versioned table are refused.
func TestVersionedTableBuildErrors(t *testing.T) {
	b := topology.New()
	topology.TableOf(b, "a", "a", serde.String(), serde.String(), topology.Versioned(0))
	topology.TableOf(b, "b", "b", serde.String(), serde.String(), topology.Versioned(time.Hour), topology.WithoutLogging())
	_, err := b.Build()
	if err == nil {
		t.Fatal("Build accepted the tables")
	}
	for _, want := range []string{"HistoryRetention", "WithoutLogging is refused"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Build error has no %q: %v", want, err)
		}
	}
}
