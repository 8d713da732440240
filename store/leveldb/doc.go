// Package leveldb is brook's persistent store engine: a store.Engine over
// goleveldb, and the store.Opener the runtime restores persistent stores
// through.
//
// [Open] opens an engine in a directory (block cache, write buffer,
// compression and bloom filter in [Options]; writes are not synced one by
// one and Flush makes them durable). Its iterators walk a snapshot taken
// when the iterator was created. Closing it with open iterators reports the
// leak with *store.OpenIteratorsError and closes anyway, releasing
// LevelDB's files and lock. A damaged database is a *store.CorruptionError,
// on which store.Restore wipes the directory and restores from the
// changelog.
//
// It lives apart from package store so that code written against the
// store interfaces (processors, tests over the in-memory engine) does not
// link goleveldb; the runtime (internal/runtime) chooses this engine for
// every store not declared in memory.
package leveldb
