package harness

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sort"
	"time"
)

// B8 is a stream–stream join: card authorisations joined with their
// captures within a join window (an inner join: a capture from 0 to
// authCaptureAfter after its authorisation matches it, grace
// authCaptureGrace), brook's DSL JoinStreams beside Kafka Streams'
// KStream#join with JoinWindows.ofTimeDifferenceAndGrace. The harness
// makes both inputs and computes the join's output itself, so each
// system's output is checked against the harness's reference, not only
// against the other's.
const (
	authCaptureAfter = 5 * time.Minute
	// authCaptureGrace covers the event time one partition of a task can
	// run ahead of the other (a fetch of up to 1 MiB, about 14 minutes of
	// one partition's event time at authCaptureGap), so no record is late
	// whatever the fetch order: brook drops a late record, Kafka Streams
	// still joins it with what its stores hold, and the outputs would
	// differ (the reference check would say so).
	authCaptureGrace = 20 * time.Minute
	// authCaptureGap is the event time between two authorisations (over
	// all partitions): 150,000 authorisations span 50 minutes, so the
	// join stores (retention before + after + grace = 25 minutes) expire
	// records during a full-size run.
	authCaptureGap = 20 * time.Millisecond
)

// authCaptureData is B8's input and the join's expected output.
type authCaptureData struct {
	auths, captures []record
	// outputs is the number of join results; digest the digest
	// (broker.digest's format) of the records the join must write.
	outputs int64
	digest  string
}

// authCaptureKey is the key of authorisation i (an authorisation id).
func authCaptureKey(i int) string { return fmt.Sprintf("auth%08d", i) }

// makeAuthCapture makes B8's input of about n records: n/2
// authorisations, one every authCaptureGap of event time from base, and
// their captures, sorted by time (each topic is in time order, as events
// arrive). Per authorisation (seeded, so every run has the same data):
//
//   - 80 %: one capture 0 to authCaptureAfter later, both bounds
//     included (1 in 100 of them exactly at the bound): one result;
//   - 5 %: two partial captures, each 0 to authCaptureAfter later: two
//     results;
//   - 8 %: one capture too late, 1 ms to 10 minutes after
//     authCaptureAfter (1 in 20 of them 1 ms after the bound): none;
//   - 3 %: one capture up to 5 minutes before the authorisation (the
//     window has no before part): none;
//   - 4 %: never captured: none.
//
// and 1 capture in 50 authorisations is for an id that was never
// authorised: none. Values are valueBytes of pseudo-random letters; the
// result of a match is the authorisation's bytes followed by the
// capture's, with the capture's timestamp (the later of the two).
func makeAuthCapture(n, valueBytes int, base time.Time) authCaptureData {
	nAuth := max(1, n/2)
	r := rand.New(rand.NewPCG(8, 88))
	av, cv := newValues(valueBytes, 81), newValues(valueBytes, 82)
	after := authCaptureAfter.Milliseconds()
	inWindow := func() time.Duration {
		if r.IntN(100) == 0 {
			return authCaptureAfter
		}
		return time.Duration(r.Int64N(after+1)) * time.Millisecond
	}
	d := authCaptureData{auths: make([]record, 0, nAuth), captures: make([]record, 0, nAuth+nAuth/10)}
	var sum uint64
	match := func(a, c record) {
		d.outputs++
		sum += recordHash([]byte(c.key), enrich(a.value, c.value), c.ts.UnixMilli())
	}
	for i := 0; i < nAuth; i++ {
		a := record{key: authCaptureKey(i), value: av.next(), ts: base.Add(time.Duration(i) * authCaptureGap)}
		d.auths = append(d.auths, a)
		capture := func(delay time.Duration) record {
			c := record{key: a.key, value: cv.next(), ts: a.ts.Add(delay)}
			d.captures = append(d.captures, c)
			return c
		}
		switch u := r.IntN(100); {
		case u < 80:
			match(a, capture(inWindow()))
		case u < 85:
			match(a, capture(inWindow()))
			match(a, capture(inWindow()))
		case u < 93:
			late := authCaptureAfter + time.Millisecond
			if r.IntN(20) != 0 {
				late += time.Duration(r.Int64N(10*60*1000)) * time.Millisecond
			}
			capture(late)
		case u < 96:
			capture(-time.Duration(1+r.Int64N(5*60*1000)) * time.Millisecond)
		}
		if i%50 == 49 {
			d.captures = append(d.captures, record{key: fmt.Sprintf("unknown%08d", i), value: cv.next(), ts: a.ts})
		}
	}
	sort.SliceStable(d.captures, func(i, j int) bool { return d.captures[i].ts.Before(d.captures[j].ts) })
	d.digest = digestString(d.outputs, sum)
	return d
}

// recordHash is one record's term of an output digest: a hash of its
// key, value and timestamp (ms).
func recordHash(key, value []byte, tsMs int64) uint64 {
	h := fnv.New64a()
	h.Write(key)
	h.Write([]byte{0})
	h.Write(value)
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(tsMs)))
	return h.Sum64()
}

// digestString formats a digest: the record count and the sum of their
// recordHash terms.
func digestString(n int64, sum uint64) string {
	if n == 0 {
		return "0 records"
	}
	return fmt.Sprintf("%d records, sum %016x", n, sum)
}
