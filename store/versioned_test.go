package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func newVersioned(t *testing.T, e Engine, retention time.Duration, opts ...Option) VersionedKeyValueStore[string, string] {
	t.Helper()
	s, err := NewVersionedKeyValueStore[string, string]("rates", e, strSerde{}, strSerde{}, VersionedOptions{HistoryRetention: retention}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustPutVersion(t *testing.T, s VersionedKeyValueStore[string, string], k, v string, at int64, want PutResult) {
	t.Helper()
	got, err := s.Put(k, v, ms(at))
	if err != nil || got != want {
		t.Fatalf("Put(%s, %s, %d) = %v, %v; want %v", k, v, at, got, err, want)
	}
}

// asOf renders GetAsOf as "value[from,to)" or "-".
func asOf(t *testing.T, s VersionedKeyValueStore[string, string], k string, at int64) string {
	t.Helper()
	r, found, err := s.GetAsOf(k, ms(at))
	if err != nil {
		t.Fatal(err)
	}
	return renderVersion(r, found)
}

func renderVersion(r VersionedRecord[string], found bool) string {
	if !found {
		return "-"
	}
	to := "now"
	if !r.ValidTo.IsZero() {
		to = fmt.Sprint(r.ValidTo.UnixMilli())
	}
	return fmt.Sprintf("%s[%d,%s)", r.Value, r.ValidFrom.UnixMilli(), to)
}

// TestVersionedStoreLookups: GetAsOf finds the version valid at a time:
// none before the first version, the right one between versions and at
// their boundaries, none under a tombstone; an out-of-order put is filed
// in the history by its timestamp and does not change the latest value.
func TestVersionedStoreLookups(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		s := newVersioned(t, e, time.Hour)
		mustPutVersion(t, s, "EUR", "1.10", 1000, PutLatest)
		mustPutVersion(t, s, "EUR", "1.20", 2000, PutLatest)
		if r, err := s.Delete("EUR", ms(3000)); err != nil || r != PutLatest {
			t.Fatalf("Delete = %v, %v", r, err)
		}
		mustPutVersion(t, s, "EUR", "1.40", 4000, PutLatest)
		mustPutVersion(t, s, "EUR", "1.15", 1500, PutHistory) // out of order
		mustPutVersion(t, s, "GBP", "0.90", 2500, PutLatest)
		for _, c := range []struct {
			key  string
			at   int64
			want string
		}{
			{"EUR", 999, "-"},
			{"EUR", 1000, "1.10[1000,1500)"},
			{"EUR", 1499, "1.10[1000,1500)"},
			{"EUR", 1500, "1.15[1500,2000)"},
			{"EUR", 2999, "1.20[2000,3000)"},
			{"EUR", 3000, "-"},
			{"EUR", 3999, "-"},
			{"EUR", 4000, "1.40[4000,now)"},
			{"EUR", 9999, "1.40[4000,now)"},
			{"GBP", 2000, "-"},
			{"GBP", 2500, "0.90[2500,now)"},
			{"USD", 2500, "-"},
		} {
			if got := asOf(t, s, c.key, c.at); got != c.want {
				t.Errorf("GetAsOf(%s, %d) = %s, want %s", c.key, c.at, got, c.want)
			}
		}
		if r, found, err := s.Get("EUR"); err != nil || renderVersion(r, found) != "1.40[4000,now)" {
			t.Errorf("Get(EUR) = %s, %v", renderVersion(r, found), err)
		}
		// Replacing a version at the same time.
		mustPutVersion(t, s, "EUR", "1.16", 1500, PutHistory)
		if got := asOf(t, s, "EUR", 1700); got != "1.16[1500,2000)" {
			t.Errorf("after replace: %s", got)
		}
		// A latest tombstone: Get finds nothing.
		if _, err := s.Delete("GBP", ms(2600)); err != nil {
			t.Fatal(err)
		}
		if _, found, err := s.Get("GBP"); err != nil || found {
			t.Errorf("Get(GBP) after delete found=%v err=%v", found, err)
		}
		if got := asOf(t, s, "GBP", 2550); got != "0.90[2500,2600)" {
			t.Errorf("GBP before its deletion: %s", got)
		}
		if s.ObservedTime() != ms(4000) {
			t.Errorf("ObservedTime = %v", s.ObservedTime())
		}
	})
}

