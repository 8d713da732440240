package runtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// probeDelay is how long a partition holds a task's other partitions back
// (recordQueue.pop) before the queue asks whether its unfetched offsets
// hold any record at all (gapProbe); probeRetry is how long it waits
// before asking again after a probe failed.
const (
	probeDelay = 500 * time.Millisecond
	probeRetry = time.Second
)

// gapProbe asks whether the offsets of a partition from its fetch
// position on, up to the end a consumer of the application can reach
// (the high watermark, or the last stable offset under read_committed),
// hold any record such a consumer receives. It answers later, through
// recordQueue.probed, and must not block: the queue calls it under its
// lock.
type gapProbe func(topic string, partition int32, from int64)

// recordQueue buffers the consumed records of one task, one FIFO per
// partition, and hands them out merged in timestamp order: the next record
// is the head with the smallest timestamp among the non-empty partitions
// (ties go to the partition listed first). A partition whose FIFO is full
// blocks its ConsumeClaim goroutine, which stops sarama from handing it
// more records: backpressure per partition.
//
// Like Kafka Streams (KIP-695), the merge does not run ahead of a
// partition that is empty but has records on the broker that are not
// fetched yet (its fetch position is below the high watermark its claim
// reported), nor of a partition whose claim has not started: otherwise a
// stream record could be joined with a table before the table's earlier
// records were applied. A consumer is never handed transaction markers
// (nor, under read_committed, aborted records), so a log ending in them
// keeps the position below the high watermark for good: once a partition
// has held the others for probeDelay, the queue asks the probe whether its
// unfetched offsets hold any record, and stops holding for it when they do
// not (until its next record). When they do, or the probe fails, it holds
// on: with maxIdle 0 without a time bound, as Kafka Streams'
// max.task.idle.ms=0.
type recordQueue struct {
	mu     sync.Mutex
	space  *sync.Cond // signalled when a FIFO shrinks or the queue closes
	max    int
	parts  map[tpKey]*fifo
	order  []tpKey
	closed bool
	notify func() // tells the worker there is work
	// maxIdle bounds the hold per episode: 0 no bound (the partition's
	// unfetched records are waited for, however long their fetch takes);
	// negative: never hold.
	maxIdle time.Duration
	// probe tells a partition whose unfetched offsets hold no record
	// (nil: none is asked, the hold lasts as long as maxIdle allows).
	probe gapProbe
}

type tpKey struct {
	topic     string
	partition int32
}

type fifo struct {
	msgs []*sarama.ConsumerMessage
	head int
	// next is the offset after the last popped record, 0 before the
	// first.
	next int64
	// done is the offset after the last record the task processed
	// successfully, 0 before the first (the worker sets it after each
	// record: the position of lag reports and the caught-up check).
	// committed is the last offset committed for the partition, or the
	// committed offset its claim started from; -1 while unknown.
	done, committed atomic.Int64
	// start is where the partition's claim started reading (-1 before
	// its claim started; 0 for "the log start", which may have moved
	// past offset 0 by retention).
	start int64
	// tracked is set once the partition's claim reported its position;
	// fetched is the offset after the last pushed record and hwm the
	// claim's high watermark as of then.
	tracked      bool
	fetched, hwm int64
	// idle is the partition's current wait (zero: not waiting); probing
	// is set while a probe of it is out (at most one at a time).
	idle    idleEpisode
	probing bool
}

// idleEpisode is one wait of an empty partition with records left to
// fetch, from when it was first seen so until its next record.
type idleEpisode struct {
	// since is when the wait began.
	since time.Time
	// drained is set when a probe found that the unfetched offsets hold
	// no record a consumer receives: the partition holds nothing back.
	// pending is set when a probe found records there: they are being
	// fetched, and their push ends the wait; no need to ask again.
	drained, pending bool
	// retryAt is when a failed probe may be tried again; warned is set
	// once a failure was reported.
	retryAt time.Time
	warned  bool
}

func (f *fifo) len() int { return len(f.msgs) - f.head }

func newFifo() *fifo {
	f := &fifo{start: -1}
	f.committed.Store(-1)
	return f
}

// processed records that the task processed the record at offset off of
// this partition.
func (f *fifo) processed(off int64) { f.done.Store(off + 1) }

func newRecordQueue(max int, notify func()) *recordQueue {
	q := &recordQueue{max: max, parts: map[tpKey]*fifo{}, notify: notify}
	q.space = sync.NewCond(&q.mu)
	return q
}

// addPartition registers a partition so that it takes part in ordering.
func (q *recordQueue) addPartition(topic string, p int32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.fifo(tpKey{topic, p})
}

// track records where a partition's claim starts reading (initial; a
// negative sentinel means the log start) and the high watermark it knows.
func (q *recordQueue) track(topic string, p int32, initial, hwm int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.fifo(tpKey{topic, p})
	f.tracked = true
	if initial >= 0 {
		f.committed.Store(initial) // a claim starts at the committed offset
	} else {
		initial = 0
	}
	f.fetched, f.hwm, f.start = initial, hwm, initial
	f.idle = idleEpisode{}
	if q.notify != nil {
		q.notify()
	}
}

func (q *recordQueue) fifo(k tpKey) *fifo {
	f := q.parts[k]
	if f == nil {
		f = newFifo()
		q.parts[k] = f
		q.order = append(q.order, k)
	}
	return f
}

// push appends m, waiting while its partition's FIFO is full. It returns
// false when ctx ends or the queue is closed first.
func (q *recordQueue) push(ctx context.Context, m *sarama.ConsumerMessage) bool {
	return q.pushAt(ctx, m, -1)
}

