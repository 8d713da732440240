package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/brookstream/brook/serde"
)

// Session keys.
//
// A session store's changelog key is the session key: the serialized
// record key, then the session's end and start,
//
//	keyLen uint32 BE | key | end int64 ms | start int64 ms
//
// times encoded as for window keys (big-endian, sign bit flipped, so byte
// order is numeric order). Inside the engine each session key is prefixed
// with the segment number of its end, so that expired sessions go a
// segment at a time, and the sessions of one key in one segment are one
// contiguous range in end order.

const sessionKeyOverhead = 4 + 8 + 8

// ErrBadSessionKey is wrapped by DecodeSessionKey's errors.
var ErrBadSessionKey = errors.New("store: malformed session key")

// EncodeSessionKey encodes a serialized key and a session's bounds (Unix
// milliseconds; end exclusive) as a session key.
func EncodeSessionKey(key []byte, startMs, endMs int64) []byte {
	out := make([]byte, 0, sessionKeyOverhead+len(key))
	out = binary.BigEndian.AppendUint32(out, uint32(len(key)))
	out = append(out, key...)
	out = appendTime(out, endMs)
	return appendTime(out, startMs)
}

// DecodeSessionKey splits a session key into the serialized key (a
// sub-slice of b) and the session's bounds in Unix milliseconds. It never
// panics; bytes that are not a session key give an error wrapping
// ErrBadSessionKey.
func DecodeSessionKey(b []byte) (key []byte, startMs, endMs int64, err error) {
	if len(b) < sessionKeyOverhead {
		return nil, 0, 0, fmt.Errorf("%w: %d bytes, need at least %d", ErrBadSessionKey, len(b), sessionKeyOverhead)
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) != uint64(len(b)-sessionKeyOverhead) {
		return nil, 0, 0, fmt.Errorf("%w: key length %d does not fit %d bytes", ErrBadSessionKey, n, len(b))
	}
	return b[4 : 4+n], readTime(b[4+n+8:]), readTime(b[4+n:]), nil
}

// SessionOptions configures a session store.
type SessionOptions struct {
	// Retention is how long a session is kept after its end, against the
	// store's observed stream time: a session ending at end (exclusive)
	// is expired once observed time >= end + Retention. For a session
	// aggregation it must be at least the inactivity gap plus the grace
	// period. Required.
	Retention time.Duration
	// SegmentInterval is the width of a segment of session ends, the unit
	// in which expired sessions are dropped. Default max(Retention/2,
	// 1 minute). Changing it needs no wipe: the changelog does not depend
	// on it.
	SegmentInterval time.Duration
}

// Validate reports options that cannot work.
func (o SessionOptions) Validate() error {
	return o.window().Validate()
}

// window returns the window options with the same retention and segments
// (a session store shares the window store's segment layout).
func (o SessionOptions) window() WindowOptions {
	return WindowOptions{Retention: o.Retention, SegmentInterval: o.SegmentInterval}
}

// Session is a record key with the bounds of its session: Start is the
// time of its first record, End the time of its last record plus one
// millisecond, so that [Start, End) covers the session as for time
// windows.
type Session[K any] struct {
	Key        K
	Start, End time.Time
}

// SessionStoreApply returns the RestoreConfig.Apply of a session store
// with these options: it files each changelog record under its segment.
func SessionStoreApply(o SessionOptions) func(b Batch, key, value []byte) error {
	iv := o.window().intervalMs()
	return func(b Batch, key, value []byte) error {
		_, _, end, err := DecodeSessionKey(key)
		if err != nil {
			return err
		}
		ek := segmentKey(iv, key, end)
		if value == nil {
			b.Delete(ek)
		} else {
			b.Put(ek, value)
		}
		return nil
	}
}

// SessionStore keeps one value (an aggregate) per key and session, in
// segments of session end times, and drops whole segments once all their
// sessions are past retention, so expiry never scans live sessions.
// Session bounds have millisecond precision. Writes of a logged store go
// to its changelog with the session key (see EncodeSessionKey); dropping
// segments writes nothing: give the changelog topic a time retention
// (cleanup policy compact,delete) so that Kafka drops old sessions too.
type SessionStore[K, V any] interface {
	// Name is the store's name in the topology.
	Name() string
	// Put stores value for key's session [start, end) and advances the
	// observed stream time to end - 1ms (the time of the session's last
	// record) if that is later. A session already expired is dropped
	// without error. end must be after start.
	Put(key K, start, end time.Time, value V) error
	// Remove deletes key's session [start, end).
	Remove(key K, start, end time.Time) error
	// FetchSession returns key's session [start, end), unless expired.
	FetchSession(key K, start, end time.Time) (V, bool, error)
	// FindSessions iterates key's unexpired sessions that intersect the
	// closed interval [from, to]: End > from and Start <= to, in end
	// order. A session aggregation asks for [t - gap, t + gap] to find the
	// sessions a record at time t joins.
	FindSessions(key K, from, to time.Time) (Iterator[Session[K], V], error)
	// AdvanceTime raises the observed stream time (it never goes back)
	// and drops the segments whose sessions have all expired.
	AdvanceTime(streamTime time.Time) error
	// ObservedTime is the observed stream time: the latest of the times
	// passed to AdvanceTime and of the last-record times of the sessions
	// put; the zero time before any.
	ObservedTime() time.Time
}

