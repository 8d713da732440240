package store

import (
	"bytes"
	"fmt"
	"math"
	"time"

	"github.com/brookstream/brook/serde"
)

// Option configures a typed store built by NewKeyValueStore (and the
// window and TTL stores).
type Option func(*storeConfig)

type storeConfig struct {
	changelogTopic string
	partition      int32
	writer         ChangelogWriter
	serdeTopic     string
	cache          *Cache
}

// WithSerdeTopic sets the topic passed to the store's key and value serdes
// when it differs from the changelog topic (a table passes its source
// topic, so an Avro serde uses that topic's subject).
func WithSerdeTopic(topic string) Option {
	return func(c *storeConfig) { c.serdeTopic = topic }
}

// WithChangelog makes the store logged: every Put and Delete (and, for TTL
// stores, every expiry) also sends the key bytes and value bytes (nil for a
// delete: a tombstone) to topic and partition through w. The topic is
// normally ChangelogTopic(appID, storeName) and the partition is the
// task's partition. The changelog topic is also the topic passed to the
// key and value serdes.
//
// A table that reads a compacted source topic does not log its writes: it
// restores from the source topic instead (see [Restore]).
func WithChangelog(topic string, partition int32, w ChangelogWriter) Option {
	return func(c *storeConfig) {
		c.changelogTopic, c.partition, c.writer = topic, partition, w
	}
}

// ChangelogTopic returns the changelog topic of a store:
// "<application-id>-<store>-changelog".
func ChangelogTopic(appID, storeName string) string {
	return appID + "-" + storeName + "-changelog"
}

// NewKeyValueStore returns a typed key-value store over engine e. The
// engine is not owned by the store: whoever opened it flushes and closes
// it. Keys order by their serialized bytes (see the package doc for which
// serdes keep numeric order).
//
// A value that serializes to nil bytes is a Kafka null: Put of such a value
// deletes the key, as a tombstone would.
//
// With [WithCache] the store answers Gets from the task's record cache
// when it can (see [Cache]); such a store must then be read by the task's
// goroutine only: hand interactive queries its [QueryView].
func NewKeyValueStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], opts ...Option) KeyValueStore[K, V] {
	return newKVStore(name, e, keys, values, false, opts)
}

func newKVStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], timestamped bool, opts []Option) *kvStore[K, V] {
	s := &kvStore[K, V]{name: name, e: e, keys: keys, values: values, timestamped: timestamped}
	for _, o := range opts {
		o(&s.cfg)
	}
	s.topic = s.cfg.serdeTopic
	if s.topic == "" {
		s.topic = s.cfg.changelogTopic
	}
	if s.topic == "" {
		s.topic = name
	}
	// The query views read the engine (or, committed, the overlay's
	// base) and never the cache; they are made here, once, because
	// queries ask for them from other goroutines.
	views := new([2]*kvStore[K, V])
	for iso := range views {
		v := *s
		v.cfg.cache, v.readOnly, v.views = nil, true, views
		if o, ok := e.(*Overlay); ok && Isolation(iso) == ReadCommitted {
			v.e = o.Base()
		}
		views[iso] = &v
	}
	s.views = views
	if s.cfg.cache != nil {
		s.kc = newKVCache[V](s.cfg.cache)
		s.kc.timestamped = s.timestamped
		if o, ok := e.(*Overlay); ok {
			s.ov = o
			o.watch(s.kc)
		}
	}
	return s
}

type kvStore[K, V any] struct {
	name   string
	e      Engine
	keys   serde.Serde[K]
	values serde.Serde[V]
	cfg    storeConfig
	topic  string // passed to serdes
	// timestamped: engine and changelog values are an 8-byte timestamp
	// (see NewTimestampedKeyValueStore) before the value's bytes.
	timestamped bool
	// kc is the store's part of its record cache (nil: none); ov is the
	// overlay it watches (nil when the engine is not one).
	kc *kvCache[V]
	ov *Overlay
	// views are the query views by Isolation; readOnly marks a view.
	views    *[2]*kvStore[K, V]
	readOnly bool
}

