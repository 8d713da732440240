package topology

import (
	"fmt"
	"strconv"
	"time"

	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// Headers that Deduplicate puts on each record of its duplicates stream.
const (
	// DedupReasonHeader says why the record was set aside: "duplicate".
	DedupReasonHeader = "brook.dedup.reason"
	// DedupIDHeader holds the record's id, as the id function returned it.
	DedupIDHeader = "brook.dedup.id"
	// DedupFirstSeenHeader holds the timestamp of the id's first
	// occurrence, in Unix milliseconds as a decimal string.
	DedupFirstSeenHeader = "brook.dedup.first-seen"
)

// DropDuplicates declares a processor node named name that forwards the
// first record of each id (idFn's result) and drops the later ones whose
// timestamp is less than ttl after the first one's. Dropped records are
// logged at debug level (node, id, first-seen time, topic, partition,
// offset); to count them or send them to a side topic, use Deduplicate.
//
// The ids live in a TTL store named "<name>-store" (see TTLStore; opts
// apply to it: logged by default, restored from its changelog, and under
// exactly-once its writes commit with the records they came from). The
// semantics are those of Deduplicate.
func (s KStream[K, V]) DropDuplicates(name string, idFn func(key K, value V) string, ttl time.Duration, opts ...StoreOption) KStream[K, V] {
	unique, _ := dedup(s, name, idFn, ttl, false, opts)
	return unique
}

// Deduplicate is DropDuplicates that keeps the duplicates: it declares a
// processor node named name and two pass-through nodes, "<name>-unique"
// (the first record of each id) and "<name>-duplicates" (the others, with
// the headers DedupReasonHeader = "duplicate", DedupIDHeader and
// DedupFirstSeenHeader added), and returns their streams. Send the
// duplicates to a side topic with To, or count them with Peek.
//
// Semantics, in record (event) time as Kafka Streams' deduplication
// examples use it:
//
//   - The first record of an id passes; its timestamp is remembered as the
//     id's first-seen time in the TTL store "<name>-store".
//   - A later record with that id is a duplicate while the task's stream
//     time (the largest record timestamp the dedup node has seen, the
//     record's own included) is less than first-seen + ttl. At exactly
//     first-seen + ttl the id has expired: the record passes and becomes
//     the id's new first occurrence.
//   - Out-of-order records are judged against stream time, not their own
//     timestamp: a record older than the first occurrence is a duplicate
//     while the id is remembered. A record that arrives already ttl or
//     more behind stream time cannot be remembered (its id would expire on
//     arrival): it passes, and so would a copy of it.
//   - Duplicates are found within one task: records with the same id must
//     reach the same partition (for example, carry the same key).
//   - An empty id is an error (it goes to the processing-error handler):
//     records without an id would all count as one.
//   - Expired ids are deleted through the TTL store's expiry index as
//     stream time advances (no full scan), with a tombstone in the
//     changelog.
//
// The store name derives only from name, so adding unrelated operations
// does not change it.
func (s KStream[K, V]) Deduplicate(name string, idFn func(key K, value V) string, ttl time.Duration, opts ...StoreOption) (unique, duplicates KStream[K, V]) {
	return dedup(s, name, idFn, ttl, true, opts)
}

func dedup[K, V any](s KStream[K, V], name string, idFn func(K, V) string, ttl time.Duration, split bool, opts []StoreOption) (KStream[K, V], KStream[K, V]) {
	if s.b == nil {
		return KStream[K, V]{}, KStream[K, V]{}
	}
	if nilFunc(s.b, name, "dedup id", idFn == nil) {
		idFn = func(K, V) string { return "" }
	}
	ref := TTLStore(s.b, name+"-store", serde.String(), serde.Int64(), ttl, opts...)
	uniqueName, dupName := name+"-unique", name+"-duplicates"
	n := process(s.b, name, []Node[K, V]{s.Node()}, func() processor.Processor[K, V, K, V] {
		return &deduper[K, V]{ref: ref, id: idFn, split: split, unique: uniqueName, dups: dupName}
	}, []ProcessOption{WithStores(ref.Name())})
	node := KStream[K, V]{b: s.b, name: n.name, keyChanged: s.keyChanged, keys: s.keys, values: s.values}
	if !split {
		return node, KStream[K, V]{}
	}
	pass := func(ctx processor.Context[K, V], r processor.Record[K, V]) error { return ctx.Forward(r) }
	return stage(node, uniqueName, false, pass), stage(node, dupName, false, pass)
}

type deduper[K, V any] struct {
	ref          TTLStoreRef[string, int64]
	store        store.TTLStore[string, int64]
	id           func(K, V) string
	split        bool
	unique, dups string
}

func (d *deduper[K, V]) Init(ctx processor.Context[K, V]) (err error) {
	d.store, err = d.ref.From(ctx)
	return err
}

func (d *deduper[K, V]) Process(ctx processor.Context[K, V], r processor.Record[K, V]) error {
	id := d.id(r.Key, r.Value)
	if id == "" {
		md, _ := ctx.RecordMetadata()
		return fmt.Errorf("dedup %q: empty id for the record at %s[%d]@%d", ctx.NodeName(), md.Topic, md.Partition, md.Offset)
	}
	// Expire first, so that an id whose first-seen + ttl is at or before
	// this record's time is gone.
	if _, err := d.store.AdvanceTime(r.Timestamp); err != nil {
		return err
	}
	first, seen, err := d.store.Get(id)
	if err != nil {
		return err
	}
	if !seen {
		if err := d.store.PutAt(id, r.Timestamp.UnixMilli(), r.Timestamp); err != nil {
			return err
		}
		if d.split {
			return ctx.ForwardTo(d.unique, r)
		}
		return ctx.Forward(r)
	}
	if d.split {
		r.Headers = r.Headers.With(DedupReasonHeader, []byte("duplicate")).
			With(DedupIDHeader, []byte(id)).
			With(DedupFirstSeenHeader, []byte(strconv.FormatInt(first, 10)))
		return ctx.ForwardTo(d.dups, r)
	}
	countDrop(ctx, metrics.DropDuplicate)
	md, _ := ctx.RecordMetadata()
	ctx.Logger().Debug("brook: dropped a duplicate", "id", id, "first_seen_ms", first,
		"timestamp_ms", r.Timestamp.UnixMilli(), "topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
	return nil
}

func (d *deduper[K, V]) Close() error { return nil }
