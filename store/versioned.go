package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brookstream/brook/serde"
)

// Versioned store layout. In the engine:
//
//	'v' | len(key) (uint32) | key | validFrom (8 bytes, appendTime) -> kind (1 byte: 0 value, 1 tombstone) | value
//	'x' | expiry (8 bytes) | len(key) | key | validFrom              -> 0 (the history index)
//	'm'                                                               -> observed stream time (8 bytes)
//
// A key's versions sort by validFrom, so the version valid at t is the
// last one at or before t: one reverse seek. A version's expiry is when
// it stops mattering to lookups within the history retention: a value's
// validTo (the next version's validFrom; the latest value never
// expires), a tombstone's own validFrom. The index holds exactly one
// entry per version that has an expiry (entries are moved when a version
// inserted out of order changes a neighbour's validTo), so dropping old
// history reads only the index entries that are due.
//
// The changelog holds the engine writes themselves (engine key, engine
// value; a deletion is a tombstone), so compaction keeps each version,
// index entry and the observed time as they last were, and a restore
// files records as they are: the default Apply.
const (
	verData     = 'v'
	verIndex    = 'x'
	verMeta     = 'm'
	verValue    = 0
	verDeletion = 1
)

// VersionedOptions configures a versioned key-value store.
type VersionedOptions struct {
	// HistoryRetention is how far behind the observed stream time (the
	// largest validFrom put so far) lookups by time are answered: GetAsOf
	// for an older time finds nothing, and Put older than that is not
	// stored. Older history is dropped. Required.
	HistoryRetention time.Duration
}

// Validate reports options that cannot work.
func (o VersionedOptions) Validate() error {
	if o.HistoryRetention < time.Millisecond {
		return fmt.Errorf("store: VersionedOptions.HistoryRetention %v must be at least 1ms", o.HistoryRetention)
	}
	return nil
}

// PutResult says what a put or delete of a versioned store did.
type PutResult int

const (
	// PutLatest: the version is the key's latest (its current value).
	PutLatest PutResult = iota + 1
	// PutHistory: the version went into the key's history, before a
	// later version (an out-of-order put).
	PutHistory
	// PutExpired: the version's validFrom is older than the observed
	// stream time minus the history retention, so it was not stored
	// (Kafka Streams' PUT_RETURN_CODE_NOT_PUT).
	PutExpired
)

// String names the result.
func (r PutResult) String() string {
	switch r {
	case PutLatest:
		return "latest"
	case PutHistory:
		return "history"
	case PutExpired:
		return "expired"
	}
	return fmt.Sprintf("PutResult(%d)", int(r))
}

// VersionedRecord is one version of a key: its value and the time range
// it is valid in, [ValidFrom, ValidTo).
type VersionedRecord[V any] struct {
	Value     V
	ValidFrom time.Time
	// ValidTo is when the next version replaced it; zero while it is the
	// latest.
	ValidTo time.Time
}

// VersionedKeyValueStore keeps, per key, the history of its values for a
// retention period (Kafka Streams' VersionedKeyValueStore, KIP-889): each
// Put is a version valid from its timestamp until the key's next version.
// Puts may come out of order: a version is filed in the history by its
// timestamp, and the latest by timestamp is the current value. A deletion
// is a version too (a tombstone at a time). The observed stream time is
// the largest timestamp put so far; history older than observed time
// minus the retention is dropped through an index of due versions (no
// scan). Time has millisecond precision.
type VersionedKeyValueStore[K, V any] interface {
	// Name is the store's name in the topology.
	Name() string
	// Put stores value as the key's version valid from validFrom (a value
	// that serializes to nil is a deletion). A version at the same time
	// replaces it.
	Put(key K, value V, validFrom time.Time) (PutResult, error)
	// Delete stores a tombstone for key valid from at.
	Delete(key K, at time.Time) (PutResult, error)
	// Get returns the key's latest version; found is false when there is
	// none or it is a tombstone.
	Get(key K) (rec VersionedRecord[V], found bool, err error)
	// GetAsOf returns the version valid at asOf; found is false when the
	// key had no value then (before its first version, under a
	// tombstone) or asOf is older than the observed stream time minus the
	// history retention.
	GetAsOf(key K, asOf time.Time) (rec VersionedRecord[V], found bool, err error)
	// ObservedTime is the observed stream time (zero before any put).
	ObservedTime() time.Time
	// HistoryRetention is the store's history retention.
	HistoryRetention() time.Duration
}

