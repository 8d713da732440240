package topology

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/metrics"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// This file holds the foreign-key table joins of the DSL (docs/DSL.md,
// "Foreign-key joins"), built as Kafka Streams builds them (KIP-213):
//
//   - left sub-topology: "<name>-subscribe" turns each change of the left
//     table into subscription messages keyed by foreign key, remembering
//     each left key's foreign key in the store "<name>-foreign-keys"
//     (Change carries no old value), and the sink
//     "<name>-subscription-sink" writes them to the internal topic
//     "<application-id>-<name>-subscription-registration-topic",
//     partitioned by foreign key like the right table;
//   - right sub-topology: "<name>-subscription-source" reads them and
//     "<name>-subscription-receive" files each (foreign key, left key) in
//     the store "<name>-subscriptions" and answers with the right value;
//     "<name>-foreign-update" answers every subscriber of a right key
//     when that key changes; "<name>-response" merges both answers and
//     "<name>-response-sink" writes them to
//     "<application-id>-<name>-subscription-response-topic", to the
//     partition of the left key's task;
//   - left sub-topology again: "<name>-response-source" reads the answers
//     and the node name joins each with the left key's current value, if
//     the value the answer was made for is still current (a hash of it
//     travels with the subscription and the answer), and materializes the
//     result in the store name.

// Suffixes of a foreign-key join's internal topics.
const (
	subscriptionTopicSuffix = "-subscription-registration-topic"
	responseTopicSuffix     = "-subscription-response-topic"
)

// internalTopicSuffixes are the suffixes of every kind of internal topic
// (see task.InternalTopic), for checking topic names.
var internalTopicSuffixes = []string{"-repartition", subscriptionTopicSuffix, responseTopicSuffix}

// ErrNilForeignKey is the error (for the processing error handler) of a
// foreign-key extractor that returned a nil key: a nil pointer, slice,
// map or interface cannot be sent to the right table's partitions. Return
// a key that no right row has to make a left row join nothing.
var ErrNilForeignKey = errors.New("topology: foreign-key extractor returned a nil key")

// JoinTablesByForeignKey declares the inner foreign-key join of left and
// right: a left row joins the right row whose key fk(leftValue) returns,
// and the result table, keyed by the left key, has joiner(key, leftValue,
// rightValue) while both rows exist. Both tables must be materialized
// (from TableOf or an aggregation); they need not be co-partitioned. The
// result is materialized in the key-value store name (values serialized
// by values; opts apply to it) and can be queried, joined and aggregated
// further. The nodes, stores and internal topics are listed in
// docs/DSL.md; the topics are created at start-up as repartition topics
// are (the subscription topic with the right table's partition count, the
// response topic with the left table's).
//
// As Kafka Streams' KTable.join(other, foreignKeyExtractor, joiner): a
// left update joins the right row of its foreign key (a left row whose
// foreign key changes leaves its old right row, whose later updates no
// longer reach it); a right update re-joins every left row that refers to
// it; a deletion on either side forwards a deletion. An answer of the
// right side made for a left value that has changed since is dropped, so
// the result never goes back to an older left value. An error from fk or
// joiner goes to the processing error handler; so does a nil foreign key
// (ErrNilForeignKey).
func JoinTablesByForeignKey[K, V, KO, VO, VR any](left KTable[K, V], right KTable[KO, VO], name string, fk func(value V) (KO, error), joiner func(key K, left V, right VO) (VR, error), values serde.Serde[VR], opts ...StoreOption) KTable[K, VR] {
	if nilFunc(left.b, name, "joiner", joiner == nil) {
		return KTable[K, VR]{}
	}
	return joinByForeignKey(left, right, name, fk, false, func(k K, l V, r VO, _ bool) (VR, error) { return joiner(k, l, r) }, values, opts)
}

// LeftJoinTablesByForeignKey is the left variant of
// JoinTablesByForeignKey: a left row is in the result while it exists,
// with joiner(key, leftValue, rightValue, rightFound); rightFound is false
// (and rightValue the zero value) while no right row has its foreign key,
// as with Kafka Streams' KTable.leftJoin(other, foreignKeyExtractor,
// joiner).
func LeftJoinTablesByForeignKey[K, V, KO, VO, VR any](left KTable[K, V], right KTable[KO, VO], name string, fk func(value V) (KO, error), joiner func(key K, left V, right VO, rightFound bool) (VR, error), values serde.Serde[VR], opts ...StoreOption) KTable[K, VR] {
	if nilFunc(left.b, name, "joiner", joiner == nil) {
		return KTable[K, VR]{}
	}
	return joinByForeignKey(left, right, name, fk, true, joiner, values, opts)
}

