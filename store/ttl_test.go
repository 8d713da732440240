package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestTTLStoreExpiry(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		rec := &recorder{}
		s, err := NewTTLStore[string, string]("dedup", e, strSerde{}, strSerde{}, TTLOptions{TTL: 10 * time.Second}, WithChangelog("app-dedup-changelog", 2, rec))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Put("early", "x"); !errors.Is(err, ErrNoStreamTime) {
			t.Fatalf("Put before any time = %v, want ErrNoStreamTime", err)
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(s.PutAt("p1", "a", ms(1000)))  // expires at 11000
		must(s.PutAt("p2", "b", ms(5000)))  // expires at 15000
		must(s.PutAt("p3", "c", ms(3000)))  // out of order: expires at 13000
		must(s.PutAt("p1", "a2", ms(6000))) // refreshed: expires at 16000
		must(s.Put("p4", "d"))              // at observed time 6000: 16000
		if v, found, err := s.Get("p3"); err != nil || !found || v != "c" {
			t.Fatalf("Get(p3) = %q %v %v", v, found, err)
		}
		n, err := s.AdvanceTime(ms(13000))
		if err != nil || n != 1 {
			t.Fatalf("AdvanceTime(13000) expired %d (%v), want 1 (p3; p1's old expiry is stale)", n, err)
		}
		if _, found, _ := s.Get("p3"); found {
			t.Fatal("p3 still there after expiry")
		}
		if v, found, _ := s.Get("p1"); !found || v != "a2" {
			t.Fatalf("refreshed p1 expired with its old expiry: %q %v", v, found)
		}
		// Expired but not yet purged entries are hidden.
		n, err = s.AdvanceTime(ms(15000))
		if err != nil || n != 1 {
			t.Fatalf("AdvanceTime(15000) expired %d (%v), want 1 (p2)", n, err)
		}
		it, err := s.All()
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for it.Next() {
			keys = append(keys, it.Key()+"="+it.Value())
		}
		mustCloseIter(t, it)
		if fmt.Sprint(keys) != "[p1=a2 p4=d]" {
			t.Fatalf("All = %v", keys)
		}
		// PutAt far ahead expires the rest on the way.
		must(s.PutAt("p5", "e", ms(40000)))
		if _, found, _ := s.Get("p1"); found {
			t.Fatal("p1 alive after time passed its expiry")
		}
		if c, err := s.ApproximateCount(); err != nil || c != 1 {
			t.Fatalf("ApproximateCount = %d %v, want 1", c, err)
		}
		// Expiry wrote tombstones to the changelog.
		var tombs []string
		for _, r := range rec.recs {
			if r.topic != "app-dedup-changelog" || r.partition != 2 {
				t.Fatalf("changelog record to %s[%d]", r.topic, r.partition)
			}
			if r.value == nil {
				tombs = append(tombs, r.key)
			}
		}
		if fmt.Sprint(tombs) != "[p3 p2 p1 p4]" {
			t.Fatalf("tombstones = %v, want [p3 p2 p1 p4]", tombs)
		}
		// A put that is already expired is dropped.
		must(s.PutAt("old", "z", ms(100)))
		if _, found, _ := s.Get("old"); found {
			t.Fatal("expired-on-arrival entry stored")
		}
		if v, found, err := s.PutIfAbsent("p5", "other"); err != nil || !found || v != "e" {
			t.Fatalf("PutIfAbsent(p5) = %q %v %v", v, found, err)
		}
	})
}

func TestTTLStoreRestore(t *testing.T) {
	rec := &recorder{}
	src := NewMemoryEngine()
	defer mustClose(t, src)
	o := TTLOptions{TTL: time.Minute}
	s, err := NewTTLStore[string, string]("t", src, strSerde{}, strSerde{}, o, WithChangelog("c", 0, rec))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 300; i++ {
		if err := s.PutAt(fmt.Sprint("k", i%40), fmt.Sprint(i), ms(int64(i)*1000)); err != nil {
			t.Fatal(err)
		}
	}
	log := &memLog{}
	for _, r := range rec.recs {
		log.append(r.key, r.value)
	}
	res, err := Restore(context.Background(), RestoreConfig{
		Store: "t", Opener: levelDBOpener(t.TempDir(), LDBTestOptions{}), Reader: log,
		Apply: TTLStoreApply(), Logger: quietLogger(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
	r, err := NewTTLStore[string, string]("t", res.Engine, strSerde{}, strSerde{}, o)
	if err != nil {
		t.Fatal(err)
	}
	if r.ObservedTime() != s.ObservedTime() {
		t.Fatalf("restored ObservedTime %v, want %v", r.ObservedTime(), s.ObservedTime())
	}
	for i := 0; i < 40; i++ {
		k := fmt.Sprint("k", i)
		v1, f1, _ := s.Get(k)
		v2, f2, _ := r.Get(k)
		if v1 != v2 || f1 != f2 {
			t.Fatalf("%s: original %q %v, restored %q %v", k, v1, f1, v2, f2)
		}
	}
	// The expiry index was rebuilt: advancing time expires restored data.
	n, err := r.AdvanceTime(ms(10_000_000))
	if err != nil || n != 40 {
		t.Fatalf("restored store expired %d (%v), want 40", n, err)
	}
}

// TestTTLStoreExpiryScansFromLastExpiry advances stream time a millisecond
// at a time, as a stream of records does: each scan of the expiry index
// must start after the time the previous one reached, not at the index's
// first key, where it would step over the deletion markers of every entry
// expired so far (LevelDB keeps them until compaction).
func TestTTLStoreExpiryScansFromLastExpiry(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		c := &iterateCounter{Engine: e}
		s, err := NewTTLStore[string, string]("dedup", c, strSerde{}, strSerde{}, TTLOptions{TTL: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		opened := len(c.los)
		const end = 5_000
		puts, expired := 0, 0
		for now := int64(1); now <= end; now++ {
			n, err := s.AdvanceTime(ms(now))
			if err != nil {
				t.Fatal(err)
			}
			expired += n
			if now%10 == 0 {
				if err := s.PutAt(fmt.Sprint("id", now), "v", ms(now)); err != nil {
					t.Fatal(err)
				}
				puts++
			}
		}
		// Ids put at 10, 20, ... expire a second later: those put up to
		// end - 1 s are gone, each counted once.
		if want := (end - 1000) / 10; expired != want {
			t.Fatalf("%d of %d ids expired, want %d", expired, puts, want)
		}
		scans := c.los[opened:]
		if len(scans) < 2 {
			t.Fatalf("%d scans", len(scans))
		}
		for i, lo := range scans[1:] {
			if len(lo) != 9 {
				t.Fatalf("scan %d starts at %x, the index's first key, not after the time already expired", i+2, lo)
			}
			if prev := scans[i]; len(prev) == 9 && readTime(lo[1:]) <= readTime(prev[1:]) {
				t.Fatalf("scan %d starts at %d, not after the previous one's %d", i+2, readTime(lo[1:]), readTime(prev[1:]))
			}
		}
		if _, found, _ := s.Get(fmt.Sprint("id", end)); !found {
			t.Fatalf("id%d expired early", end)
		}
	})
}
