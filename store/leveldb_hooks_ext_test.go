package store_test

import (
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

func init() {
	opts := func(o store.LDBTestOptions) leveldb.Options {
		return leveldb.Options{WriteBufferSize: o.WriteBufferSize, SkipVerify: o.SkipVerify}
	}
	store.OpenLevelDBHook = func(dir string, o store.LDBTestOptions) (store.Engine, error) {
		return leveldb.Open(dir, opts(o))
	}
	store.LevelDBOpenerHook = func(dir string, o store.LDBTestOptions) store.Opener {
		return leveldb.Opener(dir, opts(o))
	}
}