// NewVersionedKeyValueStore returns a versioned store over engine e
// (which the caller owns), restored or empty.
func NewVersionedKeyValueStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], o VersionedOptions, opts ...Option) (VersionedKeyValueStore[K, V], error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	s := &versionedStore[K, V]{name: name, e: e, keys: keys, values: values, retention: o.HistoryRetention.Milliseconds(), observed: math.MinInt64}
	for _, opt := range opts {
		opt(&s.cfg)
	}
	s.topic = s.cfg.serdeTopic
	if s.topic == "" {
		s.topic = s.cfg.changelogTopic
	}
	if s.topic == "" {
		s.topic = name
	}
	m, found, err := e.Get([]byte{verMeta})
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	if found {
		if len(m) != 8 {
			return nil, fmt.Errorf("store: %s: observed time of %d bytes", name, len(m))
		}
		s.observed = readTime(m)
	}
	return s, nil
}

type versionedStore[K, V any] struct {
	name      string
	e         Engine
	keys      serde.Serde[K]
	values    serde.Serde[V]
	cfg       storeConfig
	topic     string
	retention int64 // ms
	observed  int64 // ms, MinInt64 before any put
}

func (s *versionedStore[K, V]) Name() string { return s.name }
func (s *versionedStore[K, V]) HistoryRetention() time.Duration {
	return time.Duration(s.retention) * time.Millisecond
}

func (s *versionedStore[K, V]) ObservedTime() time.Time {
	if s.observed == math.MinInt64 {
		return time.Time{}
	}
	return time.UnixMilli(s.observed)
}

// cutoff is the oldest time lookups answer (MinInt64 before any put).
func (s *versionedStore[K, V]) cutoff() int64 {
	if s.observed == math.MinInt64 || s.observed < math.MinInt64+s.retention {
		return math.MinInt64
	}
	return s.observed - s.retention
}

func verPrefix(kb []byte) []byte {
	p := make([]byte, 0, 5+len(kb)+8)
	p = append(p, verData)
	p = binary.BigEndian.AppendUint32(p, uint32(len(kb)))
	return append(p, kb...)
}

func verKey(prefix []byte, ms int64) []byte {
	return appendTime(append(make([]byte, 0, len(prefix)+8), prefix...), ms)
}

// indexKey is the history index entry of the version (kb, validFrom)
// expiring at expiry.
func indexKey(expiry int64, kb []byte, validFrom int64) []byte {
	k := appendTime(append(make([]byte, 0, 1+8+4+len(kb)+8), verIndex), expiry)
	k = binary.BigEndian.AppendUint32(k, uint32(len(kb)))
	k = append(k, kb...)
	return appendTime(k, validFrom)
}

// version is one stored version as read from the engine.
type version struct {
	validFrom int64
	tombstone bool
	value     []byte
}

// expiry returns a version's expiry given the next version's validFrom
// (hasNext false: none), and whether it has one.
func (v version) expiry(next int64, hasNext bool) (int64, bool) {
	if v.tombstone {
		return v.validFrom, true
	}
	return next, hasNext
}

func (s *versionedStore[K, V]) decode(prefix, k, v []byte) (version, error) {
	if len(k) != len(prefix)+8 || len(v) < 1 || v[0] > verDeletion {
		return version{}, fmt.Errorf("store: %s: malformed version record %x", s.name, k)
	}
	return version{validFrom: readTime(k[len(prefix):]), tombstone: v[0] == verDeletion, value: v[1:]}, nil
}

