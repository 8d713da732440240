// collector.go: the output collector of a task. It sends sink records
// and buffers changelog records through the runtime's producer (or the
// task's transactional one), holding a record's output until the record
// succeeds and undoing it when it fails.

package runtime

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
)

// collector sends sink and changelog records through the runtime's
// producer. It implements task.Collector and store.ChangelogWriter.
//
// While a record (or a punctuation) is processed, the collector holds
// what it produces: sink records wait in held and are sent when the record
// succeeds (release), and each changelog write is logged in undo. If the
// record fails, rollback forgets both, so nothing of a failed record's
// partial output is ever sent or committed: the work before it can be
// committed and a restart resumes exactly at it (taskRun.begin/end/
// rollback).
type collector struct {
	r *Runtime
	// txn is the task's transactional producer under exactly-once; nil
	// means the runtime's shared producer.
	txn *txnProducer
	// task is the task's id, kept with every record (changelog.Origin).
	task string
	// pending and records buffer the changelog records of the current
	// commit, one per key (SendChangelog).
	pending map[changelogKey]int
	records []changelogRecord
	// scoped is set while a record is processed; held and undo are its
	// sink records and changelog writes.
	scoped bool
	held   []*sarama.ProducerMessage
	undo   []changelogUndo
	// headers is the slab sink records' sarama headers are carved from.
	headers []sarama.RecordHeader
	// bytes is the slab the collector's copies of record keys and values
	// are carved from (own): a serde may return its caller's slice
	// (serde.Bytes does), which the processor may reuse before the record
	// is sent. A full slab is left to the records that point into it and
	// a new one started, never reused.
	bytes []byte
}

// byteSlab is the size of one allocation of the collector's byte slab.
const byteSlab = 64 << 10

// own returns a copy of b carved from the slab (nil stays nil).
func (c *collector) own(b []byte) []byte {
	if b == nil {
		return nil
	}
	n := len(b)
	if n > byteSlab/4 {
		return append(make([]byte, 0, n), b...)
	}
	if cap(c.bytes)-len(c.bytes) < n {
		c.bytes = make([]byte, 0, byteSlab)
	}
	at := len(c.bytes)
	c.bytes = append(c.bytes, b...)
	return c.bytes[at : at+n : at+n]
}

// headerSlab is how many sarama headers one slab allocation holds.
const headerSlab = 512

// changelogUndo restores records[i] to value, or removes it if it was
// added by the write.
type changelogUndo struct {
	i     int
	value []byte
	added bool
}

func (c *collector) producer() *changelog.Producer {
	if c.txn != nil {
		c.txn.sent = true
		return c.txn.Producer
	}
	return c.r.prod
}

// Send implements task.Collector: inside a record's scope the record is
// held until the record succeeds.
func (c *collector) Send(rec processor.ProducedRecord, from task.Origin) error {
	m := &sarama.ProducerMessage{
		Topic: rec.Topic, Timestamp: rec.Timestamp,
		Metadata: &changelog.Meta{Partition: rec.Partition, Origin: changelog.Origin{
			Task: c.task, Node: from.Node, Topic: from.Topic, Partition: from.Partition, Offset: from.Offset,
		}},
	}
	if rec.Key != nil {
		m.Key = sarama.ByteEncoder(c.own(rec.Key))
	}
	if rec.Value != nil {
		m.Value = sarama.ByteEncoder(c.own(rec.Value))
	}
	if n := len(rec.Headers); n > 0 {
		// Carved from a slab: sarama only reads a message's headers.
		if cap(c.headers)-len(c.headers) < n {
			c.headers = make([]sarama.RecordHeader, 0, max(headerSlab, n))
		}
		at := len(c.headers)
		c.headers = c.headers[:at+n]
		m.Headers = c.headers[at : at+n : at+n]
		for i, hd := range rec.Headers {
			m.Headers[i] = sarama.RecordHeader{Key: headerKey(hd.Key), Value: hd.Value}
		}
	}
	if c.scoped {
		c.held = append(c.held, m)
		return nil
	}
	return c.producer().Send(m)
}

// PartitionCount implements task.Collector.
func (c *collector) PartitionCount(topic string) (int32, error) {
	ps, err := c.r.client.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	return int32(len(ps)), nil
}

