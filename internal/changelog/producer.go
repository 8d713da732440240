package changelog

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/store"
)

// Meta travels in ProducerMessage.Metadata of every message sent through a
// Producer.
type Meta struct {
	// Partition is the partition the record must go to, or -1 to let the
	// producer's partitioner choose (brook's runtime hashes the key as
	// Kafka's Java producer does).
	Partition int32
	// Changelog marks changelog records, whose acknowledged offsets the
	// Producer remembers for checkpoints.
	Changelog bool
	// Origin says where the record comes from, for the error when the
	// broker refuses it. The Producer does not read it.
	Origin Origin
}

// Origin is where a record sent through a Producer comes from: the task,
// the node that sent it, and the source record being processed (Offset -1
// during punctuation or for changelog records).
type Origin struct {
	Task      string
	Node      string
	Topic     string
	Partition int32
	Offset    int64
}

// Failed is a record the producer could not write.
type Failed struct {
	Msg *sarama.ProducerMessage
	Err error
}

// ErrProducerClosed is returned by Send after Close.
var ErrProducerClosed = errors.New("changelog: producer closed")

// Producer wraps a sarama AsyncProducer that returns successes and errors:
// Send queues a record, Flush waits until every queued record is settled
// and returns those that failed since the last Flush, and Acked tells the
// offset after the last acknowledged changelog record of a partition. A
// goroutine owned by the Producer reads the results until Close.
type Producer struct {
	p    sarama.AsyncProducer
	done chan struct{}

	mu       sync.Mutex
	idle     *sync.Cond
	inflight int
	failed   []Failed
	acked    map[store.TopicPartition]int64
	closed   bool
}

// NewProducer starts reading p's results. p must return successes and
// errors (Producer.Return.Successes and Errors).
func NewProducer(p sarama.AsyncProducer) *Producer {
	pr := &Producer{p: p, done: make(chan struct{}), acked: map[store.TopicPartition]int64{}}
	pr.idle = sync.NewCond(&pr.mu)
	go pr.results()
	return pr
}

func (pr *Producer) results() {
	defer close(pr.done)
	succ, errs := pr.p.Successes(), pr.p.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			pr.settle(m, nil)
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			pr.settle(e.Msg, e.Err)
		}
	}
}

func (pr *Producer) settle(m *sarama.ProducerMessage, err error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	meta, _ := m.Metadata.(*Meta)
	if err == nil && meta != nil && meta.Partition >= 0 && m.Partition != meta.Partition {
		err = fmt.Errorf("changelog: the producer wrote the record to partition %d instead of %d: its partitioner must honour Meta.Partition", m.Partition, meta.Partition)
	}
	switch {
	case err != nil:
		pr.failed = append(pr.failed, Failed{Msg: m, Err: err})
	case meta != nil && meta.Changelog:
		tp := store.TopicPartition{Topic: m.Topic, Partition: m.Partition}
		if m.Offset+1 > pr.acked[tp] {
			pr.acked[tp] = m.Offset + 1
		}
	}
	pr.inflight--
	if pr.inflight <= 0 {
		pr.idle.Broadcast()
	}
}

// Send queues msg. It blocks only while the producer's buffer is full.
func (pr *Producer) Send(msg *sarama.ProducerMessage) error {
	pr.mu.Lock()
	if pr.closed {
		pr.mu.Unlock()
		return ErrProducerClosed
	}
	pr.inflight++
	pr.mu.Unlock()
	pr.p.Input() <- msg
	return nil
}

// Flush waits for every queued record and returns those that failed since
// the previous Flush.
func (pr *Producer) Flush() []Failed {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for pr.inflight > 0 {
		pr.idle.Wait()
	}
	f := pr.failed
	pr.failed = nil
	return f
}

// Acked returns the offset after the last acknowledged changelog record of
// tp, and whether there was one.
func (pr *Producer) Acked(tp store.TopicPartition) (int64, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	o, ok := pr.acked[tp]
	return o, ok
}

// AckedAll returns Acked for every changelog partition written through pr.
func (pr *Producer) AckedAll() map[store.TopicPartition]int64 {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	out := make(map[store.TopicPartition]int64, len(pr.acked))
	for tp, o := range pr.acked {
		out[tp] = o
	}
	return out
}

// Close closes the sarama producer (which settles what is queued) and
// waits for the result reader. Closing twice is not an error.
func (pr *Producer) Close() error {
	pr.mu.Lock()
	if pr.closed {
		pr.mu.Unlock()
		return nil
	}
	pr.closed = true
	pr.mu.Unlock()
	pr.p.AsyncClose()
	<-pr.done
	return nil
}

// ProducerConfig returns the sarama configuration of every producer that
// writes sink and changelog records: a copy of base with the given
// partitioner, acknowledgements from all in-sync replicas, an idempotent
// producer with one request in flight (records of a partition stay in
// order across retries), at least 10 retries, and both success and error
// results returned (a Producer reads them). A non-empty transactionalID
// makes it a transactional producer with that id (exactly-once: one per
// task).
func ProducerConfig(base *sarama.Config, partitioner sarama.PartitionerConstructor, transactionalID string) *sarama.Config {
	c := *base
	c.Producer.Partitioner = partitioner
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	if c.Producer.Retry.Max < 10 {
		c.Producer.Retry.Max = 10
	}
	if transactionalID != "" {
		c.Producer.Transaction.ID = transactionalID
	}
	return &c
}