// seek returns the first version of the key in [lo, hi) of validFrom
// (descending when reverse), if any.
func (s *versionedStore[K, V]) seek(prefix []byte, lo, hi int64, reverse bool) (version, bool, error) {
	lk := verKey(prefix, lo)
	hk := PrefixEnd(prefix)
	if hi != math.MaxInt64 {
		hk = verKey(prefix, hi)
	}
	it, err := s.e.Iterate(lk, hk, reverse)
	if err != nil {
		return version{}, false, fmt.Errorf("store: %s: %w", s.name, err)
	}
	defer it.Close()
	if !it.Next() {
		return version{}, false, it.Err()
	}
	v, err := s.decode(prefix, it.Key(), it.Value())
	return v, err == nil, err
}

func (s *versionedStore[K, V]) keyBytes(k K) ([]byte, error) {
	b, err := s.keys.Serialize(s.topic, k)
	if err != nil {
		return nil, fmt.Errorf("store: %s: serialize key: %w", s.name, err)
	}
	return b, nil
}

func (s *versionedStore[K, V]) Put(key K, value V, validFrom time.Time) (PutResult, error) {
	kb, err := s.keyBytes(key)
	if err != nil {
		return 0, err
	}
	vb, err := s.values.Serialize(s.topic, value)
	if err != nil {
		return 0, fmt.Errorf("store: %s: serialize value: %w", s.name, err)
	}
	if vb == nil {
		return s.put(kb, version{validFrom: validFrom.UnixMilli(), tombstone: true})
	}
	return s.put(kb, version{validFrom: validFrom.UnixMilli(), value: vb})
}

func (s *versionedStore[K, V]) Delete(key K, at time.Time) (PutResult, error) {
	kb, err := s.keyBytes(key)
	if err != nil {
		return 0, err
	}
	return s.put(kb, version{validFrom: at.UnixMilli(), tombstone: true})
}

// indexValue is the value of an index entry: one byte, so that no
// changelog record of the store has an empty value.
var indexValue = []byte{0}

// write is one engine write (v nil: a deletion), logged as it is.
type write struct{ k, v []byte }

func (s *versionedStore[K, V]) put(kb []byte, nv version) (PutResult, error) {
	ms := nv.validFrom
	if ms == math.MinInt64 || ms == math.MaxInt64 {
		return 0, fmt.Errorf("store: %s: version time %d ms out of range", s.name, ms)
	}
	if ms < s.cutoff() {
		return PutExpired, nil
	}
	prefix := verPrefix(kb)
	// prev: the version at or before ms; next: the first after it.
	prev, hasPrev, err := s.seek(prefix, math.MinInt64, ms+1, true)
	if err != nil {
		return 0, err
	}
	next, hasNext, err := s.seek(prefix, ms+1, math.MaxInt64, false)
	if err != nil {
		return 0, err
	}
	var ws []write
	del := func(k []byte) { ws = append(ws, write{k: k}) }
	put := func(k, v []byte) { ws = append(ws, write{k: k, v: v}) }
	if hasPrev && prev.validFrom == ms {
		// Replaced: its index entry goes.
		if exp, ok := prev.expiry(next.validFrom, hasNext); ok {
			del(indexKey(exp, kb, ms))
		}
	} else if hasPrev && !prev.tombstone {
		// The previous value now ends at ms instead of at next.
		if hasNext {
			del(indexKey(next.validFrom, kb, prev.validFrom))
		}
		put(indexKey(ms, kb, prev.validFrom), indexValue)
	}
	kind := byte(verValue)
	if nv.tombstone {
		kind = verDeletion
	}
	put(verKey(prefix, ms), append([]byte{kind}, nv.value...))
	if exp, ok := nv.expiry(next.validFrom, hasNext); ok {
		put(indexKey(exp, kb, ms), indexValue)
	}
	advanced := ms > s.observed
	if advanced {
		put([]byte{verMeta}, appendTime(nil, ms))
	}
	if err := s.apply(ws); err != nil {
		return 0, err
	}
	if advanced {
		s.observed = ms
		if err := s.expire(); err != nil {
			return 0, err
		}
	}
	if hasNext {
		return PutHistory, nil
	}
	return PutLatest, nil
}

