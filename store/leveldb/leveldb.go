package leveldb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/brookstream/brook/store"
	"github.com/syndtr/goleveldb/leveldb"
	lverrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Compression selects the block compression of LevelDB tables.
type Compression int

const (
	// CompressionSnappy compresses table blocks with Snappy (the default).
	CompressionSnappy Compression = iota
	// CompressionNone stores table blocks uncompressed.
	CompressionNone
)

// Options tunes a LevelDB engine. The zero value works: every zero
// field takes the default given in its comment.
type Options struct {
	// BlockCacheSize is the size in bytes of the block cache shared by
	// reads of this engine; it fills as blocks are read. Default 32 MiB:
	// a table of a million 100-byte values split over a few tasks fits,
	// and lookups stop reading sorted-table blocks from disk.
	BlockCacheSize int
	// WriteBufferSize is the size in bytes of the in-memory table that
	// collects writes before they go to a sorted table on disk; larger
	// values make restores and write bursts faster at the cost of memory
	// and a longer journal replay when opening. Default 16 MiB.
	WriteBufferSize int
	// Compression is the table block compression. Default Snappy.
	Compression Compression
	// BloomFilterBits is the number of bloom-filter bits per key that make
	// Gets of absent keys cheap; 0 means the default of 10, a negative
	// value disables the filter.
	BloomFilterBits int
	// SkipVerify skips the check, when opening, that every table block
	// reads back with a valid checksum. The check reads the whole database
	// once; without it, corruption shows up only when the damaged block is
	// read (as a *store.CorruptionError from that read).
	SkipVerify bool
}

const (
	defaultBlockCacheSize  = 32 << 20
	defaultWriteBufferSize = 16 << 20
	defaultBloomBits       = 10
)

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.BlockCacheSize < 0:
		return fmt.Errorf("store/leveldb: Options.BlockCacheSize %d is negative", o.BlockCacheSize)
	case o.WriteBufferSize < 0:
		return fmt.Errorf("store/leveldb: Options.WriteBufferSize %d is negative", o.WriteBufferSize)
	case o.Compression != CompressionSnappy && o.Compression != CompressionNone:
		return fmt.Errorf("store/leveldb: Options.Compression %d is unknown", o.Compression)
	}
	return nil
}

func (o Options) goleveldb() *opt.Options {
	lo := &opt.Options{
		BlockCacheCapacity: o.BlockCacheSize,
		WriteBuffer:        o.WriteBufferSize,
		Compression:        opt.SnappyCompression,
		// Any corruption fails loudly (open or read) instead of being
		// dropped silently: the caller then wipes and restores from the
		// changelog, which is the only copy it can trust.
		Strict: opt.StrictManifest | opt.StrictJournalChecksum | opt.StrictJournal |
			opt.StrictBlockChecksum | opt.StrictCompaction | opt.StrictReader,
	}
	if lo.BlockCacheCapacity == 0 {
		lo.BlockCacheCapacity = defaultBlockCacheSize
	}
	if lo.WriteBuffer == 0 {
		lo.WriteBuffer = defaultWriteBufferSize
	}
	if o.Compression == CompressionNone {
		lo.Compression = opt.NoCompression
	}
	switch bits := o.BloomFilterBits; {
	case bits == 0:
		lo.Filter = filter.NewBloomFilter(defaultBloomBits)
	case bits > 0:
		lo.Filter = filter.NewBloomFilter(bits)
	}
	return lo
}

// Key layout inside the LevelDB database: user keys carry the prefix
// userPrefix so that the engine can keep its own records (metaPrefix)
// beside them without any clash; Flush writes the flush marker with a
// synced write, which makes the journal (and so every earlier write)
// durable.
const (
	metaPrefix = 0x00
	userPrefix = 0x01
)

var flushMarker = []byte{metaPrefix, 'f'}

// Open opens (creating if needed) a LevelDB engine in dir.
//
// Writes are not synced one by one; Flush makes every write so far durable.
// Close flushes. Iterators see the database as it was when they were
// created; writes made while they are open are allowed and not seen.
//
// A damaged database gives a *store.CorruptionError (from Open unless
// opts.SkipVerify is set, otherwise from the read that meets the damage).
func Open(dir string, opts Options) (store.Engine, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store/leveldb: open LevelDB: %w", err)
	}
	db, err := leveldb.OpenFile(dir, opts.goleveldb())
	if err != nil {
		return nil, wrapLevelDBErr(dir, "open", err)
	}
	e := &ldbEngine{dir: dir, db: db, iters: map[*ldbIter]struct{}{}}
	if !opts.SkipVerify {
		if err := e.verify(); err != nil {
			db.Close()
			return nil, err
		}
	}
	return e, nil
}

