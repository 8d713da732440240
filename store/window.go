package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/brookstream/brook/serde"
)

// Window keys.
//
// A window store's changelog key is the window key: the serialized record
// key and the window start,
//
//	keyLen uint32 BE | key | start int64 ms, sign bit flipped, BE
//
// Flipping the sign bit makes the unsigned byte order of starts equal to
// their numeric order, negative times (before 1970) included. Inside the
// engine each window key is prefixed with its segment number (encoded the
// same way), so that a segment is one contiguous key range that can be
// dropped as a whole, and the windows of one key in one segment are one
// contiguous range in start order.

const windowKeyOverhead = 4 + 8

// ErrBadWindowKey is wrapped by DecodeWindowKey's errors.
var ErrBadWindowKey = errors.New("store: malformed window key")

// EncodeWindowKey encodes a serialized key and a window start (Unix
// milliseconds) as a window key.
func EncodeWindowKey(key []byte, startMs int64) []byte {
	return appendWindowKey(make([]byte, 0, windowKeyOverhead+len(key)), key, startMs)
}

func appendWindowKey(dst, key []byte, startMs int64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(key)))
	dst = append(dst, key...)
	return appendTime(dst, startMs)
}

func appendTime(dst []byte, ms int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(ms)^(1<<63))
}

func readTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// DecodeWindowKey splits a window key into the serialized key (a sub-slice
// of b) and the window start in Unix milliseconds. It never panics; bytes
// that are not a window key give an error wrapping ErrBadWindowKey.
func DecodeWindowKey(b []byte) (key []byte, startMs int64, err error) {
	if len(b) < windowKeyOverhead {
		return nil, 0, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadWindowKey, len(b), windowKeyOverhead)
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) != uint64(len(b)-windowKeyOverhead) {
		return nil, 0, fmt.Errorf("%w: key length %d does not fit %d bytes", ErrBadWindowKey, n, len(b))
	}
	return b[4 : 4+n], readTime(b[4+n:]), nil
}

// WindowOptions configures a window store.
type WindowOptions struct {
	// Retention is how long windows are kept, measured from their start
	// against the store's observed stream time: a window with start s is
	// expired once observed time >= s + Retention. Required.
	Retention time.Duration
	// SegmentInterval is the width of a segment, the unit in which
	// expired windows are dropped. Default max(Retention/2, 1 minute).
	// Changing it needs no wipe: the changelog does not depend on it.
	SegmentInterval time.Duration
	// Size is the width of the store's windows when they all have one
	// (tumbling and hopping windows): interactive queries (package query)
	// report a window's end as its start plus Size. 0, the default, says
	// that the windows have no one width; queries then report no end. At
	// most Retention (a window must be kept at least until it ends).
	// The store itself does not use it.
	Size time.Duration
}

// Validate reports options that cannot work.
func (o WindowOptions) Validate() error {
	if o.Retention < time.Millisecond {
		return fmt.Errorf("store: WindowOptions.Retention %v must be at least 1ms", o.Retention)
	}
	if o.SegmentInterval != 0 && o.SegmentInterval < time.Millisecond {
		return fmt.Errorf("store: WindowOptions.SegmentInterval %v must be at least 1ms", o.SegmentInterval)
	}
	if o.Size != 0 && o.Size < time.Millisecond {
		return fmt.Errorf("store: WindowOptions.Size %v must be 0 (no one width) or at least 1ms", o.Size)
	}
	if o.Size > o.Retention {
		return fmt.Errorf("store: WindowOptions.Size %v is longer than Retention %v: windows would expire before they end", o.Size, o.Retention)
	}
	return nil
}

