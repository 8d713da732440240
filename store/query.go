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
