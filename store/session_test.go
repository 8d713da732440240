package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func sessionsOf(t *testing.T) func(it Iterator[Session[string], string], err error) string {
	return func(it Iterator[Session[string], string], err error) string {
		t.Helper()
		return collectSessions(t, it, err)
	}
}

func collectSessions(t *testing.T, it Iterator[Session[string], string], err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer mustCloseIter(t, it)
	var out []string
	for it.Next() {
		k := it.Key()
		out = append(out, fmt.Sprintf("%s@%d-%d=%s", k.Key, k.Start.UnixMilli(), k.End.UnixMilli(), it.Value()))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

func TestSessionStoreFind(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		rec := &recorder{}
		ss, err := NewSessionStore[string, string]("s", e, strSerde{}, strSerde{},
			SessionOptions{Retention: time.Hour, SegmentInterval: 2 * time.Second}, WithChangelog("app-s-changelog", 1, rec))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []struct {
			key        string
			start, end int64
		}{{"a", 0, 1}, {"a", 1000, 2500}, {"a", 5000, 9001}, {"ab", 1000, 2000}, {"", 1000, 1001}, {"b", 2000, 2001}} {
			if err := ss.Put(s.key, ms(s.start), ms(s.end), fmt.Sprint(s.start)); err != nil {
				t.Fatal(err)
			}
		}
		if got := sessionsOf(t)(ss.FindSessions("a", ms(1), ms(100_000))); got != "[a@1000-2500=1000 a@5000-9001=5000]" {
			t.Fatalf("FindSessions(a, 1, 100000) = %v (the session [0, 1) ends before 1)", got)
		}
		if got := sessionsOf(t)(ss.FindSessions("a", ms(0), ms(100_000))); got != "[a@0-1=0 a@1000-2500=1000 a@5000-9001=5000]" {
			t.Fatalf("FindSessions(a, 0, ...) = %v", got)
		}
		// End > from and Start <= to: [2499, 5000] touches both.
		if got := sessionsOf(t)(ss.FindSessions("a", ms(2499), ms(5000))); got != "[a@1000-2500=1000 a@5000-9001=5000]" {
			t.Fatalf("FindSessions(a, 2499, 5000) = %v", got)
		}
		if got := sessionsOf(t)(ss.FindSessions("a", ms(2500), ms(4999))); got != "[]" {
			t.Fatalf("FindSessions in a gap = %v", got)
		}
		if got := sessionsOf(t)(ss.FindSessions("", ms(0), ms(5000))); got != "[@1000-1001=1000]" {
			t.Fatalf("empty key = %v", got)
		}
		if v, ok, err := ss.FetchSession("a", ms(1000), ms(2500)); err != nil || !ok || v != "1000" {
			t.Fatalf("FetchSession = %q %v %v", v, ok, err)
		}
		if err := ss.Remove("a", ms(1000), ms(2500)); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := ss.FetchSession("a", ms(1000), ms(2500)); ok {
			t.Fatal("removed session still there")
		}
		if got := ss.ObservedTime().UnixMilli(); got != 9000 {
			t.Fatalf("ObservedTime = %d, want 9000 (last record of the latest session)", got)
		}
		if err := ss.Put("a", ms(5), ms(5), "x"); err == nil {
			t.Fatal("an empty session was accepted")
		}
		last := rec.recs[len(rec.recs)-1]
		if k, st, en, err := DecodeSessionKey([]byte(last.key)); err != nil || string(k) != "a" || st != 1000 || en != 2500 || last.value != nil || last.topic != "app-s-changelog" {
			t.Fatalf("changelog of the removal: %q %d %d %v %+v", k, st, en, err, last)
		}
	})
}