// NewSessionStore returns a session store over engine e (which the
// caller owns), restored or empty. It reads the engine's newest segment
// to learn the observed stream time, and drops expired segments.
func NewSessionStore[K, V any](name string, e Engine, keys serde.Serde[K], values serde.Serde[V], so SessionOptions, opts ...Option) (SessionStore[K, V], error) {
	if err := so.Validate(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", name, err)
	}
	s := &sessionStore[K, V]{name: name, e: e, keys: keys, values: values,
		retention: so.Retention.Milliseconds(), interval: so.window().intervalMs(), observed: math.MinInt64}
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
	if err := s.loadObserved(); err != nil {
		return nil, err
	}
	if err := s.dropExpired(); err != nil {
		return nil, err
	}
	return s, nil
}

type sessionStore[K, V any] struct {
	name      string
	e         Engine
	keys      serde.Serde[K]
	values    serde.Serde[V]
	cfg       storeConfig
	topic     string
	retention int64 // ms
	interval  int64 // ms
	observed  int64 // ms; MinInt64 when nothing was seen
	// droppedBelow is the segment below which dropExpired has deleted
	// everything (dropped says whether it has run): as for window
	// stores, it scans only when another segment has expired, from
	// droppedBelow, never again over the deletion markers of the
	// sessions it dropped before. Put drops expired sessions, and a
	// restore runs before the store is opened, so nothing live lands
	// below it.
	droppedBelow int64
	dropped      bool
}

func (s *sessionStore[K, V]) Name() string { return s.name }

func (s *sessionStore[K, V]) ObservedTime() time.Time {
	if s.observed == math.MinInt64 {
		return time.Time{}
	}
	return time.UnixMilli(s.observed)
}

// liveFrom returns the smallest session end that is not expired.
func (s *sessionStore[K, V]) liveFrom() int64 {
	if s.observed == math.MinInt64 || s.observed < math.MinInt64+s.retention {
		return math.MinInt64
	}
	return s.observed - s.retention + 1
}

// loadObserved finds the latest session end in the newest segment.
func (s *sessionStore[K, V]) loadObserved() error {
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
		if _, _, end, derr := DecodeSessionKey(it.Key()[8:]); derr == nil && end-1 > s.observed {
			s.observed = end - 1
		}
	}
	return it.Err()
}

func (s *sessionStore[K, V]) AdvanceTime(t time.Time) error { return s.advance(t.UnixMilli()) }

func (s *sessionStore[K, V]) advance(ms int64) error {
	if ms <= s.observed {
		return nil
	}
	s.observed = ms
	return s.dropExpired()
}

// dropExpired deletes every segment whose sessions have all expired; it
// reads only expired entries.
func (s *sessionStore[K, V]) dropExpired() error {
	cut := s.liveFrom()
	if cut == math.MinInt64 {
		return nil
	}
	below := floorDiv(cut, s.interval) // segments below hold only ends < cut
	var lo []byte
	if s.dropped {
		if below <= s.droppedBelow {
			return nil
		}
		lo = appendTime(nil, s.droppedBelow)
	}
	hi := appendTime(nil, below)
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
	s.droppedBelow, s.dropped = below, true
	return nil
}

func (s *sessionStore[K, V]) keyBytes(k K) ([]byte, error) {
	b, err := s.keys.Serialize(s.topic, k)
	if err != nil {
		return nil, fmt.Errorf("store: %s: serialize key: %w", s.name, err)
	}
	return b, nil
}

func checkBounds(name string, start, end int64) error {
	if end <= start {
		return fmt.Errorf("store: %s: session end %d is not after its start %d (end is exclusive)", name, end, start)
	}
	return nil
}

func (s *sessionStore[K, V]) Put(key K, start, end time.Time, value V) error {
	st, en := start.UnixMilli(), end.UnixMilli()
	if err := checkBounds(s.name, st, en); err != nil {
		return err
	}
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	vb, err := s.values.Serialize(s.topic, value)
	if err != nil {
		return fmt.Errorf("store: %s: serialize value: %w", s.name, err)
	}
	if err := s.advance(en - 1); err != nil {
		return err
	}
	if en < s.liveFrom() {
		return nil // expired on arrival
	}
	return s.write(kb, st, en, vb)
}

func (s *sessionStore[K, V]) Remove(key K, start, end time.Time) error {
	st, en := start.UnixMilli(), end.UnixMilli()
	if err := checkBounds(s.name, st, en); err != nil {
		return err
	}
	kb, err := s.keyBytes(key)
	if err != nil {
		return err
	}
	return s.write(kb, st, en, nil)
}