// declareInternalTopic registers the internal topic "<application-id>-
// <name><suffix>" (task.InternalTopic), created and sized at start-up as
// repartition topics are; ok is false (and a problem recorded) if it was
// declared before.
func (b *Builder) declareInternalTopic(name, suffix string) (topic string, ok bool) {
	topic = task.InternalTopic(name, suffix)
	if _, dup := b.repartitions[topic]; dup {
		b.problem(DuplicateName, name, topic, "", "internal topic declared twice; give each operation its own name")
		return topic, false
	}
	if b.repartitions == nil {
		b.repartitions = map[string]int32{}
	}
	b.repartitions[topic] = 0
	return topic, true
}

func joinByForeignKey[K, V, KO, VO, VR any](left KTable[K, V], right KTable[KO, VO], name string, fk func(V) (KO, error), leftJoin bool, joiner func(K, V, VO, bool) (VR, error), values serde.Serde[VR], opts []StoreOption) KTable[K, VR] {
	b := left.b
	if b == nil || right.b == nil {
		if b == nil {
			b = right.b
		}
		b.dslProblem(name, "a foreign-key join needs two tables declared on a Builder; one of them is a zero KTable")
		return KTable[K, VR]{}
	}
	if right.b != b {
		b.dslProblem(name, "the tables of a join were declared on different Builders")
		return KTable[K, VR]{}
	}
	if name == "" {
		b.dslProblem("", "a foreign-key join has an empty name")
		return KTable[K, VR]{}
	}
	if nilFunc(b, name, "foreign-key extractor", fk == nil) ||
		!requireStore(b, name, "left", left) || !requireStore(b, name, "right", right) ||
		!checkSerde(b, name, "left key", left.keys) || !checkSerde(b, name, "left value", left.values) ||
		!checkSerde(b, name, "right (foreign) key", right.keys) || !checkSerde(b, name, "right value", right.values) ||
		!checkSerde(b, name, "result value", values) {
		return KTable[K, VR]{}
	}
	subTopic, ok1 := b.declareInternalTopic(name, subscriptionTopicSuffix)
	respTopic, ok2 := b.declareInternalTopic(name, responseTopicSuffix)
	if !ok1 || !ok2 {
		return KTable[K, VR]{}
	}
	subs := serde.Serde[subscription[K, V]](subscriptionSerde[K, V]{keys: left.keys, values: left.values})
	resps := serde.Serde[fkResponse[VO]](fkResponseSerde[VO]{values: right.values})

	// Left side: subscribe.
	fkStore := KeyValueStore(b, name+"-foreign-keys", left.keys, serde.Serde[KO](suffixSerde[KO]{inner: right.keys, suffix: "-fk"}))
	subscribe := process(b, name+"-subscribe", []Node[K, Change[V]]{left.Node()}, func() processor.Processor[K, Change[V], KO, subscription[K, V]] {
		return &fkSubscriber[K, V, KO]{store: fkStore.name, fk: fk, leftJoin: leftJoin, nilFK: nillable[KO]()}
	}, []ProcessOption{WithStores(fkStore.name)})
	Sink(b, name+"-subscription-sink", subTopic, subscribe, right.keys, subs)

	// Right side: file subscriptions, answer them and right updates.
	subStore := KeyValueStore(b, name+"-subscriptions", serde.Serde[fkSubKey[KO]](fkSubKeySerde[KO]{keys: right.keys}), serde.Serde[fkSub](fkSubSerde{}))
	subSource := Source(b, name+"-subscription-source", subTopic, right.keys, subs)
	receive := process(b, name+"-subscription-receive", []Node[KO, subscription[K, V]]{subSource}, func() processor.Processor[KO, subscription[K, V], []byte, fkResponse[VO]] {
		return &fkSubscriptionReceiver[K, V, KO, VO]{subs: subStore.name, right: right.store}
	}, []ProcessOption{WithStores(subStore.name, right.store)})
	update := process(b, name+"-foreign-update", []Node[KO, Change[VO]]{right.Node()}, func() processor.Processor[KO, Change[VO], []byte, fkResponse[VO]] {
		return &fkForeignUpdater[KO, VO]{subs: subStore.name, nilKey: nillable[KO]()}
	}, []ProcessOption{WithStores(subStore.name)})
	answers := Merge(b, name+"-response", receive, update)
	Sink(b, name+"-response-sink", respTopic, answers, serde.Bytes(), resps,
		WithPartitioner(Partitioner[[]byte, fkResponse[VO]](func(_ string, _ []byte, r fkResponse[VO], n int32) (int32, error) {
			if r.partition < 0 || r.partition >= n {
				return 0, fmt.Errorf("foreign-key join answer for partition %d of a topic of %d partitions: the left table's topics and %q must have the same partition count", r.partition, n, respTopic)
			}
			return r.partition, nil
		})))

	// Left side again: resolve the answers.
	respSource := Source(b, name+"-response-source", respTopic, serde.Serde[K](noPreflight[K]{left.keys}), resps)
	ref := timestampedKeyValueStore(b, name, left.keys, values, opts)
	n := process(b, name, []Node[K, fkResponse[VO]]{respSource}, func() processor.Processor[K, fkResponse[VO], K, Change[VR]] {
		return &fkResponseJoiner[K, V, VO, VR]{left: left.store, result: ref.name, values: left.values, leftJoin: leftJoin, joiner: joiner}
	}, []ProcessOption{WithStores(left.store, ref.name)})
	return KTable[K, VR]{b: b, name: n.name, store: name, keys: left.keys, values: values}
}