func TestSessionStoreRetention(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		so := SessionOptions{Retention: 10 * time.Second, SegmentInterval: 5 * time.Second}
		ss, err := NewSessionStore[string, string]("s", e, strSerde{}, strSerde{}, so)
		if err != nil {
			t.Fatal(err)
		}
		for _, end := range []int64{1000, 4999, 5000, 12001} {
			if err := ss.Put("x", ms(end-1), ms(end), "v"); err != nil {
				t.Fatal(err)
			}
		}
		count := func() int {
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
		// Observed 12000: a session ending at end expires once observed
		// >= end + 10s, so end 1000 is gone from reads, end 4999 is not;
		// their segment [0, 5s) stays.
		if got := sessionsOf(t)(ss.FindSessions("x", ms(-100_000), ms(100_000))); got != "[x@4998-4999=v x@4999-5000=v x@12000-12001=v]" {
			t.Fatalf("after 12s: %v", got)
		}
		if _, ok, _ := ss.FetchSession("x", ms(999), ms(1000)); ok {
			t.Fatal("expired session fetched")
		}
		if count() != 4 {
			t.Fatalf("segment dropped early: %d", count())
		}
		// At 14999 the session ending at 4999 expires (4999 + 10s <= 14999)
		// and with it all of segment [0, 5s).
		if err := ss.AdvanceTime(ms(14998)); err != nil || count() != 4 {
			t.Fatalf("at 14998: %d entries (%v)", count(), err)
		}
		if err := ss.AdvanceTime(ms(14999)); err != nil || count() != 2 {
			t.Fatalf("at 14999: %d entries, want 2 (%v)", count(), err)
		}
		// A put of an expired session is dropped.
		if err := ss.Put("x", ms(100), ms(3000), "late"); err != nil || count() != 2 {
			t.Fatalf("expired put stored: %d (%v)", count(), err)
		}
		// Reopened, the store learns its time from the newest segment.
		ss2, err := NewSessionStore[string, string]("s", e, strSerde{}, strSerde{}, so)
		if err != nil {
			t.Fatal(err)
		}
		if got := ss2.ObservedTime().UnixMilli(); got != 12000 {
			t.Fatalf("reopened ObservedTime = %d", got)
		}
		if err := ss2.AdvanceTime(ms(60_000)); err != nil || count() != 0 {
			t.Fatalf("after all expired: %d (%v)", count(), err)
		}
	})
}

