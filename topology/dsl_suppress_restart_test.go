package topology_test

import (
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// TestSuppressFinalsAcrossDriverRestart: emit-final across a TestDriver
// restart with the same state. Windows updated before the restart get
// their final after it, with the counts from both sides of the restart;
// a window whose final came out before the restart does not come out
// again, and a record late for it stays late (stream time is restored).
func TestSuppressFinalsAcrossDriverRestart(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.Int64())
	topology.WindowedBy(s.GroupByKey(), topology.Tumbling(10*time.Second).Grace(5*time.Second)).Count("counts").
		Suppress("finals", topology.UntilWindowCloses()).ToStream("final-changes").
		To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	pipe := func(d *testutil.TestDriver, key string, at int64) {
		t.Helper()
		if err := testutil.NewInputTopic(d, "in", serde.String(), serde.Int64()).Pipe(key, 1, secs(at)); err != nil {
			t.Fatal(err)
		}
	}
	read := func(d *testutil.TestDriver) string {
		t.Helper()
		return updates(t, testutil.NewOutputTopic(d, "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64())))
	}
	pipe(d, "a", 1)
	pipe(d, "a", 2)
	pipe(d, "b", 3)
	pipe(d, "a", 12) // window [10, 20)
	pipe(d, "a", 16) // stream time 16: [0, 10) closed at 15
	if got := read(d); got != "a@0-10=2@2 b@0-10=1@3" {
		t.Fatalf("finals before the restart: %q", got)
	}
	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	pipe(d2, "a", 4)  // late for the closed [0, 10): dropped, no second final
	pipe(d2, "a", 18) // [10, 20) now holds 12, 16, 18
	pipe(d2, "c", 25) // stream time 25: [10, 20) closes
	if got := read(d2); got != "a@10-20=3@18" {
		t.Fatalf("finals after the restart: %q", got)
	}
}