// fkInstruction tells the right side what to do with a subscription
// message (Kafka Streams' SubscriptionWrapper.Instruction).
type fkInstruction byte

const (
	// fkUnsubscribe removes the subscription, no answer (the left row
	// moved to another foreign key; its new one answers).
	fkUnsubscribe fkInstruction = iota + 1
	// fkUnsubscribeAndAnswer removes the subscription and answers "no
	// right value" (the left row was deleted).
	fkUnsubscribeAndAnswer
	// fkSubscribeAnswerAlways files the subscription and answers with the
	// right value or "no right value" (a left update that may replace an
	// earlier result, or any left update of a left join).
	fkSubscribeAnswerAlways
	// fkSubscribeAnswerIfFound files the subscription and answers only if
	// the right value exists (a new left row of an inner join: no result
	// to replace).
	fkSubscribeAnswerIfFound
)

// subscription is a subscription message: sent typed (key, value) by the
// left side; the serde writes the left key's bytes and the hash of the
// value, which is all the right side reads back (keyBytes, hash).
type subscription[K, V any] struct {
	instruction fkInstruction
	partition   int32
	key         K
	value       V
	hasValue    bool
	// Set when read back.
	keyBytes, hash []byte
}

const fkWireVersion = 1

// fkHashLen is the length of a left value's hash: the first 16 bytes of
// its serialization's SHA-256 (Kafka Streams uses a 128-bit murmur3).
const fkHashLen = 16

// fkHash hashes a left value for a subscription whose topic is subTopic:
// the left value serde serializes it for the pseudo topic
// "<subTopic>-hash" (so that a schema-registry serde keeps the left value
// schema out of the subscription topic's own subjects).
func fkHash[V any](values serde.Serde[V], subTopic string, v V) ([]byte, error) {
	b, err := values.Serialize(subTopic+"-hash", v)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	return sum[:fkHashLen], nil
}

// subscriptionSerde writes a subscription as: version, instruction, the
// left partition (int32, big-endian), the hash length and hash, then the
// left key serialized for the pseudo topic "<topic>-pk".
type subscriptionSerde[K, V any] struct {
	keys   serde.Serde[K]
	values serde.Serde[V]
}

func (s subscriptionSerde[K, V]) Serialize(topic string, m subscription[K, V]) ([]byte, error) {
	var hash []byte
	if m.hasValue {
		var err error
		if hash, err = fkHash(s.values, topic, m.value); err != nil {
			return nil, err
		}
	}
	kb, err := s.keys.Serialize(topic+"-pk", m.key)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 7+len(hash)+len(kb))
	out = append(out, fkWireVersion, byte(m.instruction))
	out = binary.BigEndian.AppendUint32(out, uint32(m.partition))
	out = append(out, byte(len(hash)))
	out = append(append(out, hash...), kb...)
	return out, nil
}