func wrapLevelDBErr(dir, op string, err error) error {
	if err == nil {
		return nil
	}
	if lverrors.IsCorrupted(err) {
		return &store.CorruptionError{Dir: dir, Err: err}
	}
	if errors.Is(err, leveldb.ErrClosed) {
		return store.ErrClosed
	}
	return fmt.Errorf("store/leveldb: LevelDB %s in %s: %w", op, dir, err)
}

type ldbEngine struct {
	dir string
	db  *leveldb.DB

	mu     sync.Mutex // guards iters, closed and seq
	iters  map[*ldbIter]struct{}
	closed bool
	seq    uint64 // flush marker value
}

// verify reads every table block once, checking checksums, without filling
// the block cache.
func (e *ldbEngine) verify() error {
	it := e.db.NewIterator(nil, &opt.ReadOptions{DontFillCache: true, Strict: opt.StrictBlockChecksum | opt.StrictReader})
	defer it.Release()
	for it.Next() {
	}
	return wrapLevelDBErr(e.dir, "verify", it.Error())
}

func userKey(k []byte) []byte {
	b := make([]byte, 1+len(k))
	b[0] = userPrefix
	copy(b[1:], k)
	return b
}

func (e *ldbEngine) checkOpen() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return store.ErrClosed
	}
	return nil
}

// Get implements store.Engine.
func (e *ldbEngine) Get(key []byte) ([]byte, bool, error) {
	if err := e.checkOpen(); err != nil {
		return nil, false, err
	}
	v, err := e.db.Get(userKey(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, wrapLevelDBErr(e.dir, "get", err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Put implements store.Engine.
func (e *ldbEngine) Put(key, value []byte) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	return wrapLevelDBErr(e.dir, "put", e.db.Put(userKey(key), value, nil))
}

// Delete implements store.Engine.
func (e *ldbEngine) Delete(key []byte) error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	return wrapLevelDBErr(e.dir, "delete", e.db.Delete(userKey(key), nil))
}

// ApproximateCount implements store.Engine. LevelDB keeps no key count, so this
// counts the keys with one pass over them (without filling the block
// cache): the result is exact for the snapshot it read but costs time in
// proportion to the store's size.
func (e *ldbEngine) ApproximateCount() (int64, error) {
	if err := e.checkOpen(); err != nil {
		return 0, err
	}
	it := e.db.NewIterator(&util.Range{Start: []byte{userPrefix}, Limit: []byte{userPrefix + 1}}, &opt.ReadOptions{DontFillCache: true})
	defer it.Release()
	var n int64
	for it.Next() {
		n++
	}
	return n, wrapLevelDBErr(e.dir, "count", it.Error())
}

// Flush implements store.Engine: a synced write of the engine's flush marker
// makes the journal, and with it every earlier write, durable.
func (e *ldbEngine) Flush() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return store.ErrClosed
	}
	e.seq++
	v := fmt.Appendf(nil, "%d", e.seq)
	e.mu.Unlock()
	return wrapLevelDBErr(e.dir, "flush", e.db.Put(flushMarker, v, &opt.WriteOptions{Sync: true}))
}

// Close implements store.Engine: it flushes and closes the database. Iterators
// still open are leaked: Close releases them (their Next returns false and
// their Err store.ErrClosed from then on), closes the database anyway, and
// returns *store.OpenIteratorsError to report the leak. Closing twice is not an
// error.
func (e *ldbEngine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	leaked := make([]*ldbIter, 0, len(e.iters))
	for it := range e.iters {
		leaked = append(leaked, it)
	}
	clear(e.iters)
	e.seq++
	v := fmt.Appendf(nil, "%d", e.seq)
	e.closed = true
	e.mu.Unlock()
	// A leaked iterator may be in use by another goroutine: release it
	// under its own lock, before the database goes away under it.
	for _, it := range leaked {
		it.kill()
	}
	var leak error
	if len(leaked) > 0 {
		leak = &store.OpenIteratorsError{Engine: "LevelDB " + e.dir, Open: len(leaked)}
	}
	ferr := wrapLevelDBErr(e.dir, "flush", e.db.Put(flushMarker, v, &opt.WriteOptions{Sync: true}))
	cerr := wrapLevelDBErr(e.dir, "close", e.db.Close())
	return errors.Join(leak, ferr, cerr)
}

// NewBatch implements store.Engine.
func (e *ldbEngine) NewBatch() store.Batch { return &ldbBatch{e: e} }

