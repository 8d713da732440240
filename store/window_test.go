package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func ms(v int64) time.Time { return time.UnixMilli(v) }

// windowsOf returns a func that drains a FetchRange result.
func windowsOf(t *testing.T) func(it Iterator[time.Time, string], err error) []string {
	return func(it Iterator[time.Time, string], err error) []string {
		t.Helper()
		return collectWindows(t, it, err)
	}
}

func collectWindows(t *testing.T, it Iterator[time.Time, string], err error) []string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer mustCloseIter(t, it)
	var out []string
	for it.Next() {
		out = append(out, fmt.Sprintf("%d=%s", it.Key().UnixMilli(), it.Value()))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func bothEngines(t *testing.T, fn func(t *testing.T, e Engine)) {
	t.Run("memory", func(t *testing.T) {
		e := NewMemoryEngine()
		defer mustClose(t, e)
		fn(t, e)
	})
	t.Run("leveldb", func(t *testing.T) {
		e, err := openLevelDB(t.TempDir(), LDBTestOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, e)
		fn(t, e)
	})
}

func TestWindowStoreFetch(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		rec := &recorder{}
		ws, err := NewWindowStore[string, string]("w", e, strSerde{}, strSerde{},
			WindowOptions{Retention: 10 * time.Second, SegmentInterval: 2 * time.Second}, WithChangelog("app-w-changelog", 1, rec))
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []struct {
			key   string
			start int64
		}{{"a", 1000}, {"a", 3000}, {"a", 5500}, {"ab", 3000}, {"b", 3000}, {"a", 7000}, {"", 4000}} {
			if err := ws.Put(w.key, ms(w.start), fmt.Sprint(w.key, w.start)); err != nil {
				t.Fatal(err)
			}
		}
		if got := windowsOf(t)(ws.FetchRange("a", ms(2000), ms(7000))); fmt.Sprint(got) != "[3000=a3000 5500=a5500 7000=a7000]" {
			t.Fatalf("FetchRange(a, 2000, 7000) = %v", got)
		}
		if got := windowsOf(t)(ws.FetchRange("a", ms(0), ms(math.MaxInt64/4))); len(got) != 4 {
			t.Fatalf("FetchRange(a, all) = %v", got)
		}
		if got := windowsOf(t)(ws.FetchRange("a", ms(3001), ms(5499))); len(got) != 0 {
			t.Fatalf("FetchRange with no window = %v", got)
		}
		// Key "a" must not pick up "ab" (same prefix) or "" windows.
		if got := windowsOf(t)(ws.FetchRange("", ms(0), ms(9000))); fmt.Sprint(got) != "[4000=4000]" {
			t.Fatalf("FetchRange(\"\") = %v", got)
		}
		v, found, err := ws.Fetch("b", ms(3000))
		if err != nil || !found || v != "b3000" {
			t.Fatalf("Fetch(b, 3000) = %q %v %v", v, found, err)
		}
		if _, found, _ := ws.Fetch("b", ms(3001)); found {
			t.Fatal("Fetch of a missing window found something")
		}
		it, err := ws.FetchAll(ms(3000), ms(4000))
		if err != nil {
			t.Fatal(err)
		}
		var all []string
		for it.Next() {
			all = append(all, fmt.Sprintf("%s@%d", it.Key().Key, it.Key().Start.UnixMilli()))
		}
		mustCloseIter(t, it)
		if fmt.Sprint(all) != "[a@3000 b@3000 ab@3000 @4000]" {
			t.Fatalf("FetchAll(3000, 4000) = %v", all)
		}
		if err := ws.Delete("a", ms(3000)); err != nil {
			t.Fatal(err)
		}
		if _, found, _ := ws.Fetch("a", ms(3000)); found {
			t.Fatal("deleted window still there")
		}
		// Changelog: window keys, last one a tombstone.
		if len(rec.recs) != 8 {
			t.Fatalf("%d changelog records, want 8", len(rec.recs))
		}
		last := rec.recs[7]
		k, start, err := DecodeWindowKey([]byte(last.key))
		if err != nil || string(k) != "a" || start != 3000 || last.value != nil || last.partition != 1 {
			t.Fatalf("last changelog record = %+v (%q %d %v)", last, k, start, err)
		}
	})
}

