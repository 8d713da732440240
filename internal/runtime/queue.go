package runtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
)

// maxTaskIdle is the default bound (Config.MaxTaskIdle) on how long a task
// holds back records of its other partitions while one partition is empty
// but known to have records that are not fetched yet (see
// recordQueue.pop).
const maxTaskIdle = 500 * time.Millisecond

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
// records were applied. Such a partition holds the others back for at most
// maxTaskIdle per episode (a transaction marker at the end of a log keeps
// the position below the high watermark for good), then the merge goes on
// without it.
type recordQueue struct {
	mu     sync.Mutex
	space  *sync.Cond // signalled when a FIFO shrinks or the queue closes
	max    int
	parts  map[tpKey]*fifo
	order  []tpKey
	closed bool
	notify func() // tells the worker there is work
	// maxIdle bounds the hold per episode; negative: never hold.
	maxIdle time.Duration
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
	// claim's latest high watermark. idleSince is when the partition was
	// first seen empty with records left to fetch (zero: not waiting).
	tracked      bool
	fetched, hwm int64
	idleSince    time.Time
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
	q := &recordQueue{max: max, parts: map[tpKey]*fifo{}, notify: notify, maxIdle: maxTaskIdle}
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
	f.idleSince = time.Time{}
	if q.notify != nil {
		q.notify()
	}
	return true
}

// pop returns the next record in timestamp order, or false when every
// FIFO is empty or an empty partition with records left to fetch holds
// the others back (at most maxIdle). It never blocks.
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
			if !f.tracked || f.fetched < f.hwm {
				if f.idleSince.IsZero() {
					f.idleSince = now
				}
				if now.Sub(f.idleSince) < q.maxIdle {
					held = true
				}
			}
			continue
		}
		if best == nil || f.msgs[f.head].Timestamp.Before(best.msgs[best.head].Timestamp) {
			best = f
		}
	}
	if best == nil || held {
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
