// Package store holds brook's state stores.
//
// It owns the store interfaces (typed [KeyValueStore] and its read-only
// view, iterators that must be closed), the byte-level engines (LevelDB and
// an ordered in-memory engine), changelogging of writes, restore from a
// changelog, checkpoints, and the window and TTL stores.
//
// Keys are ordered by their serialized bytes. Big-endian integer serdes
// (serde.Int32, serde.Int64) keep numeric order for non-negative values;
// strings order lexicographically by their UTF-8 bytes.
//
// store must not import topology or any Kafka client: the runtime hands it a
// [ChangelogWriter] and a changelog reader that it implements.
package store