func (o WindowOptions) intervalMs() int64 {
	if o.SegmentInterval > 0 {
		return o.SegmentInterval.Milliseconds()
	}
	return max(o.Retention.Milliseconds()/2, time.Minute.Milliseconds())
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// segmentKey returns the engine key of a window key.
func segmentKey(intervalMs int64, windowKey []byte, startMs int64) []byte {
	out := make([]byte, 0, 8+len(windowKey))
	out = appendTime(out, floorDiv(startMs, intervalMs))
	return append(out, windowKey...)
}

// WindowStoreApply returns the RestoreConfig.Apply of a window store with
// these options: it files each changelog record under its segment.
func WindowStoreApply(o WindowOptions) func(b Batch, key, value []byte) error {
	iv := o.intervalMs()
	return func(b Batch, key, value []byte) error {
		_, start, err := DecodeWindowKey(key)
		if err != nil {
			return err
		}
		ek := segmentKey(iv, key, start)
		if value == nil {
			b.Delete(ek)
		} else {
			b.Put(ek, value)
		}
		return nil
	}
}

// Windowed is a record key with the start of its window.
type Windowed[K any] struct {
	Key   K
	Start time.Time
}

// WindowStore keeps values per key and window start, in time segments, and
// drops whole segments once all their windows are past retention. Window
// starts have millisecond precision. Writes of a logged store go to its
// changelog with the window key (see EncodeWindowKey); dropping segments
// writes nothing: give the changelog topic a time retention (cleanup
// policy compact,delete) so that Kafka drops old windows too.
type WindowStore[K, V any] interface {
	// Name is the store's name in the topology.
	Name() string
	// Put stores value for key's window starting at start, and advances
	// the observed stream time to start if it is later. A window that is
	// already expired is dropped without error. A value serialized to nil
	// deletes the window.
	Put(key K, start time.Time, value V) error
	// Delete removes key's window starting at start.
	Delete(key K, start time.Time) error
	// Fetch returns key's window starting at start, unless expired.
	Fetch(key K, start time.Time) (V, bool, error)
	// FetchRange iterates key's windows whose start is in [from, to]
	// (both inclusive), in start order, leaving out expired windows. The
	// iterator yields window start and value.
	FetchRange(key K, from, to time.Time) (Iterator[time.Time, V], error)
	// FetchAll iterates every unexpired window whose start is in
	// [from, to], ordered by segment, then by the length of the
	// serialized key, then by the serialized key, then by start.
	FetchAll(from, to time.Time) (Iterator[Windowed[K], V], error)
	// AdvanceTime raises the observed stream time (it never goes back)
	// and drops the segments that have expired.
	AdvanceTime(streamTime time.Time) error
	// ObservedTime is the observed stream time: the latest of the window
	// starts put and the times passed to AdvanceTime.
	ObservedTime() time.Time
}

// NewWindowStore returns a window store over engine e (which the caller
// owns), restored or empty. It reads the engine's newest segment to learn
// the observed stream time, and drops expired segments.
func NewWindowStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], wo WindowOptions, opts ...Option) (WindowStore[K, V], error) {
	if err := wo.Validate(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	s := &windowStore[K, V]{name: name, e: e, keys: keys, values: values,
		retention: wo.Retention.Milliseconds(), interval: wo.intervalMs()}
	s.observed.Store(math.MinInt64)
	for _, o := range opts {
		o(&s.cfg)
	}
	s.topic = s.cfg.changelogTopic
	if s.topic == "" {
		s.topic = name
	}
	if err := s.loadObserved(); err != nil {
		return nil, err
	}
	if err := s.dropExpired(); err != nil {
		return nil, err
	}
	return s, nil
}

type windowStore[K, V any] struct {
	name      string
	e         Engine
	keys      serde.Serde[K]
	values    serde.Serde[V]
	cfg       storeConfig
	topic     string
	retention int64 // ms
	interval  int64 // ms
	// observed is the observed stream time in ms, MinInt64 when nothing
	// was seen. Only the writer changes it, but interactive queries read
	// it from other goroutines.
	observed atomic.Int64
	// droppedThrough is the last segment dropExpired has deleted (every
	// segment up to it is gone; dropped says whether there was one). It
	// lets dropExpired skip the engine while no further segment has
	// expired, and start after the dropped ones when one has: a scan
	// from the first key would step over the deletion markers of every
	// window dropped so far (LevelDB keeps them until compaction), on
	// every record that advances stream time. Nothing live lands in a
	// dropped segment again: Put drops expired windows, and a restore
	// runs before the store is opened. Only the writer uses them.
	droppedThrough int64
	dropped        bool
}

func (s *windowStore[K, V]) Name() string { return s.name }

func (s *windowStore[K, V]) ObservedTime() time.Time {
	obs := s.observed.Load()
	if obs == math.MinInt64 {
		return time.Time{}
	}
	return time.UnixMilli(obs)
}

// expiredBefore returns the smallest unexpired start.
func (s *windowStore[K, V]) expiredBefore() int64 { return s.expiredAt(s.observed.Load()) }

// expiredAt returns the smallest unexpired start at observed time obs.
func (s *windowStore[K, V]) expiredAt(obs int64) int64 {
	if obs == math.MinInt64 {
		return math.MinInt64
	}
	if obs < math.MinInt64+s.retention {
		return math.MinInt64
	}
	return obs - s.retention + 1
}

// loadObserved finds the latest window start in the newest segment.
func (s *windowStore[K, V]) loadObserved() error {
	it, err := s.e.Iterate(nil, nil, true)
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.name, err)
	}
	var seg []byte
	if it.Next() {
		seg = append([]byte(nil), it.Key()[:min(8, len(it.Key()))]...)
	}
	err = errors.Join(it.Err(), it.Close())
	if err != nil || len(seg) < 8 {
		return err
	}
	it, err = s.e.Iterate(seg, PrefixEnd(seg), false)
	if err != nil {
		return fmt.Errorf("store: %s: %w", s.name, err)
	}
	defer it.Close()
	for it.Next() {
		if len(it.Key()) < 8 {
			continue
		}
		if _, start, derr := DecodeWindowKey(it.Key()[8:]); derr == nil && start > s.observed.Load() {
			s.observed.Store(start)
		}
	}
	return it.Err()
}

