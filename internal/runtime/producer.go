package runtime

import (
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/partition"
	"github.com/brookstream/brook/store"
)

// sendMeta travels with every message in ProducerMessage.Metadata.
type sendMeta struct {
	// partition is the chosen partition, or -1 for the key's murmur2
	// partition (Kafka's Java default partitioner).
	partition int32
	// changelog marks changelog records, whose acknowledged offsets the
	// producer tracks for checkpoints.
	changelog bool
}

// brookPartitioner places a message on the partition its sendMeta names, or
// hashes its key as Kafka's Java producer does.
type brookPartitioner struct{ hash sarama.Partitioner }

func newBrookPartitioner(topic string) sarama.Partitioner {
	return &brookPartitioner{hash: partition.NewSaramaPartitioner(topic)}
}

func (p *brookPartitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if m, ok := msg.Metadata.(*sendMeta); ok && m.partition >= 0 {
		if m.partition >= n {
			return -1, fmt.Errorf("partition %d of topic %s does not exist (it has %d)", m.partition, msg.Topic, n)
		}
		return m.partition, nil
	}
	return p.hash.Partition(msg, n)
}

func (p *brookPartitioner) RequiresConsistency() bool { return true }

// failedSend is a record the producer could not write.
type failedSend struct {
	msg *sarama.ProducerMessage
	err error
}

// producer wraps a sarama AsyncProducer: Send queues, Flush waits until
// every queued record is acknowledged and returns the failures since the
// last Flush. It remembers the highest acknowledged offset of every
// changelog partition.
type producer struct {
	p    sarama.AsyncProducer
	done chan struct{}

	mu       sync.Mutex
	idle     *sync.Cond
	inflight int
	failed   []failedSend
	acked    map[store.TopicPartition]int64 // next offset after the last acked changelog record
	closed   bool
}

func newProducer(p sarama.AsyncProducer) *producer {
	pr := &producer{p: p, done: make(chan struct{}), acked: map[store.TopicPartition]int64{}}
	pr.idle = sync.NewCond(&pr.mu)
	go pr.results()
	return pr
}

func (pr *producer) results() {
	defer close(pr.done)
	succ, errs := pr.p.Successes(), pr.p.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			pr.mu.Lock()
			if meta, _ := m.Metadata.(*sendMeta); meta != nil && meta.changelog {
				tp := store.TopicPartition{Topic: m.Topic, Partition: m.Partition}
				if m.Offset+1 > pr.acked[tp] {
					pr.acked[tp] = m.Offset + 1
				}
			}
			pr.done1()
			pr.mu.Unlock()
		case e, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			pr.mu.Lock()
			pr.failed = append(pr.failed, failedSend{msg: e.Msg, err: e.Err})
			pr.done1()
			pr.mu.Unlock()
		}
	}
}

func (pr *producer) done1() {
	pr.inflight--
	if pr.inflight <= 0 {
		pr.idle.Broadcast()
	}
}

// send queues msg.
func (pr *producer) send(msg *sarama.ProducerMessage) error {
	pr.mu.Lock()
	if pr.closed {
		pr.mu.Unlock()
		return fmt.Errorf("producer closed")
	}
	pr.inflight++
	pr.mu.Unlock()
	pr.p.Input() <- msg
	return nil
}

// flush waits for every queued record and returns those that failed.
func (pr *producer) flush() []failedSend {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for pr.inflight > 0 {
		pr.idle.Wait()
	}
	f := pr.failed
	pr.failed = nil
	return f
}

// ackedOffset returns the offset after the last acknowledged changelog
// record of tp.
func (pr *producer) ackedOffset(tp store.TopicPartition) (int64, bool) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	o, ok := pr.acked[tp]
	return o, ok
}

// close flushes and closes the producer and waits for its result reader.
func (pr *producer) close() error {
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
