package store

import (
	"sync"
	"testing"
	"time"
)

// TestWindowStoreReadsBesideWriter reads a window store (Fetch, FetchRange,
// FetchAll, ObservedTime) from other goroutines while its writer puts
// windows that advance the observed time, as interactive queries do. Run
// with -race: the observed time is shared between the writer and the
// readers.
func TestWindowStoreReadsBesideWriter(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		ws, err := NewWindowStore[string, string]("w", e, strSerde{}, strSerde{},
			WindowOptions{Retention: 50 * time.Millisecond, SegmentInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		const writes = 400
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for r := 0; r < 2; r++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					now := ws.ObservedTime()
					if _, _, err := ws.Fetch("k", now); err != nil {
						t.Error(err)
						return
					}
					wins, err := ws.FetchRange("k", now.Add(-time.Second), now)
					drain(t, wins, err)
					all, err := ws.FetchAll(now.Add(-time.Second), now)
					drain(t, all, err)
				}
			}()
		}
		for i := int64(0); i < writes; i++ {
			if err := ws.Put("k", ms(i), "v"); err != nil {
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		if got := ws.ObservedTime(); !got.Equal(ms(writes - 1)) {
			t.Fatalf("observed %v, want %v", got, ms(writes-1))
		}
	})
}

// drain reads an iterator to its end from a goroutine other than the
// test's, reporting errors with t.Error.
func drain[K, V any](t *testing.T, it Iterator[K, V], err error) {
	if err != nil {
		t.Error(err)
		return
	}
	defer it.Close()
	for it.Next() {
	}
	if err := it.Err(); err != nil {
		t.Error(err)
	}
}

// TestWindowOptionsSize checks the window size's validation: optional,
// whole milliseconds at least, and no longer than the retention.
func TestWindowOptionsSize(t *testing.T) {
	for _, tc := range []struct {
		o  WindowOptions
		ok bool
	}{
		{WindowOptions{Retention: time.Hour}, true},
		{WindowOptions{Retention: time.Hour, Size: 5 * time.Minute}, true},
		{WindowOptions{Retention: time.Hour, Size: time.Hour}, true},
		{WindowOptions{Retention: time.Hour, Size: time.Hour + time.Millisecond}, false},
		{WindowOptions{Retention: time.Hour, Size: -time.Minute}, false},
		{WindowOptions{Retention: time.Hour, Size: time.Microsecond}, false},
	} {
		if err := tc.o.Validate(); (err == nil) != tc.ok {
			t.Errorf("%+v: %v, want ok=%v", tc.o, err, tc.ok)
		}
	}
}
