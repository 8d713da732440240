package store

// Package store cannot import store/leveldb (which imports store), not even
// in its own tests: that is an import cycle. Its tests that run over a real
// LevelDB engine reach it through these hooks, which
// leveldb_hooks_ext_test.go (package store_test, free to import
// store/leveldb) sets before any test runs.

// LDBTestOptions are the leveldb.Options fields store's tests set.
type LDBTestOptions struct {
	WriteBufferSize int
	SkipVerify      bool
}

// Set by leveldb_hooks_ext_test.go.
var (
	OpenLevelDBHook   func(dir string, o LDBTestOptions) (Engine, error)
	LevelDBOpenerHook func(dir string, o LDBTestOptions) Opener
)

func openLevelDB(dir string, o LDBTestOptions) (Engine, error) { return OpenLevelDBHook(dir, o) }

func levelDBOpener(dir string, o LDBTestOptions) Opener { return LevelDBOpenerHook(dir, o) }