func (s subscriptionSerde[K, V]) Deserialize(topic string, data []byte) (subscription[K, V], error) {
	var m subscription[K, V]
	bad := func(kind error, format string, args ...any) (subscription[K, V], error) {
		return m, &serde.DecodeError{Format: "fk-subscription", Topic: topic, SchemaID: -1, Kind: kind, Err: fmt.Errorf(format, args...)}
	}
	if len(data) < 7 {
		return bad(serde.ErrTruncated, "subscription of %d bytes", len(data))
	}
	if data[0] != fkWireVersion || data[1] < byte(fkUnsubscribe) || data[1] > byte(fkSubscribeAnswerIfFound) {
		return bad(serde.ErrCorrupt, "subscription version %d, instruction %d", data[0], data[1])
	}
	m.instruction = fkInstruction(data[1])
	m.partition = int32(binary.BigEndian.Uint32(data[2:]))
	n := int(data[6])
	if n != 0 && n != fkHashLen || len(data) < 7+n {
		return bad(serde.ErrCorrupt, "subscription hash of %d bytes in %d", n, len(data))
	}
	if n > 0 {
		m.hash = bytes.Clone(data[7 : 7+n])
	}
	m.keyBytes = bytes.Clone(data[7+n:])
	return m, nil
}

// Preflight checks the left key and value serdes for the pseudo topics
// they write to.
func (s subscriptionSerde[K, V]) Preflight(ctx context.Context, topic string) error {
	return errors.Join(preflightOf(ctx, s.keys, topic+"-pk"), preflightOf(ctx, s.values, topic+"-hash"))
}

func preflightOf(ctx context.Context, s any, topic string) error {
	if p, ok := s.(serde.Preflighter); ok {
		return p.Preflight(ctx, topic)
	}
	return nil
}

// fkResponse is the right side's answer to a left key: the hash of the
// left value it was made for, and the right value (found false: none).
// partition, the left key's partition, only steers the response sink.
type fkResponse[VO any] struct {
	hash      []byte
	value     VO
	found     bool
	partition int32
}

// fkResponseSerde writes an answer as: version, found (0 or 1), the hash
// length and hash, then the right value's bytes.
type fkResponseSerde[VO any] struct{ values serde.Serde[VO] }

func (s fkResponseSerde[VO]) Serialize(topic string, r fkResponse[VO]) ([]byte, error) {
	var vb []byte
	var found byte
	if r.found {
		found = 1
		var err error
		if vb, err = s.values.Serialize(topic, r.value); err != nil {
			return nil, err
		}
	}
	out := make([]byte, 0, 3+len(r.hash)+len(vb))
	out = append(out, fkWireVersion, found, byte(len(r.hash)))
	return append(append(out, r.hash...), vb...), nil
}

func (s fkResponseSerde[VO]) Deserialize(topic string, data []byte) (fkResponse[VO], error) {
	var r fkResponse[VO]
	if len(data) < 3 || data[0] != fkWireVersion || data[1] > 1 {
		return r, &serde.DecodeError{Format: "fk-response", Topic: topic, SchemaID: -1, Kind: serde.ErrCorrupt, Err: fmt.Errorf("foreign-key join answer of %d bytes", len(data))}
	}
	n := int(data[2])
	if n != 0 && n != fkHashLen || len(data) < 3+n {
		return r, &serde.DecodeError{Format: "fk-response", Topic: topic, SchemaID: -1, Kind: serde.ErrCorrupt, Err: fmt.Errorf("answer hash of %d bytes in %d", n, len(data))}
	}
	if n > 0 {
		r.hash = bytes.Clone(data[3 : 3+n])
	}
	if data[1] == 1 {
		r.found = true
		v, err := s.values.Deserialize(topic, data[3+n:])
		if err != nil {
			return r, err
		}
		r.value = v
	}
	return r, nil
}

// Preflight checks the right value serde for the response topic.
func (s fkResponseSerde[VO]) Preflight(ctx context.Context, topic string) error {
	return preflightOf(ctx, s.values, topic)
}

