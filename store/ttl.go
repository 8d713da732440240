package store

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brookstream/brook/serde"
)

// TTL store layout. In the engine:
//
//	'd' | key                  -> expiry (8 bytes, see appendTime) | value
//	'x' | expiry (8 bytes) | key -> empty (the expiry index)
//
// The changelog holds key -> expiry | value (tombstones for deletes and
// expiries); the index is derived and rebuilt on restore by TTLStoreApply.
// An index entry whose data record has since changed is stale and is
// dropped without effect when its time comes.
const (
	ttlData  = 'd'
	ttlIndex = 'x'
)

// ErrNoStreamTime is returned by TTLStore.Put (which has no timestamp of
// its own) before the store has observed any time: use PutAt.
var ErrNoStreamTime = errors.New("store: TTL store has observed no stream time yet: use PutAt or AdvanceTime first")

// TTLOptions configures a TTL store.
type TTLOptions struct {
	// TTL is how long an entry lives after the (event) time it was put
	// at. Required.
	TTL time.Duration
}

// Validate reports options that cannot work.
func (o TTLOptions) Validate() error {
	if o.TTL < time.Millisecond {
		return fmt.Errorf("store: TTLOptions.TTL %v must be at least 1ms", o.TTL)
	}
	return nil
}

// TTLStore is a key-value store whose entries expire by event time: an
// entry put at time t (PutAt) expires once the observed stream time
// reaches t + TTL. Expired entries are never returned; AdvanceTime (and
// PutAt, when it moves time forward) deletes them and, for a logged store,
// writes a tombstone for each to the changelog. Time has millisecond
// precision.
//
// As a KeyValueStore, Put stamps entries with the observed stream time.
type TTLStore[K, V any] interface {
	KeyValueStore[K, V]
	// PutAt stores value under key as of event time at (it expires at
	// at + TTL), advancing the observed stream time to at if later.
	PutAt(key K, value V, at time.Time) error
	// AdvanceTime raises the observed stream time (it never goes back)
	// and deletes the entries that have expired, returning how many.
	AdvanceTime(streamTime time.Time) (expired int, err error)
	// ObservedTime is the observed stream time (zero before any).
	ObservedTime() time.Time
}

// TTLStoreApply returns the RestoreConfig.Apply of a TTL store: it rebuilds
// the data records and the expiry index from the changelog.
func TTLStoreApply() func(b Batch, key, value []byte) error {
	var buf []byte
	return func(b Batch, key, value []byte) error {
		buf = append(append(buf[:0], ttlData), key...)
		if value == nil {
			b.Delete(buf)
			return nil
		}
		if len(value) < 8 {
			return fmt.Errorf("store: TTL changelog value of %d bytes has no expiry", len(value))
		}
		b.Put(buf, value)
		buf = append(append(append(buf[:0], ttlIndex), value[:8]...), key...)
		b.Put(buf, nil)
		return nil
	}
}

// NewTTLStore returns a TTL store over engine e (which the caller owns),
// restored or empty. The observed stream time starts at the latest put
// time found in the engine.
func NewTTLStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], o TTLOptions, opts ...Option) (TTLStore[K, V], error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	s := &ttlStore[K, V]{name: name, e: e, keys: keys, values: values, ttl: o.TTL.Milliseconds(), observed: math.MinInt64}
	for _, opt := range opts {
		opt(&s.cfg)
	}
	s.topic = s.cfg.changelogTopic
	if s.topic == "" {
		s.topic = name
	}
	it, err := e.Iterate([]byte{ttlIndex}, []byte{ttlIndex + 1}, true)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	if it.Next() && len(it.Key()) >= 9 {
		s.observed = readTime(it.Key()[1:9]) - s.ttl
	}
	if err := errors.Join(it.Err(), it.Close()); err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	return s, nil
}

type ttlStore[K, V any] struct {
	name     string
	e        Engine
	keys     serde.Serde[K]
	values   serde.Serde[V]
	cfg      storeConfig
	topic    string
	ttl      int64 // ms
	observed int64 // ms, MinInt64 before any
	// expiredThrough is the time up to which AdvanceTime has deleted the
	// expired entries (expired says whether it has run): the next scan
	// of the expiry index starts after it, not at the index's first key,
	// so it never steps again over the deletion markers of the index
	// entries it removed (LevelDB keeps them until compaction). PutAt
	// drops entries that expire at or before the observed time, and a
	// restore runs before the store is opened, so no index entry lands
	// below it.
	expiredThrough int64
	expired        bool
}

