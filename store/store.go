package store

// Iterator walks key/value pairs in key order (or reverse order for reverse
// ranges). It must be closed: closing the engine under an open iterator
// reports the leak (*OpenIteratorsError) and closes anyway, after which the
// iterator's Next returns false and its Err ErrClosed.
//
//	it, err := s.All()
//	if err != nil { ... }
//	defer it.Close()
//	for it.Next() { use(it.Key(), it.Value()) }
//	if err := it.Err(); err != nil { ... }
type Iterator[K, V any] interface {
	// Next advances to the next pair and reports whether there is one.
	Next() bool
	// Key returns the current key; valid after Next returned true.
	Key() K
	// Value returns the current value; valid after Next returned true.
	Value() V
	// Err returns the first error met while iterating, if any.
	Err() error
	// Close releases the iterator. It is safe to call more than once.
	Close() error
}

// ReadOnlyKeyValueStore is the read side of a key-value store, as handed to
// interactive queries.
type ReadOnlyKeyValueStore[K, V any] interface {
	// Name is the store's name in the topology.
	Name() string
	// Get returns the value for key and whether it was found.
	Get(key K) (value V, found bool, err error)
	// Range iterates keys in [from, to) in ascending order.
	Range(from, to K) (Iterator[K, V], error)
	// ReverseRange iterates keys in [from, to) in descending order.
	ReverseRange(from, to K) (Iterator[K, V], error)
	// Prefix iterates keys whose serialized bytes start with the serialized
	// prefix, in ascending order.
	Prefix(prefix K) (Iterator[K, V], error)
	// All iterates every key in ascending order.
	All() (Iterator[K, V], error)
	// ApproximateCount estimates the number of keys.
	ApproximateCount() (int64, error)
}

// KeyValueStore is a typed, ordered key-value store. Writes of a logged
// store are also sent to its changelog.
type KeyValueStore[K, V any] interface {
	ReadOnlyKeyValueStore[K, V]
	// Put stores value under key.
	Put(key K, value V) error
	// PutIfAbsent stores value only if key is absent. It returns the value
	// already there and found=true when it was present.
	PutIfAbsent(key K, value V) (existing V, found bool, err error)
	// Delete removes key; deleting an absent key is not an error.
	Delete(key K) error
}