func (s *windowStore[K, V]) AdvanceTime(t time.Time) error {
	ms := t.UnixMilli()
	if ms <= s.observed.Load() {
		return nil
	}
	s.observed.Store(ms)
	return s.dropExpired()
}

// dropExpired deletes every segment whose windows have all expired.
func (s *windowStore[K, V]) dropExpired() error {
	cut := s.expiredBefore()
	if cut == math.MinInt64 {
		return nil
	}
	lastExpiredSeg := floorDiv(cut, s.interval) - 1 // segments <= this are wholly expired
	var lo []byte
	if s.dropped {
		if lastExpiredSeg <= s.droppedThrough {
			return nil
		}
		lo = appendTime(nil, s.droppedThrough+1)
	}
	hi := appendTime(nil, lastExpiredSeg+1)
	it, err := s.e.Iterate(lo, hi, false)
	if err != nil {
		return fmt.Errorf("store: %s: drop expired segments: %w", s.name, err)
	}
	defer it.Close()
	b := s.e.NewBatch()
	for it.Next() {
		b.Delete(it.Key())
		if b.Len() >= 10_000 {
			if err := b.Write(); err != nil {
				return fmt.Errorf("store: %s: drop expired segments: %w", s.name, err)
			}
			b.Reset()
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("store: %s: drop expired segments: %w", s.name, err)
	}
	if b.Len() > 0 {
		if err := b.Write(); err != nil {
			return fmt.Errorf("store: %s: drop expired segments: %w", s.name, err)
		}
	}
	s.droppedThrough, s.dropped = lastExpiredSeg, true
	return nil
}

func (s *windowStore[K, V]) keyBytes(k K) ([]byte, error) {
	b, err := s.keys.Serialize(s.topic, k)
	if err != nil {
		return nil, fmt.Errorf("store: %s: serialize key: %w", s.name, err)
	}
	return b, nil
}

func (s *windowStore[K, V]) Put(key K, start time.Time, value V) error {
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	vb, err := s.values.Serialize(s.topic, value)
	if err != nil {
		return fmt.Errorf("store: %s: serialize value: %w", s.name, err)
	}
	ms := start.UnixMilli()
	if ms > s.observed.Load() {
		s.observed.Store(ms)
		if err := s.dropExpired(); err != nil {
			return err
		}
	}
	if ms < s.expiredBefore() {
		return nil // expired on arrival
	}
	return s.write(kb, ms, vb)
}

func (s *windowStore[K, V]) Delete(key K, start time.Time) error {
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	return s.write(kb, start.UnixMilli(), nil)
}

func (s *windowStore[K, V]) write(kb []byte, ms int64, vb []byte) error {
	wk := EncodeWindowKey(kb, ms)
	ek := segmentKey(s.interval, wk, ms)
	if vb == nil {
		if err := s.e.Delete(ek); err != nil {
			return fmt.Errorf("store: %s: delete: %w", s.name, err)
		}
	} else if err := s.e.Put(ek, vb); err != nil {
		return fmt.Errorf("store: %s: put: %w", s.name, err)
	}
	return logWrite(s.name, &s.cfg, wk, vb)
}

func (s *windowStore[K, V]) Fetch(key K, start time.Time) (V, bool, error) {
	var zero V
	kb, err := s.keyBytes(key)
	if err != nil {
		return zero, false, err
	}
	ms := start.UnixMilli()
	if ms < s.expiredBefore() {
		return zero, false, nil
	}
	vb, found, err := s.e.Get(segmentKey(s.interval, EncodeWindowKey(kb, ms), ms))
	if err != nil || !found {
		if err != nil {
			err = fmt.Errorf("store: %s: get: %w", s.name, err)
		}
		return zero, false, err
	}
	v, err := s.values.Deserialize(s.topic, vb)
	if err != nil {
		return zero, false, fmt.Errorf("store: %s: deserialize value: %w", s.name, err)
	}
	return v, true, nil
}

// clamp narrows [from, to] to the unexpired, observed part of time.
func (s *windowStore[K, V]) clamp(from, to time.Time) (lo, hi int64, empty bool) {
	obs := s.observed.Load()
	lo, hi = max(from.UnixMilli(), s.expiredAt(obs)), min(to.UnixMilli(), obs)
	return lo, hi, lo > hi || obs == math.MinInt64
}

func (s *windowStore[K, V]) FetchRange(key K, from, to time.Time) (Iterator[time.Time, V], error) {
	kb, err := s.keyBytes(key)
	if err != nil {
		return nil, err
	}
	lo, hi, empty := s.clamp(from, to)
	it := &segIter[K, V, time.Time]{s: s, lo: lo, hi: hi, seg: floorDiv(lo, s.interval), lastSeg: floorDiv(hi, s.interval), done: empty}
	// A short range (a join window, a window aggregation's few
	// windows) reads its segments directly: probing each for keys would
	// open a second engine iterator per segment, which costs as much as
	// reading the key's windows in it.
	it.probe = it.lastSeg-it.seg >= directSegments
	it.bounds = func(seg int64) ([]byte, []byte) {
		segLo, segHi := max(lo, seg*s.interval), min(hi, seg*s.interval+s.interval-1)
		return segmentKey(s.interval, EncodeWindowKey(kb, segLo), segLo),
			append(segmentKey(s.interval, EncodeWindowKey(kb, segHi), segHi), 0)
	}
	it.decode = func(_ []byte, start int64) (time.Time, error) { return time.UnixMilli(start), nil }
	return it, nil
}

func (s *windowStore[K, V]) FetchAll(from, to time.Time) (Iterator[Windowed[K], V], error) {
	lo, hi, empty := s.clamp(from, to)
	it := &segIter[K, V, Windowed[K]]{s: s, lo: lo, hi: hi, seg: floorDiv(lo, s.interval), lastSeg: floorDiv(hi, s.interval), done: empty, probe: true}
	it.bounds = func(seg int64) ([]byte, []byte) {
		return appendTime(nil, seg), appendTime(nil, seg+1)
	}
	it.decode = func(kb []byte, start int64) (Windowed[K], error) {
		k, err := s.keys.Deserialize(s.topic, kb)
		if err != nil {
			return Windowed[K]{}, fmt.Errorf("store: %s: deserialize key %x: %w", s.name, kb, err)
		}
		return Windowed[K]{Key: k, Start: time.UnixMilli(start)}, nil
	}
	return it, nil
}

// directSegments is how many segments a FetchRange reads one by one
// without probing for the next one that holds keys (segIter.probe).
const directSegments = 4

// segIter walks the segments from seg to lastSeg, one engine iterator at a
// time, keeping windows whose start is in [lo, hi].
type segIter[K, V, OK any] struct {
	s            *windowStore[K, V]
	lo, hi       int64
	seg, lastSeg int64
	// probe skips segment numbers that hold no keys with one engine
	// probe per segment read (nextSegment): worth it when the range
	// spans more segment numbers than exist, not for a few.
	probe  bool
	bounds func(seg int64) (lo, hi []byte)
	decode func(key []byte, start int64) (OK, error)
	cur    Iterator[[]byte, []byte]
	k      OK
	v      V
	err    error
	done   bool
}

// nextSegment returns the first segment >= seg that holds any key, or
// false when there is none up to lastSeg: time ranges can span far more
// segment numbers than exist.
func (it *segIter[K, V, OK]) nextSegment(seg int64) (int64, bool, error) {
	probe, err := it.s.e.Iterate(appendTime(nil, seg), appendTime(nil, it.lastSeg+1), false)
	if err != nil {
		return 0, false, err
	}
	defer probe.Close()
	if !probe.Next() {
		return 0, false, probe.Err()
	}
	if len(probe.Key()) < 8 {
		return 0, false, fmt.Errorf("%w: engine key %x has no segment", ErrBadWindowKey, probe.Key())
	}
	return readTime(probe.Key()), true, nil
}

func (it *segIter[K, V, OK]) Next() bool {
	for !it.done {
		if it.cur == nil {
			if it.seg > it.lastSeg {
				it.done = true
				return false
			}
			if it.probe {
				seg, ok, err := it.nextSegment(it.seg)
				if err != nil || !ok {
					if err != nil {
						it.err = fmt.Errorf("store: %s: iterate: %w", it.s.name, err)
					}
					it.done = true
					return false
				}
				it.seg = seg
			}
			lo, hi := it.bounds(it.seg)
			cur, err := it.s.e.Iterate(lo, hi, false)
			if err != nil {
				it.err, it.done = fmt.Errorf("store: %s: iterate: %w", it.s.name, err), true
				return false
			}
			it.cur = cur
		}
		if !it.cur.Next() {
			err := errors.Join(it.cur.Err(), it.cur.Close())
			it.cur = nil
			it.seg++
			if err != nil {
				it.err, it.done = err, true
				return false
			}
			continue
		}
		ek := it.cur.Key()
		if len(ek) < 8 {
			it.err, it.done = fmt.Errorf("store: %s: %w: engine key %x has no segment", it.s.name, ErrBadWindowKey, ek), true
			return false
		}
		kb, start, err := DecodeWindowKey(ek[8:])
		if err != nil {
			it.err, it.done = fmt.Errorf("store: %s: %w", it.s.name, err), true
			return false
		}
		if start < it.lo || start > it.hi {
			continue
		}
		k, err := it.decode(kb, start)
		if err != nil {
			it.err, it.done = err, true
			return false
		}
		v, err := it.s.values.Deserialize(it.s.topic, it.cur.Value())
		if err != nil {
			it.err, it.done = fmt.Errorf("store: %s: deserialize value: %w", it.s.name, err), true
			return false
		}
		it.k, it.v = k, v
		return true
	}
	return false
}

func (it *segIter[K, V, OK]) Key() OK    { return it.k }
func (it *segIter[K, V, OK]) Value() V   { return it.v }
func (it *segIter[K, V, OK]) Err() error { return it.err }

func (it *segIter[K, V, OK]) Close() error {
	it.done = true
	if it.cur != nil {
		err := it.cur.Close()
		it.cur = nil
		return err
	}
	return nil
}
