package changelog

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"

	"github.com/brookstream/brook/store"
)

// ProducerConfig returns a copy of base adjusted for changelog writing:
// the manual partitioner (a changelog record goes to its task's
// partition), acknowledgements from all in-sync replicas, an idempotent
// producer with one request in flight (records of a partition stay in
// order across retries), and both success and error results returned (the
// Writer reads them).
func ProducerConfig(base *sarama.Config) *sarama.Config {
	c := *base
	c.Producer.Partitioner = sarama.NewManualPartitioner
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Producer.Idempotent = true
	c.Net.MaxOpenRequests = 1
	if c.Producer.Retry.Max == 0 {
		c.Producer.Retry.Max = 10
	}
	c.Producer.Return.Successes = true
	c.Producer.Return.Errors = true
	return &c
}

// SendError reports a changelog record the producer could not write.
type SendError struct {
	Topic     string
	Partition int32
	Err       error
}

// Error implements error.
func (e *SendError) Error() string {
	return fmt.Sprintf("changelog: send to %s[%d]: %v", e.Topic, e.Partition, e.Err)
}

// Unwrap returns the producer's error.
func (e *SendError) Unwrap() error { return e.Err }

// ErrWriterClosed is returned by SendChangelog after Close.
var ErrWriterClosed = errors.New("changelog: writer closed")

// Writer implements store.ChangelogWriter over a sarama producer that it
// owns (Close closes the producer). Build the producer with
// ProducerConfig.
//
// With a SyncProducer every SendChangelog waits for its acknowledgement.
// With an AsyncProducer SendChangelog only queues the record (through a
// Producer); Flush waits until every queued record is acknowledged and
// returns the first error since the previous Flush. Call Flush at commit,
// before flushing the stores and writing the checkpoint.
type Writer struct {
	syncP sarama.SyncProducer
	async *Producer

	mu      sync.Mutex
	offsets map[store.TopicPartition]int64 // sync mode
	closed  bool
}

// NewSyncWriter returns a Writer that sends each record synchronously
// through p.
func NewSyncWriter(p sarama.SyncProducer) *Writer {
	return &Writer{syncP: p, offsets: map[store.TopicPartition]int64{}}
}

// NewAsyncWriter returns a Writer that queues records on p and reads its
// results in a goroutine it owns until Close. p must return successes and
// errors (ProducerConfig sets both).
func NewAsyncWriter(p sarama.AsyncProducer) *Writer {
	return &Writer{async: NewProducer(p)}
}

func bytesOrNil(b []byte) sarama.Encoder {
	if b == nil {
		return nil
	}
	return sarama.ByteEncoder(append(make([]byte, 0, len(b)), b...))
}

// SendChangelog implements store.ChangelogWriter. Key and value are copied;
// a nil value is sent as a tombstone.
func (w *Writer) SendChangelog(topic string, partition int32, key, value []byte) error {
	m := &sarama.ProducerMessage{Topic: topic, Partition: partition, Key: bytesOrNil(key), Value: bytesOrNil(value)}
	w.mu.Lock()
	closed := w.closed
	w.mu.Unlock()
	if closed {
		return ErrWriterClosed
	}
	if w.async != nil {
		m.Metadata = &Meta{Partition: partition, Changelog: true}
		return w.async.Send(m)
	}
	p, off, err := w.syncP.SendMessage(m)
	if err != nil {
		return &SendError{Topic: topic, Partition: partition, Err: err}
	}
	if p != partition {
		return &SendError{Topic: topic, Partition: partition, Err: fmt.Errorf(
			"the producer wrote the record to partition %d: build it with changelog.ProducerConfig (manual partitioner)", p)}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	tp := store.TopicPartition{Topic: topic, Partition: p}
	if off+1 > w.offsets[tp] {
		w.offsets[tp] = off + 1
	}
	return nil
}

// Flush waits until every record sent so far is acknowledged and returns
// the first error since the previous Flush.
func (w *Writer) Flush() error {
	if w.async == nil {
		return nil
	}
	if failed := w.async.Flush(); len(failed) > 0 {
		f := failed[0]
		return &SendError{Topic: f.Msg.Topic, Partition: f.Msg.Partition, Err: f.Err}
	}
	return nil
}

// Offsets returns, per changelog partition written through w, the offset
// after the last acknowledged record: the offset to checkpoint once the
// stores are flushed.
func (w *Writer) Offsets() map[store.TopicPartition]int64 {
	if w.async != nil {
		return w.async.AckedAll()
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[store.TopicPartition]int64, len(w.offsets))
	for tp, o := range w.offsets {
		out[tp] = o
	}
	return out
}

// Close flushes, closes the producer and waits for the result reader. It
// returns the flush error, if any, joined with the close error. Closing
// twice is not an error.
func (w *Writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	if w.syncP != nil {
		return w.syncP.Close()
	}
	ferr := w.Flush()
	return errors.Join(ferr, w.async.Close(), w.Flush())
}
