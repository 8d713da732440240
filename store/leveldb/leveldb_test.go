package leveldb_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

// Package store's tests run the engine conformance suite, corruption and
// restore tests over this engine (store/leveldb_hooks_ext_test.go); these
// cover what the runtime relies on when it picks the engine.

func TestOpenerIsPersistentAndReportsLocalData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	o := leveldb.Opener(dir, leveldb.Options{})
	if !o.Persistent() {
		t.Fatal("leveldb.Opener is not persistent")
	}
	lc, ok := o.(store.LocalDataChecker)
	if !ok {
		t.Fatal("leveldb.Opener does not implement store.LocalDataChecker")
	}
	if has, err := lc.HasLocalData(); err != nil || has {
		t.Fatalf("HasLocalData before Open = %v, %v; want false, nil", has, err)
	}
	e, err := o.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if has, err := lc.HasLocalData(); err != nil || !has {
		t.Fatalf("HasLocalData after a write = %v, %v; want true, nil", has, err)
	}
	if err := o.Wipe(); err != nil {
		t.Fatal(err)
	}
	if has, err := lc.HasLocalData(); err != nil || has {
		t.Fatalf("HasLocalData after Wipe = %v, %v; want false, nil", has, err)
	}
}

func TestOptionsValidateNamesTheField(t *testing.T) {
	for field, o := range map[string]leveldb.Options{
		"BlockCacheSize":  {BlockCacheSize: -1},
		"WriteBufferSize": {WriteBufferSize: -1},
		"Compression":     {Compression: 7},
	} {
		err := o.Validate()
		if err == nil || !strings.Contains(err.Error(), "Options."+field) {
			t.Errorf("Validate(%+v) = %v, want an error naming Options.%s", o, err, field)
		}
		if _, err := leveldb.Open(t.TempDir(), o); err == nil {
			t.Errorf("Open with %+v succeeded", o)
		}
	}
}