func TestWindowStoreRetentionDropsSegments(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		ws, err := NewWindowStore[string, string]("w", e, strSerde{}, strSerde{},
			WindowOptions{Retention: 10 * time.Second, SegmentInterval: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// Segments of 5s: [0,5s) [5s,10s) [10s,15s) ...
		for _, st := range []int64{0, 1000, 4999, 5000, 9000, 12000} {
			for _, k := range []string{"x", "y"} {
				if err := ws.Put(k, ms(st), "v"); err != nil {
					t.Fatal(err)
				}
			}
		}
		countEngine := func() int {
			it, err := e.Iterate(nil, nil, false)
			if err != nil {
				t.Fatal(err)
			}
			defer it.Close()
			n := 0
			for it.Next() {
				n++
			}
			return n
		}
		if n := countEngine(); n != 12 {
			t.Fatalf("engine holds %d windows, want 12", n)
		}
		// Observed 12000: windows with start <= 2000 are expired but their
		// segment [0,5s) still has unexpired windows (4999): hidden, kept.
		if got := windowsOf(t)(ws.FetchRange("x", ms(0), ms(20000))); fmt.Sprint(got) != "[4999=v 5000=v 9000=v 12000=v]" {
			t.Fatalf("after 12s: %v", got)
		}
		if _, found, _ := ws.Fetch("x", ms(1000)); found {
			t.Fatal("expired window returned by Fetch")
		}
		if n := countEngine(); n != 12 {
			t.Fatalf("segment dropped too early: engine holds %d", n)
		}
		// Observed 15000: all of [0,5s) is expired: the whole segment goes.
		if err := ws.AdvanceTime(ms(15000)); err != nil {
			t.Fatal(err)
		}
		if n := countEngine(); n != 6 {
			t.Fatalf("after dropping segment 0 the engine holds %d, want 6", n)
		}
		// A late write into an expired window is dropped.
		if err := ws.Put("x", ms(3000), "late"); err != nil {
			t.Fatal(err)
		}
		if n := countEngine(); n != 6 {
			t.Fatalf("expired write stored: engine holds %d", n)
		}
		// Time does not go back.
		if err := ws.AdvanceTime(ms(1)); err != nil || ws.ObservedTime().UnixMilli() != 15000 {
			t.Fatalf("ObservedTime = %v (%v)", ws.ObservedTime(), err)
		}
		// A new store over the same engine learns the observed time.
		ws2, err := NewWindowStore[string, string]("w", e, strSerde{}, strSerde{},
			WindowOptions{Retention: 10 * time.Second, SegmentInterval: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if got := ws2.ObservedTime().UnixMilli(); got != 12000 {
			t.Fatalf("reopened ObservedTime = %d, want 12000 (latest window start)", got)
		}
		if err := ws2.AdvanceTime(ms(30000)); err != nil {
			t.Fatal(err)
		}
		if n := countEngine(); n != 0 {
			t.Fatalf("engine holds %d windows after every segment expired", n)
		}
	})
}

func TestWindowStoreRestore(t *testing.T) {
	rec := &recorder{}
	src := NewMemoryEngine()
	defer mustClose(t, src)
	wo := WindowOptions{Retention: time.Hour, SegmentInterval: time.Minute}
	ws, err := NewWindowStore[string, string]("w", src, strSerde{}, strSerde{}, wo, WithChangelog("c", 0, rec))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 500; i++ {
		k := fmt.Sprint("card", i%17)
		if err := ws.Put(k, ms(int64(i)*7919%3_000_000), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if i%9 == 0 {
			if err := ws.Delete(k, ms(int64(i)*7919%3_000_000)); err != nil {
				t.Fatal(err)
			}
		}
	}
	log := &memLog{}
	for _, r := range rec.recs {
		log.append(r.key, r.value)
	}
	res, err := Restore(context.Background(), RestoreConfig{
		Store: "w", Opener: levelDBOpener(t.TempDir(), LDBTestOptions{}), Reader: log,
		Apply: WindowStoreApply(wo), Logger: quietLogger(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
	// Same engine contents as the original store.
	a, _ := src.Iterate(nil, nil, false)
	b, _ := res.Engine.Iterate(nil, nil, false)
	defer a.Close()
	defer b.Close()
	n := 0
	for a.Next() {
		if !b.Next() || !bytes.Equal(a.Key(), b.Key()) || !bytes.Equal(a.Value(), b.Value()) {
			t.Fatalf("restored engine differs at entry %d (%x)", n, a.Key())
		}
		n++
	}
	if b.Next() {
		t.Fatal("restored engine has extra entries")
	}
	if n == 0 {
		t.Fatal("nothing written")
	}
	// A record whose key is not a window key stops the restore.
	bad := &memLog{}
	bad.append("nope", []byte("v"))
	_, err = Restore(context.Background(), RestoreConfig{Store: "w", Opener: MemoryOpener(), Reader: bad, Apply: WindowStoreApply(wo), Logger: quietLogger(nil)})
	if !errors.Is(err, ErrBadWindowKey) {
		t.Fatalf("restore of a bad window key = %v", err)
	}
}

func TestWindowOptionsValidate(t *testing.T) {
	if _, err := NewWindowStore[string, string]("w", NewMemoryEngine(), strSerde{}, strSerde{}, WindowOptions{}); err == nil {
		t.Fatal("zero retention accepted")
	}
	if got := (WindowOptions{Retention: time.Hour}).intervalMs(); got != 30*60*1000 {
		t.Fatalf("default interval = %d", got)
	}
	if got := (WindowOptions{Retention: time.Second}).intervalMs(); got != 60*1000 {
		t.Fatalf("default interval for short retention = %d", got)
	}
}

// iterateCounter is an engine that records the bounds of every Iterate.
type iterateCounter struct {
	Engine
	los [][]byte
}

func (c *iterateCounter) Iterate(lo, hi []byte, reverse bool) (Iterator[[]byte, []byte], error) {
	c.los = append(c.los, lo)
	return c.Engine.Iterate(lo, hi, reverse)
}

// TestWindowStoreDropsEachSegmentOnce advances stream time a millisecond
// at a time, as a stream of records does: the store must look for
// expired windows only when another segment has expired, and then only in
// the segments not dropped yet. Scanning from the first key on every
// advance stepped over the deletion markers of every window dropped so far
// (LevelDB keeps them until compaction): B4 of the benchmarks (a tumbling
// window count) ran at about 1,000 records/s, 90 % of it in that scan.
func TestWindowStoreDropsEachSegmentOnce(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		c := &iterateCounter{Engine: e}
		ws, err := NewWindowStore[string, string]("w", c, strSerde{}, strSerde{},
			WindowOptions{Retention: 10 * time.Second, SegmentInterval: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		opened := len(c.los)
		const end = 30_000
		for now := int64(0); now < end; now++ {
			if now%100 == 0 {
				if err := ws.Put(fmt.Sprint("k", now%7), ms(now), "v"); err != nil {
					t.Fatal(err)
				}
			}
			if err := ws.AdvanceTime(ms(now)); err != nil {
				t.Fatal(err)
			}
		}
		scans := c.los[opened:]
		// One scan each time the last wholly expired segment (of 2 s,
		// retention 10 s) moves on: from segment -6 at time 0 (the cut is
		// then -9,999 ms) to segment 9 at 29,999 ms.
		lastExpired := func(now int64) int64 { return floorDiv(now-10_000+1, 2000) - 1 }
		if want := lastExpired(end-1) - lastExpired(0) + 1; int64(len(scans)) != want {
			t.Fatalf("%d engine scans over %d advances, want %d: one per newly expired segment", len(scans), end, want)
		}
		for i, lo := range scans[1:] {
			if lo == nil {
				t.Fatalf("scan %d starts at the first key, not after the segments already dropped", i+2)
			}
		}
		// What expired is gone; what has not is there.
		if got := windowsOf(t)(ws.FetchRange("k0", ms(0), ms(end))); len(got) == 0 || got[0] < fmt.Sprint(end-10_000) {
			t.Fatalf("k0 windows after the run: %v", got)
		}
		it, err := e.Iterate(nil, appendTime(nil, floorDiv(end-10_000, 2000)-1), false)
		if err != nil {
			t.Fatal(err)
		}
		defer mustCloseIter(t, it)
		if it.Next() {
			t.Fatalf("engine still holds %x from an expired segment", it.Key())
		}
	})
}

// TestWindowStoreShortFetchRangeReadsSegmentsDirectly fetches one key's
// windows over a few segments, as a stream–stream join does for every
// record: the store must open one engine iterator per segment in the
// range, not also a probe per segment for the next one holding keys
// (that doubled the iterators of B8 in the benchmarks, 40 % of the
// worker's CPU in FetchRange). Wide ranges still probe, and both return
// the same windows.
func TestWindowStoreShortFetchRangeReadsSegmentsDirectly(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		c := &iterateCounter{Engine: e}
		ws, err := NewWindowStore[string, string]("w", c, strSerde{}, strSerde{},
			WindowOptions{Retention: time.Minute, SegmentInterval: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		// Windows every 500 ms for keys k0..k2 over 0–20 s, but none in
		// segment 3 (6–8 s).
		for at := int64(0); at < 20_000; at += 500 {
			if at >= 6_000 && at < 8_000 {
				continue
			}
			for k := 0; k < 3; k++ {
				if err := ws.Put(fmt.Sprint("k", k), ms(at), fmt.Sprint("v", at)); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := func(from, to int64) []string {
			var out []string
			for at := from + (500-from%500)%500; at <= to; at += 500 {
				if at < 6_000 || at >= 8_000 {
					out = append(out, fmt.Sprintf("%d=v%d", at, at))
				}
			}
			return out
		}
		for _, tc := range []struct {
			from, to  int64
			iterators int // at most
		}{
			{4_100, 5_900, 1},   // one segment
			{3_000, 5_000, 2},   // two
			{5_000, 9_000, 3},   // three, the middle one empty
			{0, 19_999, 10 * 2}, // ten segments: probed
		} {
			before := len(c.los)
			got := windowsOf(t)(ws.FetchRange("k1", ms(tc.from), ms(tc.to)))
			if w := want(tc.from, tc.to); fmt.Sprint(got) != fmt.Sprint(w) {
				t.Errorf("FetchRange(k1, %d, %d) = %v, want %v", tc.from, tc.to, got, w)
			}
			if n := len(c.los) - before; n > tc.iterators {
				t.Errorf("FetchRange(k1, %d, %d) opened %d engine iterators, want at most %d", tc.from, tc.to, n, tc.iterators)
			}
		}
	})
}
