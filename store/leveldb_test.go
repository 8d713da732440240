package store

import (
	"errors"
	"strings"
	"testing"
)

func TestLevelDBEngineConformance(t *testing.T) {
	engineConformance(t, func(t *testing.T) Engine {
		e, err := openLevelDB(t.TempDir(), LDBTestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return e
	})
}

// TestLevelDBCloseWithLeakedIteratorReleasesTheDirectory: a leaked iterator
// must not keep the database open: after Close (which reports the leak) the
// same directory opens again in this process, with the data.
func TestLevelDBCloseWithLeakedIteratorReleasesTheDirectory(t *testing.T) {
	dir := t.TempDir()
	e, err := openLevelDB(dir, LDBTestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, e, "a", "1")
	it, err := e.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	var oie *OpenIteratorsError
	if err := e.Close(); !errors.As(err, &oie) || oie.Open != 1 || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Close = %v, want *OpenIteratorsError naming %s", err, dir)
	}
	e2, err := openLevelDB(dir, LDBTestOptions{})
	if err != nil {
		t.Fatalf("reopen after Close with a leaked iterator: %v", err)
	}
	defer mustClose(t, e2)
	if v, found, err := e2.Get([]byte("a")); err != nil || !found || string(v) != "1" {
		t.Fatalf("Get after reopen = %q %v %v", v, found, err)
	}
	if it.Next() || !errors.Is(it.Err(), ErrClosed) {
		t.Fatalf("leaked iterator after Close: Next true or Err %v, want false and ErrClosed", it.Err())
	}
	mustCloseIter(t, it)
}