// TimestampedKeyValueStore is a key-value store that keeps, with each
// value, the timestamp of the record it came from (as Kafka Streams'
// timestamped stores do), so that an aggregation can give its output the
// latest timestamp of its inputs. As a KeyValueStore it reads and writes
// plain values (Put stamps them with no timestamp, the zero time), so
// interactive queries and processors see an ordinary key-value store.
type TimestampedKeyValueStore[K, V any] interface {
	KeyValueStore[K, V]
	// GetWithTimestamp returns key's value and its timestamp (the zero
	// time when it was put without one).
	GetWithTimestamp(key K) (value V, ts time.Time, found bool, err error)
	// PutWithTimestamp stores value under key with timestamp ts
	// (millisecond precision).
	PutWithTimestamp(key K, value V, ts time.Time) error
}

// NewTimestampedKeyValueStore returns a timestamped key-value store over
// engine e (see NewKeyValueStore for ownership and options). Engine and
// changelog values are the timestamp as 8 bytes (Unix milliseconds,
// big-endian, sign bit flipped; 0 bytes of a zero time are still 8
// bytes) followed by the value's bytes, so the default restore applies
// its changelog unchanged.
func NewTimestampedKeyValueStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], opts ...Option) TimestampedKeyValueStore[K, V] {
	return newKVStore(name, e, keys, values, true, opts)
}

// noTimestamp is the stored timestamp of a value put without one.
const noTimestamp = math.MinInt64

func (s *kvStore[K, V]) GetWithTimestamp(key K) (V, time.Time, bool, error) {
	v, ts, found, err := s.get(key)
	if ts == noTimestamp {
		return v, time.Time{}, found, err
	}
	return v, time.UnixMilli(ts), found, err
}

func (s *kvStore[K, V]) PutWithTimestamp(key K, value V, ts time.Time) error {
	ms := int64(noTimestamp)
	if !ts.IsZero() {
		ms = ts.UnixMilli()
	}
	return s.put(key, value, ms)
}

// split separates a stored value into its timestamp (Unix ms, or
// noTimestamp) and value bytes; a store that is not timestamped has no
// timestamp.
func (s *kvStore[K, V]) split(vb []byte) (int64, []byte, error) {
	if !s.timestamped {
		return noTimestamp, vb, nil
	}
	if len(vb) < 8 {
		return noTimestamp, nil, fmt.Errorf("store: %s: timestamped value of %d bytes has no timestamp", s.name, len(vb))
	}
	return readTime(vb), vb[8:], nil
}

func (s *kvStore[K, V]) Name() string { return s.name }

func (s *kvStore[K, V]) keyBytes(k K) ([]byte, error) {
	b, err := s.keys.Serialize(s.topic, k)
	if err != nil {
		return nil, fmt.Errorf("store: %s: serialize key: %w", s.name, err)
	}
	return b, nil
}

func (s *kvStore[K, V]) Get(key K) (V, bool, error) {
	v, _, found, err := s.get(key)
	return v, found, err
}

