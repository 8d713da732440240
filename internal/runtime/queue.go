package runtime

import (
	"context"
	"sync"

	"github.com/IBM/sarama"
)

// recordQueue buffers the consumed records of one task, one FIFO per
// partition, and hands them out merged in timestamp order: the next record
// is the head with the smallest timestamp among the non-empty partitions
// (ties go to the partition listed first). A partition whose FIFO is full
// blocks its ConsumeClaim goroutine, which stops sarama from handing it
// more records: backpressure per partition.
type recordQueue struct {
	mu     sync.Mutex
	space  *sync.Cond // signalled when a FIFO shrinks or the queue closes
	max    int
	parts  map[tpKey]*fifo
	order  []tpKey
	closed bool
	notify func() // tells the worker there is work
}

type tpKey struct {
	topic     string
	partition int32
}

type fifo struct {
	msgs []*sarama.ConsumerMessage
	head int
	// next is the offset after the last popped record, 0 before the
	// first (read by the interactive-query lag report, query.go).
	next int64
}

func (f *fifo) len() int { return len(f.msgs) - f.head }

func newRecordQueue(max int, notify func()) *recordQueue {
	q := &recordQueue{max: max, parts: map[tpKey]*fifo{}, notify: notify}
	q.space = sync.NewCond(&q.mu)
	return q
}

// addPartition registers a partition so that it takes part in ordering.
func (q *recordQueue) addPartition(topic string, p int32) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := tpKey{topic, p}
	if q.parts[k] == nil {
		q.parts[k] = &fifo{}
		q.order = append(q.order, k)
	}
}

// push appends m, waiting while its partition's FIFO is full. It returns
// false when ctx ends or the queue is closed first.
func (q *recordQueue) push(ctx context.Context, m *sarama.ConsumerMessage) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := tpKey{m.Topic, m.Partition}
	f := q.parts[k]
	if f == nil {
		f = &fifo{}
		q.parts[k] = f
		q.order = append(q.order, k)
	}
	for f.len() >= q.max && !q.closed && ctx.Err() == nil {
		q.space.Wait()
	}
	if q.closed || ctx.Err() != nil {
		return false
	}
	f.msgs = append(f.msgs, m)
	if q.notify != nil {
		q.notify()
	}
	return true
}

// pop returns the next record in timestamp order, or false when every
// FIFO is empty. It never blocks.
func (q *recordQueue) pop() (*sarama.ConsumerMessage, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var best *fifo
	for _, k := range q.order {
		f := q.parts[k]
		if f.len() == 0 {
			continue
		}
		if best == nil || f.msgs[f.head].Timestamp.Before(best.msgs[best.head].Timestamp) {
			best = f
		}
	}
	if best == nil {
		return nil, false
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
	return m, true
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