func (s *ttlStore[K, V]) Name() string { return s.name }

func (s *ttlStore[K, V]) ObservedTime() time.Time {
	if s.observed == math.MinInt64 {
		return time.Time{}
	}
	return time.UnixMilli(s.observed)
}

func (s *ttlStore[K, V]) dataKey(kb []byte) []byte {
	return append(append(make([]byte, 0, 1+len(kb)), ttlData), kb...)
}

func (s *ttlStore[K, V]) keyBytes(k K) ([]byte, error) {
	b, err := s.keys.Serialize(s.topic, k)
	if err != nil {
		return nil, fmt.Errorf("store: %s: serialize key: %w", s.name, err)
	}
	return b, nil
}

// live reports whether an engine data value is unexpired.
func (s *ttlStore[K, V]) live(v []byte) bool {
	return len(v) >= 8 && (s.observed == math.MinInt64 || readTime(v) > s.observed)
}

func (s *ttlStore[K, V]) Get(key K) (V, bool, error) {
	var zero V
	kb, err := s.keyBytes(key)
	if err != nil {
		return zero, false, err
	}
	vb, found, err := s.e.Get(s.dataKey(kb))
	if err != nil {
		return zero, false, fmt.Errorf("store: %s: get: %w", s.name, err)
	}
	if !found || !s.live(vb) {
		return zero, false, nil
	}
	v, err := s.values.Deserialize(s.topic, vb[8:])
	if err != nil {
		return zero, false, fmt.Errorf("store: %s: deserialize value: %w", s.name, err)
	}
	return v, true, nil
}

func (s *ttlStore[K, V]) Put(key K, value V) error {
	if s.observed == math.MinInt64 {
		return fmt.Errorf("store: %s: %w", s.name, ErrNoStreamTime)
	}
	return s.putAt(key, value, s.observed)
}

func (s *ttlStore[K, V]) PutAt(key K, value V, at time.Time) error {
	ms := at.UnixMilli()
	if ms > s.observed {
		if _, err := s.AdvanceTime(at); err != nil {
			return err
		}
	}
	return s.putAt(key, value, ms)
}

func (s *ttlStore[K, V]) putAt(key K, value V, atMs int64) error {
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	vb, err := s.values.Serialize(s.topic, value)
	if err != nil {
		return fmt.Errorf("store: %s: serialize value: %w", s.name, err)
	}
	if vb == nil {
		return s.deleteBytes(kb)
	}
	expiry := atMs + s.ttl
	if atMs > math.MaxInt64-s.ttl {
		expiry = math.MaxInt64
	}
	if s.observed != math.MinInt64 && expiry <= s.observed {
		return nil // expired on arrival
	}
	stored := append(appendTime(make([]byte, 0, 8+len(vb)), expiry), vb...)
	b := s.e.NewBatch()
	b.Put(s.dataKey(kb), stored)
	b.Put(append(appendTime([]byte{ttlIndex}, expiry), kb...), nil)
	if err := b.Write(); err != nil {
		return fmt.Errorf("store: %s: put: %w", s.name, err)
	}
	return logWrite(s.name, &s.cfg, kb, stored)
}

func (s *ttlStore[K, V]) PutIfAbsent(key K, value V) (V, bool, error) {
	existing, found, err := s.Get(key)
	if err != nil || found {
		return existing, found, err
	}
	return existing, false, s.Put(key, value)
}

func (s *ttlStore[K, V]) Delete(key K) error {
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	return s.deleteBytes(kb)
}

func (s *ttlStore[K, V]) deleteBytes(kb []byte) error {
	if err := s.e.Delete(s.dataKey(kb)); err != nil {
		return fmt.Errorf("store: %s: delete: %w", s.name, err)
	}
	return logWrite(s.name, &s.cfg, kb, nil)
}