func (s *sessionStore[K, V]) write(kb []byte, st, en int64, vb []byte) error {
	sk := EncodeSessionKey(kb, st, en)
	ek := segmentKey(s.interval, sk, en)
	if vb == nil {
		if err := s.e.Delete(ek); err != nil {
			return fmt.Errorf("store: %s: delete: %w", s.name, err)
		}
	} else if err := s.e.Put(ek, vb); err != nil {
		return fmt.Errorf("store: %s: put: %w", s.name, err)
	}
	return logWrite(s.name, &s.cfg, sk, vb)
}

func (s *sessionStore[K, V]) FetchSession(key K, start, end time.Time) (V, bool, error) {
	var zero V
	st, en := start.UnixMilli(), end.UnixMilli()
	if en < s.liveFrom() {
		return zero, false, nil
	}
	kb, err := s.keyBytes(key)
	if err != nil {
		return zero, false, err
	}
	vb, found, err := s.e.Get(segmentKey(s.interval, EncodeSessionKey(kb, st, en), en))
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

func (s *sessionStore[K, V]) FindSessions(key K, from, to time.Time) (Iterator[Session[K], V], error) {
	kb, err := s.keyBytes(key)
	if err != nil {
		return nil, err
	}
	// End > from, and not expired.
	lo := max(from.UnixMilli(), math.MinInt64+1)
	lo = max(lo+1, s.liveFrom())
	prefix := binary.BigEndian.AppendUint32(nil, uint32(len(kb)))
	prefix = append(prefix, kb...)
	return &sessionIter[K, V]{s: s, key: key, kb: kb, prefix: prefix, lo: lo, to: to.UnixMilli(), seg: floorDiv(lo, s.interval)}, nil
}

// sessionIter walks the segments from seg on, one engine iterator per
// segment that holds any key, over key's sessions with end >= lo; it
// keeps those with start <= to.
type sessionIter[K, V any] struct {
	s      *sessionStore[K, V]
	key    K
	kb     []byte
	prefix []byte
	lo, to int64
	seg    int64
	cur    Iterator[[]byte, []byte]
	k      Session[K]
	v      V
	err    error
	done   bool
}

// nextSegment returns the first segment >= seg that holds any key.
func (it *sessionIter[K, V]) nextSegment() (int64, bool, error) {
	probe, err := it.s.e.Iterate(appendTime(nil, it.seg), nil, false)
	if err != nil {
		return 0, false, err
	}
	defer probe.Close()
	if !probe.Next() {
		return 0, false, probe.Err()
	}
	if len(probe.Key()) < 8 {
		return 0, false, fmt.Errorf("%w: engine key %x has no segment", ErrBadSessionKey, probe.Key())
	}
	return readTime(probe.Key()), true, nil
}

func (it *sessionIter[K, V]) fail(err error) bool {
	it.err, it.done = fmt.Errorf("store: %s: find sessions: %w", it.s.name, err), true
	return false
}

func (it *sessionIter[K, V]) Next() bool {
	for !it.done {
		if it.cur == nil {
			seg, ok, err := it.nextSegment()
			if err != nil {
				return it.fail(err)
			}
			if !ok {
				it.done = true
				return false
			}
			it.seg = seg
			segPrefix := append(appendTime(nil, seg), it.prefix...)
			lo := appendTime(append([]byte(nil), segPrefix...), max(it.lo, seg*it.s.interval))
			cur, err := it.s.e.Iterate(lo, PrefixEnd(segPrefix), false)
			if err != nil {
				return it.fail(err)
			}
			it.cur = cur
		}
		if !it.cur.Next() {
			err := errors.Join(it.cur.Err(), it.cur.Close())
			it.cur = nil
			if err != nil {
				return it.fail(err)
			}
			if it.seg == math.MaxInt64 {
				it.done = true
				return false
			}
			it.seg++
			continue
		}
		ek := it.cur.Key()
		if len(ek) < 8 {
			return it.fail(fmt.Errorf("%w: engine key %x has no segment", ErrBadSessionKey, ek))
		}
		_, start, end, err := DecodeSessionKey(ek[8:])
		if err != nil {
			return it.fail(err)
		}
		if start > it.to || end < it.lo {
			continue
		}
		v, err := it.s.values.Deserialize(it.s.topic, it.cur.Value())
		if err != nil {
			return it.fail(fmt.Errorf("deserialize value: %w", err))
		}
		it.k = Session[K]{Key: it.key, Start: time.UnixMilli(start), End: time.UnixMilli(end)}
		it.v = v
		return true
	}
	return false
}

func (it *sessionIter[K, V]) Key() Session[K] { return it.k }
func (it *sessionIter[K, V]) Value() V        { return it.v }
func (it *sessionIter[K, V]) Err() error      { return it.err }

func (it *sessionIter[K, V]) Close() error {
	it.done = true
	if it.cur != nil {
		err := it.cur.Close()
		it.cur = nil
		return err
	}
	return nil
}