func TestSessionStoreRestore(t *testing.T) {
	rec := &recorder{}
	src := NewMemoryEngine()
	defer mustClose(t, src)
	so := SessionOptions{Retention: time.Hour, SegmentInterval: time.Minute}
	ss, err := NewSessionStore[string, string]("s", src, strSerde{}, strSerde{}, so, WithChangelog("c", 0, rec))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		k := fmt.Sprint("card", i%13)
		st := int64(i) * 7919 % 3_000_000
		if err := ss.Put(k, ms(st), ms(st+int64(i%50)+1), fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
		if i%7 == 0 {
			if err := ss.Remove(k, ms(st), ms(st+int64(i%50)+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	log := &memLog{}
	for _, r := range rec.recs {
		log.append(r.key, r.value)
	}
	res, err := Restore(context.Background(), RestoreConfig{
		Store: "s", Opener: levelDBOpener(t.TempDir(), LDBTestOptions{}), Reader: log,
		Apply: SessionStoreApply(so), Logger: quietLogger(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
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
	if b.Next() || n == 0 {
		t.Fatalf("restored engine has extra entries or none (%d)", n)
	}
	bad := &memLog{}
	bad.append("nope", []byte("v"))
	_, err = Restore(context.Background(), RestoreConfig{Store: "s", Opener: MemoryOpener(), Reader: bad, Apply: SessionStoreApply(so), Logger: quietLogger(nil)})
	if !errors.Is(err, ErrBadSessionKey) {
		t.Fatalf("restore of a bad session key = %v", err)
	}
	if _, err := NewSessionStore[string, string]("s", NewMemoryEngine(), strSerde{}, strSerde{}, SessionOptions{}); err == nil {
		t.Fatal("zero retention accepted")
	}
}

func TestTimestampedKeyValueStore(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		rec := &recorder{}
		s := NewTimestampedKeyValueStore[string, string]("t", e, strSerde{}, strSerde{}, WithChangelog("c", 0, rec))
		if err := s.PutWithTimestamp("a", "1", ms(42)); err != nil {
			t.Fatal(err)
		}
		if err := s.Put("b", "2"); err != nil {
			t.Fatal(err)
		}
		if v, ts, ok, err := s.GetWithTimestamp("a"); err != nil || !ok || v != "1" || ts.UnixMilli() != 42 {
			t.Fatalf("GetWithTimestamp(a) = %q %v %v %v", v, ts, ok, err)
		}
		if v, ts, ok, err := s.GetWithTimestamp("b"); err != nil || !ok || v != "2" || !ts.IsZero() {
			t.Fatalf("GetWithTimestamp(b) = %q %v %v %v", v, ts, ok, err)
		}
		if v, ok, err := s.Get("a"); err != nil || !ok || v != "1" {
			t.Fatalf("Get(a) = %q %v %v", v, ok, err)
		}
		it, err := s.All()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for it.Next() {
			got = append(got, it.Key()+"="+it.Value())
		}
		mustCloseIter(t, it)
		if fmt.Sprint(got) != "[a=1 b=2]" {
			t.Fatalf("All = %v", got)
		}
		if len(rec.recs) != 2 || len(rec.recs[0].value) != 9 || readTime(rec.recs[0].value) != 42 {
			t.Fatalf("changelog: %+v", rec.recs)
		}
		// A store opened over the bytes as a plain store would see the
		// prefix; a timestamped one refuses values too short for one.
		if err := e.Put([]byte("c"), []byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Get("c"); err == nil {
			t.Fatal("a value without a timestamp was read")
		}
		if err := s.Delete("a"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.Get("a"); ok {
			t.Fatal("deleted")
		}
	})
}

// TestSessionStoreDropsEachSegmentOnce is TestWindowStoreDropsEachSegmentOnce
// for session stores: one engine scan per newly expired segment, each
// starting after the segments already dropped.
func TestSessionStoreDropsEachSegmentOnce(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		c := &iterateCounter{Engine: e}
		ss, err := NewSessionStore[string, string]("s", c, strSerde{}, strSerde{},
			SessionOptions{Retention: 10 * time.Second, SegmentInterval: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		opened := len(c.los)
		const end = 30_000
		for now := int64(0); now < end; now++ {
			if now%100 == 0 {
				if err := ss.Put(fmt.Sprint("k", now%7), ms(now), ms(now+1), "v"); err != nil {
					t.Fatal(err)
				}
			}
			if err := ss.AdvanceTime(ms(now)); err != nil {
				t.Fatal(err)
			}
		}
		scans := c.los[opened:]
		// Segments (by session end) below floor(cut / 2 s) are dropped,
		// cut = now - 10 s + 1 ms: from below -4 at time 0 to below 10.
		below := func(now int64) int64 { return floorDiv(now-10_000+1, 2000) }
		if want := below(end-1) - below(0) + 1; int64(len(scans)) != want {
			t.Fatalf("%d engine scans over %d advances, want %d: one per newly expired segment", len(scans), end, want)
		}
		for i, lo := range scans[1:] {
			if lo == nil {
				t.Fatalf("scan %d starts at the first key, not after the segments already dropped", i+2)
			}
		}
		if got := sessionsOf(t)(ss.FindSessions("k0", ms(0), ms(end))); got == "[]" {
			t.Fatal("k0 has no live session after the run")
		}
		it, err := e.Iterate(nil, appendTime(nil, below(end-1)), false)
		if err != nil {
			t.Fatal(err)
		}
		defer mustCloseIter(t, it)
		if it.Next() {
			t.Fatalf("engine still holds %x from an expired segment", it.Key())
		}
	})
}