// apply writes ws to the engine in one batch, then to the changelog.
func (s *versionedStore[K, V]) apply(ws []write) error {
	b := s.e.NewBatch()
	for _, w := range ws {
		if w.v == nil {
			b.Delete(w.k)
		} else {
			b.Put(w.k, w.v)
		}
	}
	if err := b.Write(); err != nil {
		return fmt.Errorf("store: %s: write: %w", s.name, err)
	}
	for _, w := range ws {
		if err := logWrite(s.name, &s.cfg, w.k, w.v); err != nil {
			return err
		}
	}
	return nil
}

// expire drops the versions whose expiry is at or before the cutoff:
// they matter to no lookup the store still answers.
func (s *versionedStore[K, V]) expire() error {
	cut := s.cutoff()
	if cut == math.MinInt64 {
		return nil
	}
	it, err := s.e.Iterate([]byte{verIndex}, appendTime([]byte{verIndex}, cut+1), false)
	if err != nil {
		return fmt.Errorf("store: %s: expire: %w", s.name, err)
	}
	var ws []write
	for it.Next() {
		ik := it.Key()
		if len(ik) < 1+8+4+8 {
			continue
		}
		n := int(binary.BigEndian.Uint32(ik[9:]))
		if len(ik) != 1+8+4+n+8 {
			continue
		}
		kb := ik[13 : 13+n]
		ws = append(ws, write{k: append([]byte(nil), ik...)},
			write{k: verKey(verPrefix(kb), readTime(ik[13+n:]))})
	}
	err = errors.Join(it.Err(), it.Close())
	if err != nil {
		return fmt.Errorf("store: %s: expire: %w", s.name, err)
	}
	for len(ws) > 0 {
		n := min(len(ws), 10_000)
		if err := s.apply(ws[:n]); err != nil {
			return err
		}
		ws = ws[n:]
	}
	return nil
}

func (s *versionedStore[K, V]) record(kb []byte, v version, next int64, hasNext bool) (VersionedRecord[V], error) {
	val, err := s.values.Deserialize(s.topic, v.value)
	if err != nil {
		return VersionedRecord[V]{}, fmt.Errorf("store: %s: deserialize value of key %x: %w", s.name, kb, err)
	}
	rec := VersionedRecord[V]{Value: val, ValidFrom: time.UnixMilli(v.validFrom)}
	if hasNext {
		rec.ValidTo = time.UnixMilli(next)
	}
	return rec, nil
}

func (s *versionedStore[K, V]) Get(key K) (VersionedRecord[V], bool, error) {
	kb, err := s.keyBytes(key)
	if err != nil {
		return VersionedRecord[V]{}, false, err
	}
	v, found, err := s.seek(verPrefix(kb), math.MinInt64, math.MaxInt64, true)
	if err != nil || !found || v.tombstone {
		return VersionedRecord[V]{}, false, err
	}
	rec, err := s.record(kb, v, 0, false)
	return rec, err == nil, err
}

func (s *versionedStore[K, V]) GetAsOf(key K, asOf time.Time) (VersionedRecord[V], bool, error) {
	ms := asOf.UnixMilli()
	if ms < s.cutoff() || ms == math.MaxInt64 {
		return VersionedRecord[V]{}, false, nil
	}
	kb, err := s.keyBytes(key)
	if err != nil {
		return VersionedRecord[V]{}, false, err
	}
	prefix := verPrefix(kb)
	v, found, err := s.seek(prefix, math.MinInt64, ms+1, true)
	if err != nil || !found || v.tombstone {
		return VersionedRecord[V]{}, false, err
	}
	next, hasNext, err := s.seek(prefix, ms+1, math.MaxInt64, false)
	if err != nil {
		return VersionedRecord[V]{}, false, err
	}
	rec, err := s.record(kb, v, next.validFrom, hasNext)
	return rec, err == nil, err
}
