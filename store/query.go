package store

import "fmt"

// KeyBytesIterator is a typed iterator that also exposes the serialized
// bytes of the current key, the order keys are stored in. Interactive
// queries merge the stores of several tasks by these bytes and use them
// as continuation tokens.
type KeyBytesIterator[K, V any] interface {
	Iterator[K, V]
	// KeyBytes returns the current key's serialized bytes; valid until
	// the next call to Next.
	KeyBytes() []byte
}

func (t *typedIter[K, V]) KeyBytes() []byte { return t.it.Key() }

// IterateBytes iterates a store made by NewKeyValueStore over serialized
// keys in [lo, hi) (nil lo: from the first key; nil hi: to the last),
// descending when reverse is true. It fails for other implementations of
// ReadOnlyKeyValueStore.
func IterateBytes[K, V any](s ReadOnlyKeyValueStore[K, V], lo, hi []byte, reverse bool) (KeyBytesIterator[K, V], error) {
	kv, ok := s.(*kvStore[K, V])
	if !ok {
		return nil, fmt.Errorf("store: IterateBytes needs a store made by NewKeyValueStore, got %T", s)
	}
	it, err := kv.iterate(lo, hi, reverse)
	if err != nil {
		return nil, err
	}
	return it.(*typedIter[K, V]), nil
}

// SerializeKey returns key serialized as store s stores it (same serde,
// same topic argument). It fails for stores not made by NewKeyValueStore.
func SerializeKey[K, V any](s ReadOnlyKeyValueStore[K, V], key K) ([]byte, error) {
	kv, ok := s.(*kvStore[K, V])
	if !ok {
		return nil, fmt.Errorf("store: SerializeKey needs a store made by NewKeyValueStore, got %T", s)
	}
	return kv.keyBytes(key)
}

// Isolation says what a query view of a store reads (see QueryView).
type Isolation int

const (
	// ReadUncommitted reads what the task's processors read: the task's
	// writes since its last commit included (under exactly-once, writes
	// of a transaction that may still abort). Kafka Streams' interactive
	// queries read this way.
	ReadUncommitted Isolation = iota
	// ReadCommitted reads only what the task's last commit applied: for a
	// store over an Overlay, the overlay's base. A store over any other
	// engine (an in-memory store the runtime does not wrap in an
	// overlay) has no committed state apart from its current one, and
	// reads that.
	ReadCommitted
)

// String returns "read_uncommitted" or "read_committed".
func (i Isolation) String() string {
	if i == ReadCommitted {
		return "read_committed"
	}
	return "read_uncommitted"
}

// kvQueryViewer is implemented by stores that have query views.
type kvQueryViewer interface{ queryView(Isolation) any }

func (s *kvStore[K, V]) queryView(iso Isolation) any {
	if iso != ReadCommitted {
		iso = ReadUncommitted
	}
	return s.views[iso]
}

// QueryView returns the view of st that interactive queries, on other
// goroutines than the task's, must read instead of st. For a store made by
// NewKeyValueStore or NewTimestampedKeyValueStore it is a store of the same
// type (it implements the same interfaces and works with IterateBytes and
// SerializeKey) that reads the engine as iso says and never the store's
// record cache (see Cache), which belongs to the task's goroutine; its
// writes fail with ErrReadOnly. The view is made with the store: asking
// for it costs nothing. Any other st is returned as it is.
func QueryView(st any, iso Isolation) any {
	if v, ok := st.(kvQueryViewer); ok {
		return v.queryView(iso)
	}
	return st
}