// SendChangelog buffers a changelog record until the task commits: only
// the last value of each key since the previous commit is sent (in the
// commit's transaction under exactly-once). Intermediate values matter to
// no one: a restore needs the latest value per key, and the inputs that
// produced them are not committed before the flush.
func (c *collector) SendChangelog(topic string, partition int32, key, value []byte) error {
	if c.pending == nil {
		c.pending = map[changelogKey]int{}
	}
	k := changelogKey{topic: topic, partition: partition, key: string(key)}
	if i, ok := c.pending[k]; ok {
		if c.scoped {
			c.undo = append(c.undo, changelogUndo{i: i, value: c.records[i].value})
		}
		c.records[i].value = c.own(value)
		return nil
	}
	if c.scoped {
		c.undo = append(c.undo, changelogUndo{i: len(c.records), added: true})
	}
	c.pending[k] = len(c.records)
	c.records = append(c.records, changelogRecord{topic: topic, partition: partition, key: c.own(key), value: c.own(value)})
	return nil
}

type changelogKey struct {
	topic     string
	partition int32
	key       string
}

type changelogRecord struct {
	topic      string
	partition  int32
	key, value []byte
}

// begin opens a record's scope.
func (c *collector) begin() {
	c.scoped = true
	clear(c.held)
	c.held = c.held[:0]
	clear(c.undo)
	c.undo = c.undo[:0]
}

// release ends a record's scope after it succeeded: its sink records go
// to the producer.
func (c *collector) release() error {
	c.scoped = false
	for i, m := range c.held {
		if err := c.producer().Send(m); err != nil {
			clear(c.held[i:])
			c.held = c.held[:0]
			return fmt.Errorf("send to %s: %w", m.Topic, err)
		}
	}
	clear(c.held)
	c.held = c.held[:0]
	return nil
}

// rollback ends a record's scope after it failed: its sink records are
// dropped and its changelog writes undone.
func (c *collector) rollback() {
	c.scoped = false
	clear(c.held)
	c.held = c.held[:0]
	for i := len(c.undo) - 1; i >= 0; i-- {
		u := c.undo[i]
		if !u.added {
			c.records[u.i].value = u.value
			continue
		}
		// Added entries are the last ones, undone newest first.
		rec := c.records[u.i]
		delete(c.pending, changelogKey{topic: rec.topic, partition: rec.partition, key: string(rec.key)})
		c.records[u.i] = changelogRecord{}
		c.records = c.records[:u.i]
	}
	clear(c.undo)
	c.undo = c.undo[:0]
}

// flushChangelog sends the buffered changelog records, in the order their
// keys were first written.
func (c *collector) flushChangelog() error {
	for i := range c.records {
		rec := &c.records[i]
		m := &sarama.ProducerMessage{
			Topic: rec.topic, Key: sarama.ByteEncoder(rec.key),
			Metadata: &changelog.Meta{Partition: rec.partition, Changelog: true, Origin: changelog.Origin{Task: c.task, Offset: -1}},
		}
		if rec.value != nil {
			m.Value = sarama.ByteEncoder(rec.value)
		}
		if err := c.producer().Send(m); err != nil {
			return fmt.Errorf("changelog record to %s[%d]: %w", rec.topic, rec.partition, err)
		}
	}
	c.dropChangelog()
	return nil
}

// dropChangelog forgets the buffered changelog records (their writes were
// discarded with an aborted transaction or a failed task).
func (c *collector) dropChangelog() {
	clear(c.pending)
	clear(c.records)
	c.records = c.records[:0]
	clear(c.undo)
	c.undo = c.undo[:0]
}

func producedFromMessage(m *sarama.ProducerMessage) processor.ProducedRecord {
	out := processor.ProducedRecord{Topic: m.Topic, Partition: m.Partition, Timestamp: m.Timestamp}
	if m.Key != nil {
		out.Key, _ = m.Key.Encode()
	}
	if m.Value != nil {
		out.Value, _ = m.Value.Encode()
	}
	for _, hd := range m.Headers {
		out.Headers = append(out.Headers, processor.Header{Key: string(hd.Key), Value: hd.Value})
	}
	return out
}

// lineageKey is the lineage header's key as bytes, shared by every record
// that carries it (sarama only reads it).
var lineageKey = []byte(processor.HeaderLineage)

// headerKey returns key as bytes, without allocating for the lineage key.
func headerKey(key string) []byte {
	if key == processor.HeaderLineage {
		return lineageKey
	}
	return []byte(key)
}