// get returns key's value and timestamp: from the cache when it holds the
// key, else from the engine (then caching what it read).
func (s *kvStore[K, V]) get(key K) (V, int64, bool, error) {
	var zero V
	kb, err := s.keyBytes(key)
	if err != nil {
		return zero, noTimestamp, false, err
	}
	if s.ov != nil {
		// A key written since the last commit is read from the overlay's
		// pending writes (the cache holds committed values only): an
		// aggregation reading back what it wrote in the same commit
		// interval pays no cache work.
		pv, deleted, ok, err := s.ov.pendingGet(kb)
		if err != nil {
			return zero, noTimestamp, false, fmt.Errorf("store: %s: get: %w", s.name, err)
		}
		if ok {
			if deleted {
				return zero, noTimestamp, false, nil
			}
			if s.kc.copy.fn != nil || s.kc.copy.never {
				pv = bytes.Clone(pv) // the value may share the bytes it is decoded from
			}
			v, ts, _, err := s.decode(pv)
			if err != nil {
				return zero, noTimestamp, false, err
			}
			return v, ts, true, nil
		}
	}
	if s.kc != nil {
		if e := s.kc.lookup(kb); e != nil {
			if !e.found {
				return zero, noTimestamp, false, nil
			}
			if !e.encoded {
				if v, ok := s.kc.copy.clone(e.v); ok {
					return v, e.ts, true, nil
				}
			} else {
				enc, decode := s.kc.readEncoded(e)
				v, err := s.values.Deserialize(s.topic, enc)
				if err != nil {
					return zero, noTimestamp, false, fmt.Errorf("store: %s: deserialize value: %w", s.name, err)
				}
				if decode {
					s.kc.decoded(e, v)
				}
				return v, e.ts, true, nil
			}
		}
	}
	var vb []byte
	var found bool
	if s.ov != nil {
		// Not pending (checked above): the base answers, without the
		// overlay looking through its pending writes again.
		vb, found, err = s.ov.Base().Get(kb)
	} else {
		vb, found, err = s.e.Get(kb)
	}
	if err != nil {
		return zero, noTimestamp, false, fmt.Errorf("store: %s: get: %w", s.name, err)
	}
	if !found {
		if s.kc != nil {
			s.kc.putDecoded(kb, zero, nil, noTimestamp, false)
		}
		return zero, noTimestamp, false, nil
	}
	v, ts, vb, err := s.decode(vb)
	if err != nil {
		return zero, noTimestamp, false, err
	}
	if s.kc != nil {
		s.kc.putDecoded(kb, v, vb, ts, true)
	}
	return v, ts, true, nil
}

// decode splits a stored value into its timestamp and value bytes (vb)
// and deserializes them.
func (s *kvStore[K, V]) decode(stored []byte) (v V, ts int64, vb []byte, err error) {
	ts, vb, err = s.split(stored)
	if err != nil {
		return v, noTimestamp, nil, err
	}
	v, err = s.values.Deserialize(s.topic, vb)
	if err != nil {
		return v, noTimestamp, nil, fmt.Errorf("store: %s: deserialize value: %w", s.name, err)
	}
	return v, ts, vb, nil
}

func (s *kvStore[K, V]) Put(key K, value V) error { return s.put(key, value, noTimestamp) }

func (s *kvStore[K, V]) put(key K, value V, tsMs int64) error {
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	vb, err := s.values.Serialize(s.topic, value)
	if err != nil {
		return fmt.Errorf("store: %s: serialize value: %w", s.name, err)
	}
	if s.timestamped && vb != nil {
		vb = append(appendTime(make([]byte, 0, 8+len(vb)), tsMs), vb...)
	}
	return s.putBytes(kb, vb, tsMs)
}

// putBytes writes locally, then to the changelog. A nil value deletes.
// The cache (write-through) takes the write once the engine has it.
func (s *kvStore[K, V]) putBytes(kb, vb []byte, tsMs int64) error {
	if s.readOnly {
		return fmt.Errorf("store: %s: %w", s.name, ErrReadOnly)
	}
	if s.ov != nil {
		s.ov.writer = s.kc // the overlay need not tell us of our own write
	}
	var err error
	if vb == nil {
		if err = s.e.Delete(kb); err != nil {
			err = fmt.Errorf("store: %s: delete: %w", s.name, err)
		}
	} else if err = s.e.Put(kb, vb); err != nil {
		err = fmt.Errorf("store: %s: put: %w", s.name, err)
	}
	if s.ov != nil {
		s.ov.writer = nil
	}
	if s.kc != nil {
		if err != nil {
			s.kc.forget(string(kb))
			return err
		}
		// Over an overlay a write leaves the cache alone: until the next
		// commit the key is read from the overlay's pending writes (get),
		// and the commit gives the key's entry, if it has one, the
		// committed value (overlayCommitted). Without an overlay, a write
		// updates the key's entry if it has one. Either way a write makes
		// no entry: a table filled from its topic or a store written more
		// than read would pay for an entry (and an eviction) per write
		// that no read uses.
		if s.ov == nil && s.kc.cached(kb) {
			enc := vb
			if s.timestamped && vb != nil {
				enc = vb[8:] // vb is ours: put made it
			} else if vb != nil {
				enc = bytes.Clone(vb) // a serde may hand back the caller's bytes
			}
			s.kc.putEncoded(kb, enc, tsMs)
		}
	}
	if err != nil {
		return err
	}
	return logWrite(s.name, &s.cfg, kb, vb)
}