func (s *ttlStore[K, V]) AdvanceTime(t time.Time) (int, error) {
	ms := t.UnixMilli()
	if ms <= s.observed {
		return 0, nil
	}
	s.observed = ms
	// Index entries with expiry <= observed.
	hi := append(appendTime([]byte{ttlIndex}, ms), 0xff)
	if ms < math.MaxInt64 {
		hi = appendTime([]byte{ttlIndex}, ms+1)
	}
	lo := []byte{ttlIndex}
	if s.expired {
		lo = appendTime(lo, s.expiredThrough+1)
	}
	it, err := s.e.Iterate(lo, hi, false)
	if err != nil {
		return 0, fmt.Errorf("store: %s: expire: %w", s.name, err)
	}
	defer it.Close()
	b := s.e.NewBatch()
	var logs [][]byte
	n := 0
	flush := func() error {
		if err := b.Write(); err != nil {
			return fmt.Errorf("store: %s: expire: %w", s.name, err)
		}
		b.Reset()
		for _, kb := range logs {
			if err := logWrite(s.name, &s.cfg, kb, nil); err != nil {
				return err
			}
		}
		logs = logs[:0]
		return nil
	}
	for it.Next() {
		ik := it.Key()
		b.Delete(ik)
		if len(ik) < 9 {
			continue
		}
		kb := ik[9:]
		dv, found, err := s.e.Get(s.dataKey(kb))
		if err != nil {
			return n, fmt.Errorf("store: %s: expire: %w", s.name, err)
		}
		// Only the index entry of the current value expires it.
		if found && len(dv) >= 8 && readTime(dv) == readTime(ik[1:9]) {
			b.Delete(s.dataKey(kb))
			logs = append(logs, append([]byte(nil), kb...))
			n++
		}
		if b.Len() >= 10_000 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := it.Err(); err != nil {
		return n, fmt.Errorf("store: %s: expire: %w", s.name, err)
	}
	if err := flush(); err != nil {
		return n, err
	}
	s.expiredThrough, s.expired = ms, true
	return n, nil
}

func (s *ttlStore[K, V]) Range(from, to K) (Iterator[K, V], error) { return s.rangeOf(from, to, false) }
func (s *ttlStore[K, V]) ReverseRange(from, to K) (Iterator[K, V], error) {
	return s.rangeOf(from, to, true)
}

func (s *ttlStore[K, V]) rangeOf(from, to K, reverse bool) (Iterator[K, V], error) {
	lo, err := s.keyBytes(from)
	if err != nil {
		return nil, err
	}
	hi, err := s.keyBytes(to)
	if err != nil {
		return nil, err
	}
	return s.iterate(s.dataKey(lo), s.dataKey(hi), reverse)
}

func (s *ttlStore[K, V]) Prefix(prefix K) (Iterator[K, V], error) {
	p, err := s.keyBytes(prefix)
	if err != nil {
		return nil, err
	}
	dp := s.dataKey(p)
	return s.iterate(dp, PrefixEnd(dp), false)
}

func (s *ttlStore[K, V]) All() (Iterator[K, V], error) {
	return s.iterate([]byte{ttlData}, []byte{ttlData + 1}, false)
}

// ApproximateCount counts the entries (expired ones not yet deleted
// included) with one pass over them.
func (s *ttlStore[K, V]) ApproximateCount() (int64, error) {
	it, err := s.e.Iterate([]byte{ttlData}, []byte{ttlData + 1}, false)
	if err != nil {
		return 0, fmt.Errorf("store: %s: count: %w", s.name, err)
	}
	defer it.Close()
	var n int64
	for it.Next() {
		n++
	}
	return n, it.Err()
}

func (s *ttlStore[K, V]) iterate(lo, hi []byte, reverse bool) (Iterator[K, V], error) {
	it, err := s.e.Iterate(lo, hi, reverse)
	if err != nil {
		return nil, fmt.Errorf("store: %s: iterate: %w", s.name, err)
	}
	return &ttlIter[K, V]{s: s, it: it}, nil
}

type ttlIter[K, V any] struct {
	s   *ttlStore[K, V]
	it  Iterator[[]byte, []byte]
	k   K
	v   V
	err error
}

func (t *ttlIter[K, V]) Next() bool {
	for t.err == nil && t.it.Next() {
		vb := t.it.Value()
		if !t.s.live(vb) {
			continue
		}
		kb := t.it.Key()[1:]
		k, err := t.s.keys.Deserialize(t.s.topic, kb)
		if err != nil {
			t.err = fmt.Errorf("store: %s: deserialize key %x: %w", t.s.name, kb, err)
			return false
		}
		v, err := t.s.values.Deserialize(t.s.topic, vb[8:])
		if err != nil {
			t.err = fmt.Errorf("store: %s: deserialize value of key %x: %w", t.s.name, kb, err)
			return false
		}
		t.k, t.v = k, v
		return true
	}
	return false
}

func (t *ttlIter[K, V]) Key() K   { return t.k }
func (t *ttlIter[K, V]) Value() V { return t.v }
func (t *ttlIter[K, V]) Err() error {
	if t.err != nil {
		return t.err
	}
	return t.it.Err()
}
func (t *ttlIter[K, V]) Close() error { return t.it.Close() }