// countPrefix counts the engine keys starting with p.
func countPrefix(t *testing.T, e Engine, p byte) int {
	t.Helper()
	it, err := e.Iterate([]byte{p}, []byte{p + 1}, false)
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

// TestVersionedStoreRetention: lookups older than observed time minus
// the retention find nothing, puts that old are refused (PutExpired),
// history that no lookup can reach any more is dropped, and a key's
// latest value is kept however old.
func TestVersionedStoreRetention(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		s := newVersioned(t, e, 10*time.Second)
		mustPutVersion(t, s, "old", "kept", 0, PutLatest)
		mustPutVersion(t, s, "EUR", "a", 1000, PutLatest)
		mustPutVersion(t, s, "EUR", "b", 5000, PutLatest)
		mustPutVersion(t, s, "EUR", "c", 9000, PutLatest)
		mustPutVersion(t, s, "GBP", "x", 2000, PutLatest)
		if _, err := s.Delete("GBP", ms(3000)); err != nil {
			t.Fatal(err)
		}
		if n := countPrefix(t, e, verData); n != 6 {
			t.Fatalf("%d versions stored, want 6", n)
		}
		mustPutVersion(t, s, "EUR", "d", 16000, PutLatest) // cutoff 6000
		// EUR a [1000,5000) and GBP's x [2000,3000) and tombstone @3000
		// are unreachable now.
		if n := countPrefix(t, e, verData); n != 4 {
			t.Errorf("%d versions stored after expiry, want 4 (old, EUR b, c, d)", n)
		}
		for at, want := range map[int64]string{5999: "-", 6000: "b[5000,9000)", 9000: "c[9000,16000)", 16000: "d[16000,now)"} {
			if got := asOf(t, s, "EUR", at); got != want {
				t.Errorf("GetAsOf(EUR, %d) = %s, want %s", at, got, want)
			}
		}
		if got := asOf(t, s, "old", 6000); got != "kept[0,now)" {
			t.Errorf("the latest value of an old key: %s", got)
		}
		mustPutVersion(t, s, "EUR", "too-late", 5999, PutExpired)
		mustPutVersion(t, s, "EUR", "just-in-time", 6000, PutHistory)
		if got := asOf(t, s, "EUR", 7000); got != "just-in-time[6000,9000)" {
			t.Errorf("GetAsOf(EUR, 7000) = %s", got)
		}
	})
}

// versionedModel is the reference: every version ever put within
// retention, looked up naively.
type versionedModel struct {
	versions  map[string]map[int64]*string // nil: tombstone
	observed  int64
	retention int64
}

func (m *versionedModel) put(k string, v *string, at int64) PutResult {
	if m.observed != math.MinInt64 && at < m.observed-m.retention {
		return PutExpired
	}
	if m.versions[k] == nil {
		m.versions[k] = map[int64]*string{}
	}
	m.versions[k][at] = v
	m.observed = max(m.observed, at)
	for t := range m.versions[k] {
		if t > at {
			return PutHistory
		}
	}
	return PutLatest
}

func (m *versionedModel) asOf(k string, at int64) string {
	if m.observed != math.MinInt64 && at < m.observed-m.retention {
		return "-"
	}
	var times []int64
	for t := range m.versions[k] {
		times = append(times, t)
	}
	slices.Sort(times)
	i := -1
	for j, t := range times {
		if t <= at {
			i = j
		}
	}
	if i < 0 || m.versions[k][times[i]] == nil {
		return "-"
	}
	to := "now"
	if i+1 < len(times) {
		to = fmt.Sprint(times[i+1])
	}
	return fmt.Sprintf("%s[%d,%s)", *m.versions[k][times[i]], times[i], to)
}

