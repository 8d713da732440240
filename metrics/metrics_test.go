package metrics_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/brookstream/brook/metrics"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRegistry(t *testing.T) {
	r := metrics.NewRegistry()
	unB, err := r.Register("b", func(s *metrics.AppSnapshot) { s.State = "running"; s.ApplicationID = "ignored" })
	if err != nil {
		t.Fatal(err)
	}
	unA, err := r.Register("a", func(s *metrics.AppSnapshot) { s.State = "restoring" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Register("a", func(*metrics.AppSnapshot) {}); !errors.Is(err, metrics.ErrDuplicateApp) {
		t.Errorf("second registration of a: %v, want ErrDuplicateApp", err)
	}
	s := r.Snapshot()
	if len(s.Apps) != 2 || s.Apps[0].ApplicationID != "a" || s.Apps[0].State != "restoring" || s.Apps[1].ApplicationID != "b" || s.Apps[1].State != "running" {
		t.Errorf("snapshot %+v; want a (restoring) then b (running)", s)
	}
	unA()
	unA() // idempotent
	if _, err := r.Register("a", func(*metrics.AppSnapshot) {}); err != nil {
		t.Errorf("register again after unregister: %v", err)
	}
	unB()
	if s := r.Snapshot(); len(s.Apps) != 1 || s.Apps[0].ApplicationID != "a" {
		t.Errorf("after unregistering b: %+v", s)
	}
	if _, err := r.Register("c", nil); err == nil {
		t.Error("Register with a nil collect func: no error")
	}
}

func TestHistogramQuantile(t *testing.T) {
	h := metrics.Histogram{
		Bounds: []time.Duration{time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond},
		Counts: []uint64{0, 10, 10, 0},
		Count:  20,
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 2 * time.Millisecond}, {0.25, 1500 * time.Microsecond}, {1, 4 * time.Millisecond}, {0.75, 3 * time.Millisecond}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (metrics.Histogram{}).Quantile(0.5); got != 0 {
		t.Errorf("empty histogram quantile %v", got)
	}
	over := metrics.Histogram{Bounds: []time.Duration{time.Millisecond}, Counts: []uint64{0, 3}, Count: 3}
	if got := over.Quantile(0.9); got != time.Millisecond {
		t.Errorf("quantile beyond the last bound = %v, want the last bound", got)
	}
}

func TestDrops(t *testing.T) {
	var d metrics.Drops
	for i, r := range metrics.DropReasons() {
		d.Add(r, int64(i+1))
	}
	for i, r := range metrics.DropReasons() {
		if got := d.Get(r); got != int64(i+1) {
			t.Errorf("%s: %d, want %d", r, got, i+1)
		}
	}
	if d != (metrics.Drops{Late: 1, Duplicate: 2, NullKey: 3, NullValue: 4, Error: 5}) {
		t.Errorf("drops %+v", d)
	}
}

// A program that logs its own numbers reads a Snapshot; here a made-up
// source stands in for an App (topology.NewApp registers the App with
// Config.Metrics).
func ExampleRegistry_Snapshot() {
	reg := metrics.NewRegistry()
	unregister, err := reg.Register("payments", func(s *metrics.AppSnapshot) {
		s.State = "running"
		s.Partitions = append(s.Partitions, metrics.PartitionSnapshot{
			Task: "0_0", Topic: "card-transactions", Partition: 0, Assigned: true, Position: 1200, End: 1250, Lag: 50,
		})
	})
	if err != nil {
		panic(err)
	}
	defer unregister()
	for _, app := range reg.Snapshot().Apps {
		for _, p := range app.Partitions {
			if p.Assigned {
				fmt.Printf("%s %s[%d]: lag %d\n", app.ApplicationID, p.Topic, p.Partition, p.Lag)
			}
		}
	}
	// Output:
	// payments card-transactions[0]: lag 50
}