// logWrite sends one changelog record if the store is logged.
func logWrite(name string, c *storeConfig, kb, vb []byte) error {
	if c.writer == nil {
		return nil
	}
	if err := c.writer.SendChangelog(c.changelogTopic, c.partition, kb, vb); err != nil {
		return fmt.Errorf("store: %s: changelog %s[%d]: %w", name, c.changelogTopic, c.partition, err)
	}
	return nil
}

func (s *kvStore[K, V]) PutIfAbsent(key K, value V) (V, bool, error) {
	existing, found, err := s.Get(key)
	if err != nil || found {
		return existing, found, err
	}
	return existing, false, s.Put(key, value)
}

func (s *kvStore[K, V]) Delete(key K) error {
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	return s.putBytes(kb, nil, noTimestamp)
}

func (s *kvStore[K, V]) Range(from, to K) (Iterator[K, V], error) {
	return s.rangeOf(from, to, false)
}

func (s *kvStore[K, V]) ReverseRange(from, to K) (Iterator[K, V], error) {
	return s.rangeOf(from, to, true)
}

func (s *kvStore[K, V]) rangeOf(from, to K, reverse bool) (Iterator[K, V], error) {
	lo, err := s.keyBytes(from)
	if err != nil {
		return nil, err
	}
	hi, err := s.keyBytes(to)
	if err != nil {
		return nil, err
	}
	if lo == nil {
		lo = []byte{}
	}
	if hi == nil {
		hi = []byte{}
	}
	return s.iterate(lo, hi, reverse)
}

func (s *kvStore[K, V]) Prefix(prefix K) (Iterator[K, V], error) {
	p, err := s.keyBytes(prefix)
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return s.iterate(nil, nil, false)
	}
	return s.iterate(p, PrefixEnd(p), false)
}

func (s *kvStore[K, V]) All() (Iterator[K, V], error) { return s.iterate(nil, nil, false) }

func (s *kvStore[K, V]) ApproximateCount() (int64, error) {
	n, err := s.e.ApproximateCount()
	if err != nil {
		return 0, fmt.Errorf("store: %s: count: %w", s.name, err)
	}
	return n, nil
}

func (s *kvStore[K, V]) iterate(lo, hi []byte, reverse bool) (Iterator[K, V], error) {
	it, err := s.e.Iterate(lo, hi, reverse)
	if err != nil {
		return nil, fmt.Errorf("store: %s: iterate: %w", s.name, err)
	}
	return &typedIter[K, V]{s: s, it: it}, nil
}

// PrefixEnd returns the smallest key greater than every key that starts
// with p, or nil (no upper bound) when p is all 0xff bytes or empty.
func PrefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] != 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// typedIter decodes an engine iterator. A decode error ends the iteration
// and is reported by Err.
type typedIter[K, V any] struct {
	s   *kvStore[K, V]
	it  Iterator[[]byte, []byte]
	k   K
	v   V
	err error
}

func (t *typedIter[K, V]) Next() bool {
	if t.err != nil || !t.it.Next() {
		return false
	}
	k, err := t.s.keys.Deserialize(t.s.topic, t.it.Key())
	if err != nil {
		t.err = fmt.Errorf("store: %s: deserialize key %x: %w", t.s.name, t.it.Key(), err)
		return false
	}
	_, vb, err := t.s.split(t.it.Value())
	if err != nil {
		t.err = err
		return false
	}
	v, err := t.s.values.Deserialize(t.s.topic, vb)
	if err != nil {
		t.err = fmt.Errorf("store: %s: deserialize value of key %x: %w", t.s.name, t.it.Key(), err)
		return false
	}
	t.k, t.v = k, v
	return true
}

func (t *typedIter[K, V]) Key() K   { return t.k }
func (t *typedIter[K, V]) Value() V { return t.v }

func (t *typedIter[K, V]) Err() error {
	if t.err != nil {
		return t.err
	}
	return t.it.Err()
}

func (t *typedIter[K, V]) Close() error { return t.it.Close() }