// checkIndex verifies the history index holds exactly one entry per
// stored version that has an expiry, at that expiry, and that no stored
// version is already expired.
func checkIndex(t *testing.T, e Engine, observed, retention int64) {
	t.Helper()
	it, err := e.Iterate([]byte{verData}, []byte{verData + 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	type ver struct {
		key  string
		from int64
		tomb bool
	}
	var vs []ver
	for it.Next() {
		k := it.Key()
		n := int(binary.BigEndian.Uint32(k[1:]))
		vs = append(vs, ver{string(k[5 : 5+n]), readTime(k[5+n:]), it.Value()[0] == verDeletion})
	}
	it.Close()
	want := map[string]bool{}
	for i, v := range vs {
		exp, has := v.from, v.tomb
		if !v.tomb && i+1 < len(vs) && vs[i+1].key == v.key {
			exp, has = vs[i+1].from, true
		}
		if !has {
			continue
		}
		if exp <= observed-retention {
			t.Fatalf("version %s@%d expired at %d is still stored (observed %d)", v.key, v.from, exp, observed)
		}
		want[string(indexKey(exp, []byte(v.key), v.from))] = true
	}
	it, err = e.Iterate([]byte{verIndex}, []byte{verIndex + 1}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	got := 0
	for it.Next() {
		got++
		if !want[string(it.Key())] {
			t.Fatalf("stale or stray index entry %x", it.Key())
		}
	}
	if got != len(want) {
		t.Fatalf("%d index entries, want %d", got, len(want))
	}
}

// TestVersionedStoreMatchesModel drives random puts and deletes (in and
// out of order, some beyond retention) into the store and a naive model,
// then checks every lookup in the retention window, the exactness of the
// history index, and a restore from the compacted changelog.
func TestVersionedStoreMatchesModel(t *testing.T) {
	bothEngines(t, func(t *testing.T, e Engine) {
		const retention = 500
		rec := &recorder{}
		s := newVersioned(t, e, retention*time.Millisecond, WithChangelog("app-rates-changelog", 0, rec))
		m := &versionedModel{versions: map[string]map[int64]*string{}, observed: math.MinInt64, retention: retention}
		rng := rand.New(rand.NewPCG(1, 2))
		keys := []string{"a", "ab", "b", "c"} // "a" is a prefix of "ab"
		now := int64(0)
		for i := range 3000 {
			k := keys[rng.IntN(len(keys))]
			now += int64(rng.IntN(20))
			at := now - int64(rng.IntN(700)) // out of order, sometimes beyond retention
			var got PutResult
			var err error
			var v *string
			if rng.IntN(6) == 0 {
				got, err = s.Delete(k, ms(at))
			} else {
				str := fmt.Sprint("v", i)
				v = &str
				got, err = s.Put(k, str, ms(at))
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := m.put(k, v, at); got != want {
				t.Fatalf("op %d: put(%s, %d) = %v, model %v", i, k, at, got, want)
			}
			if i%500 == 499 {
				checkIndex(t, e, m.observed, retention)
			}
		}
		check := func(s VersionedKeyValueStore[string, string]) {
			t.Helper()
			for _, k := range keys {
				for at := m.observed - retention - 3; at <= m.observed+3; at++ {
					if got, want := asOf(t, s, k, at), m.asOf(k, at); got != want {
						t.Fatalf("GetAsOf(%s, %d) = %s, model %s", k, at, got, want)
					}
				}
			}
		}
		check(s)
		checkIndex(t, e, m.observed, retention)
		// Restore from the changelog as compaction leaves it.
		latest := map[string][]byte{}
		var order []string
		for _, r := range rec.recs {
			if _, ok := latest[r.key]; !ok {
				order = append(order, r.key)
			}
			latest[r.key] = r.value
		}
		log := &memLog{}
		for _, k := range order {
			if latest[k] != nil {
				log.append(k, latest[k])
			}
		}
		res, err := Restore(context.Background(), RestoreConfig{
			Store: "rates", Opener: MemoryOpener(), Reader: log, Logger: quietLogger(nil),
		})
		if err != nil {
			t.Fatal(err)
		}
		defer mustClose(t, res.Engine)
		r := newVersioned(t, res.Engine, retention*time.Millisecond)
		if r.ObservedTime() != s.ObservedTime() {
			t.Fatalf("restored ObservedTime %v, want %v", r.ObservedTime(), s.ObservedTime())
		}
		check(r)
		checkIndex(t, res.Engine, m.observed, retention)
	})
}
