package meter

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/brookstream/brook/metrics"
)

// Bucket bounds (inclusive upper bounds). Read-only tables.
var (
	// ProcessBounds: the time a task spends on one record, 1µs to 10s.
	ProcessBounds = []time.Duration{
		time.Microsecond, 2500 * time.Nanosecond, 5 * time.Microsecond, 10 * time.Microsecond, 25 * time.Microsecond,
		50 * time.Microsecond, 100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
		time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second,
	}
	// EndToEndBounds: the age of an output record, 1ms to one day.
	EndToEndBounds = []time.Duration{
		time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
		time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour,
	}
	// RequestBounds: commits and interactive queries, 100µs to 60s.
	RequestBounds = []time.Duration{
		100 * time.Microsecond, 250 * time.Microsecond, 500 * time.Microsecond,
		time.Millisecond, 2500 * time.Microsecond, 5 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond,
		50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second, time.Minute,
	}
	// RebalanceBounds: rebalances, 10ms to 10 minutes.
	RebalanceBounds = []time.Duration{
		10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 250 * time.Millisecond, 500 * time.Millisecond,
		time.Second, 2500 * time.Millisecond, 5 * time.Second, 10 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute,
	}
)

// Histogram counts durations into fixed buckets. Observe is two atomic
// adds after a short scan of the bounds; it never allocates.
type Histogram struct {
	bounds []time.Duration // shared, read-only
	counts []atomic.Uint64 // len(bounds)+1
	sum    atomic.Int64
}

// NewHistogram returns an empty histogram over bounds (ascending).
func NewHistogram(bounds []time.Duration) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records d; a negative d counts as 0.
func (h *Histogram) Observe(d time.Duration) {
	if d < 0 {
		d = 0
	}
	i := 0
	for i < len(h.bounds) && d > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sum.Add(int64(d))
}

// Snapshot copies the histogram.
func (h *Histogram) Snapshot() metrics.Histogram {
	out := metrics.Histogram{Bounds: slices.Clone(h.bounds), Counts: make([]uint64, len(h.counts))}
	for i := range h.counts {
		c := h.counts[i].Load()
		out.Counts[i] = c
		out.Count += c
	}
	out.Sum = time.Duration(h.sum.Load())
	return out
}