// suffixSerde serializes with inner for the pseudo topic "<topic><suffix>",
// so that a schema-registry serde of another record type does not share
// the subjects of the topic it is used for.
type suffixSerde[T any] struct {
	inner  serde.Serde[T]
	suffix string
}

func (s suffixSerde[T]) Serialize(topic string, v T) ([]byte, error) {
	return s.inner.Serialize(topic+s.suffix, v)
}

func (s suffixSerde[T]) Deserialize(topic string, data []byte) (T, error) {
	return s.inner.Deserialize(topic+s.suffix, data)
}

func (s suffixSerde[T]) Preflight(ctx context.Context, topic string) error {
	return preflightOf(ctx, s.inner, topic+s.suffix)
}

// noPreflight reads the left keys of the response topic: their bytes were
// written for the subscription topic's pseudo topic "-pk" (and are checked
// there), so nothing is registered for the response topic's keys.
type noPreflight[T any] struct{ inner serde.Serde[T] }

func (s noPreflight[T]) Serialize(topic string, v T) ([]byte, error) {
	return s.inner.Serialize(topic, v)
}

func (s noPreflight[T]) Deserialize(topic string, data []byte) (T, error) {
	return s.inner.Deserialize(topic, data)
}

// fkSubKey is a key of the subscription store: a foreign key and a left
// key's bytes. Its bytes are the foreign key's length (uint32,
// big-endian), the foreign key and the left key, so the subscribers of a
// foreign key are the keys with the prefix of its length and bytes.
type fkSubKey[KO any] struct {
	fk KO
	pk []byte
}

type fkSubKeySerde[KO any] struct{ keys serde.Serde[KO] }

func (s fkSubKeySerde[KO]) Serialize(topic string, k fkSubKey[KO]) ([]byte, error) {
	fb, err := s.keys.Serialize(topic, k.fk)
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(fb)+len(k.pk)), uint32(len(fb)))
	return append(append(out, fb...), k.pk...), nil
}

func (s fkSubKeySerde[KO]) Deserialize(topic string, data []byte) (fkSubKey[KO], error) {
	var k fkSubKey[KO]
	if len(data) < 4 || uint64(binary.BigEndian.Uint32(data)) > uint64(len(data)-4) {
		return k, &serde.DecodeError{Format: "fk-subscription-key", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated, Err: fmt.Errorf("subscription key of %d bytes", len(data))}
	}
	n := binary.BigEndian.Uint32(data)
	var err error
	if k.fk, err = s.keys.Deserialize(topic, data[4:4+n]); err != nil {
		return k, err
	}
	k.pk = bytes.Clone(data[4+n:])
	return k, nil
}

func (s fkSubKeySerde[KO]) Preflight(ctx context.Context, topic string) error {
	return preflightOf(ctx, s.keys, topic)
}

// fkSub is a filed subscription: the left key's partition and the hash of
// the left value it was made for.
type fkSub struct {
	partition int32
	hash      []byte
}

// fkSubSerde writes the partition (int32, big-endian) then the hash.
type fkSubSerde struct{}

func (fkSubSerde) Serialize(_ string, s fkSub) ([]byte, error) {
	return append(binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(s.hash)), uint32(s.partition)), s.hash...), nil
}

func (fkSubSerde) Deserialize(topic string, data []byte) (fkSub, error) {
	if len(data) < 4 {
		return fkSub{}, &serde.DecodeError{Format: "fk-subscription", Topic: topic, SchemaID: -1, Kind: serde.ErrTruncated, Err: fmt.Errorf("subscription of %d bytes", len(data))}
	}
	return fkSub{partition: int32(binary.BigEndian.Uint32(data)), hash: bytes.Clone(data[4:])}, nil
}

// fkSubscriber is the "<name>-subscribe" node (Kafka Streams'
// SubscriptionSendProcessorSupplier). It keeps each left key's foreign key
// in a store, where Kafka Streams extracts it again from the old value.
type fkSubscriber[K, V, KO any] struct {
	store    string
	fk       func(V) (KO, error)
	leftJoin bool
	nilFK    bool
	kv       store.KeyValueStore[K, KO]
}

func (p *fkSubscriber[K, V, KO]) Init(ctx processor.Context[KO, subscription[K, V]]) (err error) {
	p.kv, err = processor.KeyValueStore[K, KO](ctx, p.store)
	return err
}