// NewBatchSize implements store.BatchSizer: the batch's buffer starts
// with room for records of about size bytes. A batch grows its buffer by
// a few per cent at a time once it holds thousands of records, so a
// commit of a large overlay copied it over and over (7 % of a table
// load's CPU).
func (e *ldbEngine) NewBatchSize(size int) store.Batch {
	b := &ldbBatch{e: e}
	if size > 0 {
		// Load takes the slice as the batch's buffer; an empty one holds
		// no record.
		_ = b.b.Load(make([]byte, 0, size))
	}
	return b
}

type ldbBatch struct {
	e   *ldbEngine
	b   leveldb.Batch
	buf []byte
}

func (b *ldbBatch) key(k []byte) []byte {
	b.buf = append(append(b.buf[:0], userPrefix), k...)
	return b.buf // leveldb.Batch copies it
}

func (b *ldbBatch) Put(key, value []byte) { b.b.Put(b.key(key), value) }
func (b *ldbBatch) Delete(key []byte)     { b.b.Delete(b.key(key)) }
func (b *ldbBatch) Len() int              { return b.b.Len() }
func (b *ldbBatch) Reset()                { b.b.Reset() }

func (b *ldbBatch) Write() error {
	if err := b.e.checkOpen(); err != nil {
		return err
	}
	return wrapLevelDBErr(b.e.dir, "batch write", b.e.db.Write(&b.b, nil))
}

// Iterate implements store.Engine.
func (e *ldbEngine) Iterate(lo, hi []byte, reverse bool) (store.Iterator[[]byte, []byte], error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, store.ErrClosed
	}
	r := &util.Range{Start: userKey(lo), Limit: []byte{userPrefix + 1}}
	if hi != nil {
		r.Limit = userKey(hi)
	}
	it := &ldbIter{e: e, it: e.db.NewIterator(r, nil), reverse: reverse}
	e.iters[it] = struct{}{}
	return it, nil
}

// ldbIter is a LevelDB iterator. Its lock makes it safe to release from
// the engine's Close while another goroutine still uses it (a leak).
type ldbIter struct {
	e       *ldbEngine
	reverse bool

	mu      sync.Mutex // guards the fields below
	it      iterator.Iterator
	started bool
	valid   bool
	closed  bool // Close was called
	killed  bool // the engine closed first: released, reports store.ErrClosed
}

// kill releases a leaked iterator when its engine closes.
func (it *ldbIter) kill() {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed || it.killed {
		return
	}
	it.killed, it.valid = true, false
	it.it.Release()
}

func (it *ldbIter) Next() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.closed || it.killed {
		it.valid = false
		return false
	}
	switch {
	case !it.started && it.reverse:
		it.valid = it.it.Last()
	case !it.started:
		it.valid = it.it.First()
	case it.reverse:
		it.valid = it.it.Prev()
	default:
		it.valid = it.it.Next()
	}
	it.started = true
	return it.valid
}

func (it *ldbIter) Key() []byte {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.valid {
		return nil
	}
	return it.it.Key()[1:]
}

func (it *ldbIter) Value() []byte {
	it.mu.Lock()
	defer it.mu.Unlock()
	if !it.valid {
		return nil
	}
	return it.it.Value()
}

func (it *ldbIter) Err() error {
	it.mu.Lock()
	defer it.mu.Unlock()
	switch {
	case it.closed:
		return nil
	case it.killed:
		return store.ErrClosed
	}
	return wrapLevelDBErr(it.e.dir, "iterate", it.it.Error())
}

func (it *ldbIter) Close() error {
	it.mu.Lock()
	if it.closed {
		it.mu.Unlock()
		return nil
	}
	wasKilled := it.killed
	it.closed, it.valid = true, false
	if !wasKilled {
		it.it.Release()
	}
	it.mu.Unlock()
	it.e.mu.Lock()
	delete(it.e.iters, it)
	it.e.mu.Unlock()
	return nil
}

// Opener returns a store.Opener for a LevelDB engine in dir: the runtime
// restores every persistent store through one.
func Opener(dir string, opts Options) store.Opener { return opener{dir, opts} }

type opener struct {
	dir  string
	opts Options
}

// Open implements store.Opener.
func (o opener) Open() (store.Engine, error) { return Open(o.dir, o.opts) }

// Persistent implements store.Opener: LevelDB data survives Close.
func (o opener) Persistent() bool { return true }

// String implements store.Opener.
func (o opener) String() string { return "LevelDB " + o.dir }

// HasLocalData implements store.LocalDataChecker: it reports whether a
// LevelDB database exists in dir.
func (o opener) HasLocalData() (bool, error) {
	_, err := os.Stat(filepath.Join(o.dir, "CURRENT"))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Wipe implements store.Opener: it deletes dir.
func (o opener) Wipe() error {
	if err := os.RemoveAll(o.dir); err != nil {
		return fmt.Errorf("store/leveldb: wipe %s: %w", o.dir, err)
	}
	return nil
}
