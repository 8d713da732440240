package topology_test

import (
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// TestWindowedCountDropsNullKeysOnTheWire: a record whose key is null in
// Kafka is dropped by a windowed aggregation even though the string serde
// turns the null into "" (it must not count under the key ""), as by the
// key-value aggregations.
func TestWindowedCountDropsNullKeysOnTheWire(t *testing.T) {
	b := topology.New()
	s := topology.Stream(b, "in", "in", serde.String(), serde.String())
	topology.WindowedBy(s.GroupByKey(), topology.Tumbling(time.Minute)).Count("counts").
		ToStream("changes").To("out", "out", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	d := dslDriver(t, b)
	t0 := time.Unix(1_700_000_000, 0)
	if err := d.PipeRaw("in", nil, []byte("v"), t0, nil); err != nil {
		t.Fatal(err)
	}
	if err := d.PipeRaw("in", []byte("k"), []byte("v"), t0, nil); err != nil {
		t.Fatal(err)
	}
	out := d.ReadRawOutput("out")
	if len(out) != 1 || string(out[0].Key[:1]) != "k" {
		t.Fatalf("outputs %d (want 1, key k): %+v", len(out), out)
	}
}
