// Package store holds brook's state stores.
//
// It owns the store interfaces (typed [KeyValueStore] and its read-only
// view, iterators that must be closed), the byte-level engines, changelogging
// of writes, restore from a changelog, checkpoints, and the window, session,
// TTL and versioned stores.
//
// # Engines
//
// An [Engine] is an ordered byte-level key-value engine. Package
// store/leveldb opens a persistent one (goleveldb; block cache, write
// buffer, compression and bloom filter in its Options; writes are not
// synced one by one and Flush makes them durable). [NewMemoryEngine]
// returns an in-memory one (a copy-on-write treap). Both pass the same
// conformance suite. Their iterators walk a snapshot taken when the
// iterator was created: writes made while an iterator is open are allowed
// and not seen by it. Iterators must be closed. Closing an engine with open
// iterators reports the leak with [*OpenIteratorsError] and closes the
// engine anyway (releasing LevelDB's files and lock); a leaked iterator
// then fails safely: Next returns false and Err returns [ErrClosed].
//
// The engine lives apart so that store stays light: code written against
// the store interfaces (a processor, a test over [NewMemoryEngine]) links
// no goleveldb. An [Opener] is how the runtime picks the engine of a store
// (store/leveldb's Opener, or [MemoryOpener]).
//
// # Typed stores and key order
//
// [NewKeyValueStore], [NewWindowStore], [NewTTLStore] and
// [NewVersionedKeyValueStore] put typed stores
// over an engine, serializing keys and values with serde.Serde. Keys are
// ordered by their serialized bytes, so ranges follow that order:
// serde.Int32 and serde.Int64 (big-endian) keep numeric order for
// non-negative values only (negative numbers sort after positive ones);
// serde.String orders lexicographically by UTF-8 bytes; serde.Float64 and
// JSON do not keep any useful order.
//
// # Changelog
//
// A store built with [WithChangelog] sends every write (key bytes and value
// bytes, nil for a delete: a tombstone) through a [ChangelogWriter] to
// [ChangelogTopic] (appID, store), on the task's partition. A table fed by
// a compacted source topic logs nothing and restores from that topic.
//
// # Record cache
//
// A [Cache] is a task's record cache, shared by its key-value stores
// through [WithCache] (other stores ignore the option): bounded in
// approximate bytes, least recently used entries evicted first, it keeps
// decoded values so that a Get of a hot key costs neither an engine read
// nor the value serde. A read makes a key's entry; a write never makes
// one (a table filled from its topic would otherwise pay an entry and an
// eviction per record). Over an [Overlay], a key written since the last
// commit is read from the overlay's pending writes and the store's writes
// leave the cache alone; the commit gives a cached key the committed
// value, so a key read once per commit interval still hits after it.
// Without an overlay a write updates the key's entry if it has one. A
// full cache admits a key only at its second miss (see Cache). The
// cache is write-through (writes reach the engine and changelog at once;
// nothing is flushed at commit, no output is held back), follows what the store's [Overlay] answers (a rollback, Discard,
// Close and writes that bypass the store make it forget the keys
// concerned), and never shares a value with a caller (values are copied,
// or kept encoded when they cannot be). [CacheStats] are its counters.
//
// A cached store belongs to the task's goroutine. Interactive queries read
// its [QueryView] instead: a read-only view that never touches the cache
// and reads either what the task reads ([ReadUncommitted]) or only what
// the last commit applied ([ReadCommitted]: the overlay's base).
//
// # Restore and checkpoints
//
// [Restore] opens an engine through an [Opener] and applies a changelog
// partition read through a [ChangelogReader] (a small interface: store
// imports no Kafka client; internal/changelog implements it with sarama)
// from the checkpointed offset to the end offset, in batches, reporting
// progress. With no checkpoint, a checkpoint outside the changelog's
// offsets, or a corrupt LevelDB, it logs why, wipes and restores from the
// beginning.
//
// A checkpoint ([WriteCheckpoint], [ReadCheckpoint]) maps changelog
// partitions to the next offset to restore; it is written atomically and
// only after the engines it describes were flushed ([FlushAndCheckpoint]).
//
// store must not import topology, any Kafka client, goleveldb or serde/avro
// (imports_test.go at the module root checks this). docs/STATE.md is the
// guide.
package store