// pushAt is push that also records the claim's high watermark (hwm < 0:
// unknown, keep the last one).
func (q *recordQueue) pushAt(ctx context.Context, m *sarama.ConsumerMessage, hwm int64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.fifo(tpKey{m.Topic, m.Partition})
	for f.len() >= q.max && !q.closed && ctx.Err() == nil {
		q.space.Wait()
	}
	if q.closed || ctx.Err() != nil {
		return false
	}
	f.msgs = append(f.msgs, m)
	f.tracked = true
	f.fetched = m.Offset + 1
	if hwm >= 0 {
		f.hwm = hwm
	}
	if !f.idle.since.IsZero() {
		f.idle = idleEpisode{}
	}
	if q.notify != nil {
		q.notify()
	}
	return true
}

// pop returns the next record in timestamp order, or false when every
// FIFO is empty or an empty partition with records left to fetch holds
// the others back (holds). It never blocks.
func (q *recordQueue) pop() (*sarama.ConsumerMessage, bool) {
	return q.popAt(time.Now())
}

func (q *recordQueue) popAt(now time.Time) (*sarama.ConsumerMessage, bool) {
	m, _, ok := q.popFifo(now)
	return m, ok
}

// popFifo is popAt that also returns the record's partition FIFO, whose
// processed the worker calls once the record is processed.
func (q *recordQueue) popFifo(now time.Time) (*sarama.ConsumerMessage, *fifo, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best *fifo
	held := false
	for _, k := range q.order {
		f := q.parts[k]
		if f.len() == 0 {
			if (!f.tracked || f.fetched < f.hwm) && q.holds(f, now) {
				held = true
			}
			continue
		}
		if best == nil || f.msgs[f.head].Timestamp.Before(best.msgs[best.head].Timestamp) {
			best = f
		}
	}
	if best == nil {
		return nil, nil, false
	}
	if held {
		q.probeHeld(now)
		return nil, nil, false
	}
	m := best.msgs[best.head]
	best.next = m.Offset + 1
	best.msgs[best.head] = nil
	best.head++
	if best.head == len(best.msgs) {
		best.msgs, best.head = best.msgs[:0], 0
	} else if best.head > 1024 && best.head*2 > len(best.msgs) {
		best.msgs = append(best.msgs[:0], best.msgs[best.head:]...)
		best.head = 0
	}
	q.space.Broadcast()
	return m, best, true
}

// holds reports whether f, empty and with records left to fetch or its
// claim not started, holds the others back at now (starting its wait if
// it was not waiting).
func (q *recordQueue) holds(f *fifo, now time.Time) bool {
	if q.maxIdle < 0 || f.idle.drained {
		return false
	}
	if f.idle.since.IsZero() {
		f.idle.since = now
	}
	return q.maxIdle == 0 || now.Sub(f.idle.since) < q.maxIdle
}

// probeHeld asks the probe about the unfetched offsets of every partition
// that holds back a record of another (pop found one) and has waited
// probeDelay (or probeRetry after a failed probe), unless a probe of it is
// out or found records. A partition whose claim has not started cannot be
// probed (its position is unknown): it holds for as long as maxIdle
// allows, until the claim starts or the session ends. A partition that
// holds nothing back is not probed: a task of one partition never is.
func (q *recordQueue) probeHeld(now time.Time) {
	if q.probe == nil {
		return
	}
	for _, k := range q.order {
		f := q.parts[k]
		if f.len() > 0 || !f.tracked || f.fetched >= f.hwm || f.idle.since.IsZero() || f.idle.drained ||
			f.idle.pending || f.probing || now.Before(f.idle.retryAt) {
			continue
		}
		if waited := now.Sub(f.idle.since); waited < probeDelay || q.maxIdle > 0 && waited >= q.maxIdle {
			continue
		}
		f.probing = true
		q.probe(k.topic, k.partition, f.fetched)
	}
}

// probed takes a probe's answer about the offsets of a partition from
// from on: empty (none holds a record a consumer receives), or err when
// the probe failed. An answer about an earlier wait (records arrived
// since) changes nothing. firstFailure reports that err is the first
// failure of the partition's current wait (for a single warning).
func (q *recordQueue) probed(topic string, partition int32, from int64, empty bool, err error, now time.Time) (firstFailure bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	f := q.parts[tpKey{topic, partition}]
	if f == nil {
		return false
	}
	f.probing = false
	if q.closed || f.fetched != from || f.idle.since.IsZero() {
		return false
	}
	switch {
	case err != nil:
		f.idle.retryAt = now.Add(probeRetry)
		first := !f.idle.warned
		f.idle.warned = true
		return first
	case empty:
		f.idle.drained = true
		if q.notify != nil {
			q.notify()
		}
	default:
		// Records to fetch: hold on; their push ends the wait.
		f.idle.pending = true
	}
	return false
}

// committedAt records that offset off of a partition was committed.
func (q *recordQueue) committedAt(topic string, p int32, off int64) {
	q.mu.Lock()
	f := q.parts[tpKey{topic, p}]
	q.mu.Unlock()
	if f != nil {
		f.committed.Store(off)
	}
}

// wake releases pushers waiting on a context that has ended.
func (q *recordQueue) wake() {
	q.mu.Lock()
	q.space.Broadcast()
	q.mu.Unlock()
}

// close drops the buffered records and releases every waiting pusher.
func (q *recordQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for _, f := range q.parts {
		f.msgs, f.head = nil, 0
	}
	q.space.Broadcast()
}
