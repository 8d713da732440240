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
// With an AsyncProducer SendChangelog only queues the record; Flush waits
// until every queued record is acknowledged and returns the first error
// since the previous Flush. Call Flush at commit, before flushing the
// stores and writing the checkpoint.
type Writer struct {
	syncP  sarama.SyncProducer
	asyncP sarama.AsyncProducer
	done   chan struct{} // closed when the async result reader exits

	mu       sync.Mutex
	idle     *sync.Cond // signalled when inflight drops to 0
	inflight int
	err      error
	offsets  map[store.TopicPartition]int64
	closed   bool
}

// NewSyncWriter returns a Writer that sends each record synchronously
// through p.
func NewSyncWriter(p sarama.SyncProducer) *Writer {
	w := &Writer{syncP: p, offsets: map[store.TopicPartition]int64{}}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// NewAsyncWriter returns a Writer that queues records on p and reads its
// results in a goroutine the Writer owns until Close. p must return
// successes and errors (ProducerConfig sets both).
func NewAsyncWriter(p sarama.AsyncProducer) *Writer {
	w := &Writer{asyncP: p, offsets: map[store.TopicPartition]int64{}, done: make(chan struct{})}
	w.idle = sync.NewCond(&w.mu)
	go w.readResults()
	return w
}

// readResults drains the producer's result channels until both close
// (after AsyncClose).
func (w *Writer) readResults() {
	defer close(w.done)
	succ, errs := w.asyncP.Successes(), w.asyncP.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			w.finish(m, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			w.finish(pe.Msg, pe.Err)
		}
	}
}

// want is what a queued message was meant for; it rides in Metadata.
type want struct{ partition int32 }

func (w *Writer) finish(m *sarama.ProducerMessage, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight--
	if err == nil {
		if wt, ok := m.Metadata.(want); ok {
			err = w.recordLocked(m.Topic, wt.partition, m.Partition, m.Offset)
		}
	} else if w.err == nil {
		w.err = &SendError{Topic: m.Topic, Partition: m.Partition, Err: err}
	}
	if err != nil && w.err == nil {
		w.err = err
	}
	if w.inflight == 0 {
		w.idle.Broadcast()
	}
}

// recordLocked notes an acknowledged offset, checking that the producer
// honoured the partition (it does only with the manual partitioner).
func (w *Writer) recordLocked(topic string, wantP, gotP int32, offset int64) error {
	if gotP != wantP {
		return &SendError{Topic: topic, Partition: wantP, Err: fmt.Errorf(
			"the producer wrote the record to partition %d: build it with changelog.ProducerConfig (manual partitioner)", gotP)}
	}
	tp := store.TopicPartition{Topic: topic, Partition: gotP}
	if next := offset + 1; next > w.offsets[tp] {
		w.offsets[tp] = next
	}
	return nil
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
	if w.closed {
		w.mu.Unlock()
		return ErrWriterClosed
	}
	if w.syncP != nil {
		w.mu.Unlock()
		p, off, err := w.syncP.SendMessage(m)
		if err != nil {
			return &SendError{Topic: topic, Partition: partition, Err: err}
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.recordLocked(topic, partition, p, off)
	}
	if w.err != nil {
		err := w.err
		w.mu.Unlock()
		return err
	}
	m.Metadata = want{partition}
	w.inflight++
	w.mu.Unlock()
	// Input blocks only while the producer's buffer is full.
	w.asyncP.Input() <- m
	return nil
}

// Flush waits until every record sent so far is acknowledged and returns
// the first error since the previous Flush (which it then clears).
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.inflight > 0 {
		w.idle.Wait()
	}
	err := w.err
	w.err = nil
	return err
}

// Offsets returns, per changelog partition written through w, the offset
// after the last acknowledged record: the offset to checkpoint once the
// stores are flushed.
func (w *Writer) Offsets() map[store.TopicPartition]int64 {
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
	ferr := w.Flush()
	if w.syncP != nil {
		return errors.Join(ferr, w.syncP.Close())
	}
	w.asyncP.AsyncClose()
	<-w.done
	return errors.Join(ferr, w.Flush())
}