func (p *fkSubscriber[K, V, KO]) Process(ctx processor.Context[KO, subscription[K, V]], r processor.Record[K, Change[V]]) error {
	old, hadOld, err := p.kv.Get(r.Key)
	if err != nil {
		return err
	}
	send := func(fk KO, in fkInstruction, withValue bool) error {
		m := subscription[K, V]{instruction: in, partition: ctx.TaskID().Partition, key: r.Key}
		if withValue {
			m.value, m.hasValue = r.Value.Value, true
		}
		return ctx.Forward(processor.Record[KO, subscription[K, V]]{Key: fk, Value: m, Timestamp: r.Timestamp, Headers: r.Headers})
	}
	if r.Value.Deleted {
		if !hadOld {
			return nil // no row, no subscription: nothing to undo
		}
		if err := p.kv.Delete(r.Key); err != nil {
			return err
		}
		return send(old, fkUnsubscribeAndAnswer, false)
	}
	fk, err := p.fk(r.Value.Value)
	if err != nil {
		return err
	}
	if p.nilFK && isNil(fk) {
		return ErrNilForeignKey
	}
	if err := p.kv.Put(r.Key, fk); err != nil {
		return err
	}
	if !hadOld {
		// A new left row: an inner join has no result to replace, so
		// only a match answers; a left join always answers.
		in := fkSubscribeAnswerIfFound
		if p.leftJoin {
			in = fkSubscribeAnswerAlways
		}
		return send(fk, in, true)
	}
	if !reflect.DeepEqual(old, fk) {
		// The row moved: leave the old right row without an answer (the
		// new one answers for the row, whether it exists or not). Kafka
		// Streams' left join has the old one answer "no right value" too;
		// that answer may arrive after the new one's and undo it.
		if err := send(old, fkUnsubscribe, false); err != nil {
			return err
		}
	}
	return send(fk, fkSubscribeAnswerAlways, true)
}

func (p *fkSubscriber[K, V, KO]) Close() error { return nil }

// fkSubscriptionReceiver is "<name>-subscription-receive" (Kafka Streams'
// SubscriptionReceiveProcessorSupplier and SubscriptionJoinProcessorSupplier).
type fkSubscriptionReceiver[K, V, KO, VO any] struct {
	subs, right string
	kv          store.KeyValueStore[fkSubKey[KO], fkSub]
	rights      tableReader[KO, VO]
}

func (p *fkSubscriptionReceiver[K, V, KO, VO]) Init(ctx processor.Context[[]byte, fkResponse[VO]]) (err error) {
	if p.kv, err = processor.KeyValueStore[fkSubKey[KO], fkSub](ctx, p.subs); err != nil {
		return err
	}
	p.rights, err = openTableReader[KO, VO](ctx, p.right)
	return err
}

func (p *fkSubscriptionReceiver[K, V, KO, VO]) Process(ctx processor.Context[[]byte, fkResponse[VO]], r processor.Record[KO, subscription[K, V]]) error {
	m := r.Value
	key := fkSubKey[KO]{fk: r.Key, pk: m.keyBytes}
	var err error
	switch m.instruction {
	case fkUnsubscribe, fkUnsubscribeAndAnswer:
		err = p.kv.Delete(key)
	default:
		err = p.kv.Put(key, fkSub{partition: m.partition, hash: m.hash})
	}
	if err != nil {
		return err
	}
	answer := fkResponse[VO]{hash: m.hash, partition: m.partition}
	ts := r.Timestamp
	switch m.instruction {
	case fkUnsubscribe:
		return nil
	case fkUnsubscribeAndAnswer:
	default:
		v, vts, found, err := p.rights.get(r.Key)
		if err != nil {
			return err
		}
		if !found && m.instruction == fkSubscribeAnswerIfFound {
			return nil
		}
		answer.value, answer.found = v, found
		if found && vts.After(ts) {
			ts = vts
		}
	}
	return ctx.Forward(processor.Record[[]byte, fkResponse[VO]]{Key: m.keyBytes, Value: answer, Timestamp: ts, Headers: r.Headers})
}

func (p *fkSubscriptionReceiver[K, V, KO, VO]) Close() error { return nil }

