package store

// Engine is an ordered byte-level key-value engine: the storage under every
// typed store. Keys order by bytes.Compare. An Engine is used by one task
// goroutine at a time; interactive queries read through snapshots or
// iterators that the engine makes safe for concurrent readers.
//
// Engines do not fsync each write: durability comes at Flush, which the
// runtime calls at commit before it writes the checkpoint.
type Engine interface {
	// Get returns a copy of the value stored under key.
	Get(key []byte) (value []byte, found bool, err error)
	// Put stores value under key. The engine copies both slices.
	Put(key, value []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(key []byte) error
	// Iterate walks keys in [lo, hi) (nil lo: from the first key, nil hi:
	// to the last), descending when reverse is true. Key and Value slices
	// are valid until the next call to Next.
	Iterate(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error)
	// NewBatch returns an empty write batch for this engine.
	NewBatch() Batch
	// ApproximateCount estimates the number of keys.
	ApproximateCount() (int64, error)
	// Flush makes every write so far durable.
	Flush() error
	// Close releases the engine. Iterators still open are leaked: Close
	// closes anyway, makes them fail safely (Next false, Err ErrClosed)
	// and returns *OpenIteratorsError to report the leak.
	Close() error
}

// Batch collects writes that an Engine applies atomically with Write.
// Restore uses batches to load changelog records quickly.
type Batch interface {
	// Put adds a put of value under key.
	Put(key, value []byte)
	// Delete adds a delete of key.
	Delete(key []byte)
	// Len is the number of writes in the batch.
	Len() int
	// Reset empties the batch for reuse.
	Reset()
	// Write applies the batch atomically.
	Write() error
}

// ChangelogWriter sends changelog records. The runtime implements it with
// its producer (inside the task's transaction under exactly-once); tests use
// a recorder or the embedded broker. A nil value is a tombstone.
type ChangelogWriter interface {
	SendChangelog(topic string, partition int32, key, value []byte) error
}

// BatchSizer is an Engine that can make a batch whose buffer starts with
// room for about size bytes of records (keys and values plus
// batchRecordOverhead each), so that a large batch is built without
// copying its buffer as it grows. The overlay uses it at commit.
type BatchSizer interface {
	NewBatchSize(size int) Batch
}

// batchRecordOverhead is the room a batch record takes besides its key and
// value, as the overlay counts it for BatchSizer (LevelDB: a type byte,
// two length varints and the key prefix).
const batchRecordOverhead = 12

// sizedBatchFrom is the number of pending writes from which the overlay
// sizes its commit batch: below it goleveldb doubles a batch's buffer as
// it grows, which costs less than the extra pass over the writes that
// counts their bytes (a B2u commit holds about 1,700 keys per task).
const sizedBatchFrom = 3000
