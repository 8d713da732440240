package runtime

import (
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/brookstream/brook/store/leveldb"
)

// TestParkedOpenerHandsOverTheOpenEngine: a promoted standby's open
// LevelDB goes to the task that opens its folder, not through a close and
// a reopen (which replays the journal: seconds on a failover); unclaimed
// engines are closed by closeParked, releasing the folder.
func TestParkedOpenerHandsOverTheOpenEngine(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "balances")
	sb := &standbyRunner{r: &Runtime{log: slog.New(slog.DiscardHandler)}}
	e, err := leveldb.Opener(dir, leveldb.Options{}).Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	sb.park(dir, e)
	op := parkedOpener{Opener: leveldb.Opener(dir, leveldb.Options{}), dir: dir, sb: sb}
	got, err := op.Open()
	if err != nil {
		t.Fatal(err)
	}
	if got != e {
		t.Fatal("the task's open did not take the standby's open engine")
	}
	if v, ok, err := got.Get([]byte("k")); err != nil || !ok || string(v) != "v" {
		t.Fatalf("handed-over engine: %q %v %v", v, ok, err)
	}
	// Taken once: the next open is a real one (the folder is locked
	// while the first engine is open).
	if _, err := op.Open(); err == nil {
		t.Fatal("a second open of a folder whose engine is open succeeded")
	}
	sb.park(dir, got)
	sb.closeParked()
	again, err := op.Open()
	if err != nil {
		t.Fatalf("open after closeParked: %v", err)
	}
	again.Close()
}
