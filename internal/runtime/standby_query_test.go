package runtime

import (
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/store/leveldb"
)

// TestCopyReadsRegistry: a published copy answers point reads and
// iterators with its role and lag (its offsets against the ends of its
// last round); unpublishing it, as the copy does before it closes its
// stores, waits for the point read in flight, calls the kill func of
// every iterator still open, and then refuses reads with a
// *CopyNotOpenError.
func TestCopyReadsRegistry(t *testing.T) {
	e, err := leveldb.Open(filepath.Join(t.TempDir(), "s"), leveldb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	kv := store.NewKeyValueStore("s", e, serde.String(), serde.Int64())
	if err := kv.Put("k", 42); err != nil {
		t.Fatal(err)
	}
	id := assign.TaskID{Group: 0, Partition: 1}
	tp := store.TopicPartition{Topic: "app-s-changelog", Partition: 1}
	c := &standbyCopy{id: id, role: RoleStandby,
		offsets: map[store.TopicPartition]int64{tp: 5}, roundEnds: map[store.TopicPartition]int64{tp: 7}}
	r := &Runtime{}
	r.standbys = &standbyRunner{r: r, copies: map[assign.TaskID]*standbyCopy{id: c}}

	var cn *CopyNotOpenError
	if _, err := r.ReadCopyStore(id, "s", func(any) error { return nil }); !errors.As(err, &cn) || cn.Role != RoleStandby {
		t.Fatalf("unpublished copy: err %v, want a *CopyNotOpenError of the standby", err)
	}
	if _, err := r.ReadCopyStore(assign.TaskID{Partition: 9}, "s", func(any) error { return nil }); !errors.As(err, &cn) || cn.Role != "" {
		t.Fatalf("no copy: err %v, want a *CopyNotOpenError without role", err)
	}

	c.reads.publish(map[string]any{"s": store.QueryView(kv, store.ReadUncommitted)})
	if role, ok := r.CopyReadable(id); !ok || role != RoleStandby {
		t.Fatalf("CopyReadable = %q, %v", role, ok)
	}
	var got int64
	info, err := r.ReadCopyStore(id, "s", func(st any) error {
		v, _, err := st.(store.KeyValueStore[string, int64]).Get("k")
		got = v
		return err
	})
	if err != nil || got != 42 || info.Role != RoleStandby || info.Lag != 2 || info.Task != id {
		t.Fatalf("read: %d, %+v, %v; want 42, standby, lag 2", got, info, err)
	}
	// A view of the copy cannot write.
	if _, err := r.ReadCopyStore(id, "s", func(st any) error {
		return st.(store.KeyValueStore[string, int64]).Put("k", 1)
	}); err == nil {
		t.Fatal("a write through the copy's query view succeeded")
	}

	var killed atomic.Int32
	done, _, err := r.OpenCopyIterator(id, "s", func(any) (func(), error) {
		return func() { killed.Add(1) }, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closed, _, err := r.OpenCopyIterator(id, "s", func(any) (func(), error) {
		return func() { t.Error("the kill func of an iterator closed normally was called") }, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	closed()

	// A point read in flight holds the copy open.
	started, release := make(chan struct{}), make(chan struct{})
	var finished atomic.Bool
	go func() {
		_, _ = r.ReadCopyStore(id, "s", func(any) error {
			close(started)
			<-release
			finished.Store(true)
			return nil
		})
	}()
	<-started
	unpublished := make(chan struct{})
	go func() {
		c.reads.unpublish()
		close(unpublished)
	}()
	select {
	case <-unpublished:
		t.Fatal("unpublish returned while a point read was in flight")
	case <-time.After(50 * time.Millisecond): // still waiting, as it must
	}
	close(release)
	<-unpublished
	if !finished.Load() {
		t.Fatal("unpublish returned while a point read was in flight")
	}
	if killed.Load() != 1 {
		t.Fatalf("open iterator killed %d times, want 1", killed.Load())
	}
	done()
	if _, err := r.ReadCopyStore(id, "s", func(any) error { return nil }); !errors.As(err, &cn) {
		t.Fatalf("after unpublish: err %v, want a *CopyNotOpenError", err)
	}
	if _, ok := r.CopyReadable(id); ok {
		t.Fatal("CopyReadable after unpublish")
	}

	// A round that could not list an end (a table's committed offset):
	// the lag is unknown and the copy refuses to answer.
	c.reads.publish(map[string]any{"s": store.QueryView(kv, store.ReadUncommitted)})
	c.mu.Lock()
	c.roundEnds = map[store.TopicPartition]int64{}
	c.mu.Unlock()
	if _, err := r.ReadCopyStore(id, "s", func(any) error { return nil }); !errors.As(err, &cn) {
		t.Fatalf("unknown end: err %v, want a *CopyNotOpenError", err)
	}
}