// fkForeignUpdater is "<name>-foreign-update" (Kafka Streams'
// ForeignTableJoinProcessorSupplier): a change of a right row answers
// every left key subscribed to it, each with the hash it subscribed with.
type fkForeignUpdater[KO, VO any] struct {
	subs    string
	nilKey  bool
	kv      store.KeyValueStore[fkSubKey[KO], fkSub]
	dropped int64
}

func (p *fkForeignUpdater[KO, VO]) Init(ctx processor.Context[[]byte, fkResponse[VO]]) (err error) {
	p.kv, err = processor.KeyValueStore[fkSubKey[KO], fkSub](ctx, p.subs)
	return err
}

func (p *fkForeignUpdater[KO, VO]) Process(ctx processor.Context[[]byte, fkResponse[VO]], r processor.Record[KO, Change[VO]]) error {
	if md, ok := ctx.RecordMetadata(); ok && md.NullKey || p.nilKey && isNil(r.Key) {
		p.dropped++
		countDrop(ctx, metrics.DropNullKey)
		ctx.Logger().Warn("brook: foreign-key join dropped a right-table record with a null key", "action", "none if such records are expected; otherwise fix the producer that writes null keys", "dropped_total", p.dropped,
			"topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
		return nil
	}
	it, err := p.kv.Prefix(fkSubKey[KO]{fk: r.Key})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Next() {
		s := it.Value()
		answer := fkResponse[VO]{hash: s.hash, partition: s.partition, value: r.Value.Value, found: !r.Value.Deleted}
		if err := ctx.Forward(processor.Record[[]byte, fkResponse[VO]]{Key: it.Key().pk, Value: answer, Timestamp: r.Timestamp, Headers: r.Headers}); err != nil {
			return err
		}
	}
	return it.Err()
}

func (p *fkForeignUpdater[KO, VO]) Close() error { return nil }

// fkResponseJoiner is the result node name (Kafka Streams'
// ResponseJoinProcessorSupplier, with the result materialized): an answer
// made for the left key's current value is joined with it; an answer made
// for another value (the row changed or went meanwhile) is dropped.
type fkResponseJoiner[K, V, VO, VR any] struct {
	left, result string
	values       serde.Serde[V]
	leftJoin     bool
	joiner       func(K, V, VO, bool) (VR, error)
	lefts        store.KeyValueStore[K, V]
	results      store.TimestampedKeyValueStore[K, VR]
	stale        int64
}

func (p *fkResponseJoiner[K, V, VO, VR]) Init(ctx processor.Context[K, Change[VR]]) (err error) {
	if p.lefts, err = processor.KeyValueStore[K, V](ctx, p.left); err != nil {
		return err
	}
	p.results, err = processor.TimestampedKeyValueStore[K, VR](ctx, p.result)
	return err
}

func (p *fkResponseJoiner[K, V, VO, VR]) Process(ctx processor.Context[K, Change[VR]], r processor.Record[K, fkResponse[VO]]) error {
	cur, found, err := p.lefts.Get(r.Key)
	if err != nil {
		return err
	}
	md, _ := ctx.RecordMetadata()
	var hash []byte
	if found {
		// The hash the subscription serde computed for the subscription
		// topic that goes with this response topic.
		subTopic := strings.TrimSuffix(md.Topic, responseTopicSuffix) + subscriptionTopicSuffix
		if hash, err = fkHash(p.values, subTopic, cur); err != nil {
			return err
		}
	}
	if !bytes.Equal(hash, r.Value.hash) {
		p.stale++
		ctx.Logger().Debug("brook: foreign-key join dropped an answer made for an earlier left value", "stale_total", p.stale,
			"topic", md.Topic, "partition", md.Partition, "offset", md.Offset)
		return nil
	}
	out := processor.Record[K, Change[VR]]{Key: r.Key, Value: Deletion[VR](), Timestamp: r.Timestamp, Headers: r.Headers}
	if found && (r.Value.found || p.leftJoin) {
		v, err := p.joiner(r.Key, cur, r.Value.value, r.Value.found)
		if err != nil {
			return err
		}
		out.Value = Update(v)
		err = p.results.PutWithTimestamp(r.Key, v, r.Timestamp)
	} else {
		err = p.results.Delete(r.Key)
	}
	if err != nil {
		return err
	}
	return ctx.Forward(out)
}

func (p *fkResponseJoiner[K, V, VO, VR]) Close() error { return nil }
