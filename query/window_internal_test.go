package query

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWindowSortKey checks that window sort keys order windows by
// serialized key (a key before the keys it is a prefix of, zero bytes
// included), then by start (negative starts first), and that they parse
// back.
func TestWindowSortKey(t *testing.T) {
	type win struct {
		kb    []byte
		start int64
	}
	var wins []win
	rng := rand.New(rand.NewPCG(1, 2))
	starts := []int64{math.MinInt64, -1000, -1, 0, 1, 59_999, 60_000, math.MaxInt64}
	for i := 0; i < 400; i++ {
		kb := make([]byte, rng.IntN(4))
		for j := range kb {
			kb[j] = []byte{0, 1, 0xFF, 'a'}[rng.IntN(4)]
		}
		wins = append(wins, win{kb, starts[rng.IntN(len(starts))]})
	}
	byWindow := func(a, b win) int {
		if c := bytes.Compare(a.kb, b.kb); c != 0 {
			return c
		}
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	}
	bySortKey := func(a, b win) int {
		return bytes.Compare(windowSortKey(a.kb, a.start), windowSortKey(b.kb, b.start))
	}
	want := slices.Clone(wins)
	slices.SortStableFunc(want, byWindow)
	got := slices.Clone(wins)
	slices.SortStableFunc(got, bySortKey)
	for i := range want {
		if byWindow(want[i], got[i]) != 0 {
			t.Fatalf("position %d: sort keys give %x@%d, want %x@%d", i, got[i].kb, got[i].start, want[i].kb, want[i].start)
		}
	}
	for _, w := range wins {
		kb, start, err := parseWindowSortKey(windowSortKey(w.kb, w.start))
		if err != nil || !bytes.Equal(kb, w.kb) || start != w.start {
			t.Fatalf("%x@%d parsed as %x@%d, %v", w.kb, w.start, kb, start, err)
		}
	}
	for _, bad := range [][]byte{nil, {}, {'a'}, {'a', 0}, {'a', 0, 2}, append([]byte{'a', 0, 1}, 1, 2, 3), append(windowSortKey([]byte("a"), 5), 0)} {
		if _, _, err := parseWindowSortKey(bad); err == nil {
			t.Errorf("parseWindowSortKey(%x) accepted", bad)
		}
	}
}

// TestParseWindowTime checks the time bounds of window queries: epoch
// milliseconds or RFC 3339 (an unescaped "+" offset, read as a space,
// included), never finer than a millisecond.
func TestParseWindowTime(t *testing.T) {
	t0 := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	for _, tc := range []struct {
		text string
		want int64
		err  string
	}{
		{"0", 0, ""},
		{"-1", -1, ""},
		{"1714564800000", t0, ""},
		{"2024-05-01T12:00:00Z", t0, ""},
		{"2024-05-01T12:00:00.250Z", t0 + 250, ""},
		{"2024-05-01T14:00:00+02:00", t0, ""},
		{"2024-05-01T14:00:00 02:00", t0, ""},
		{"2024-05-01T10:00:00-02:00", t0, ""},
		{"2024-05-01T12:00:00.000Z", t0, ""},
		{"2024-05-01T12:00:00.0005Z", 0, "finer than a millisecond"},
		{"99999999999999999999", 0, "out of range"},
		{"", 0, "neither RFC 3339"},
		{"-", 0, "neither RFC 3339"},
		{"yesterday", 0, "neither RFC 3339"},
		{"2024-05-01", 0, "neither RFC 3339"},
		{"1.5", 0, "neither RFC 3339"},
	} {
		got, err := parseWindowTime("from", tc.text)
		if tc.err == "" {
			if err != nil || got != tc.want {
				t.Errorf("%q: %d, %v; want %d", tc.text, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "from") {
			t.Errorf("%q: %d, %v; want an error about %q naming the parameter", tc.text, got, err, tc.err)
		}
	}
	// The unbounded sides reach the store as times that keep their
	// milliseconds.
	for _, ms := range []int64{math.MinInt64, math.MaxInt64} {
		if got := time.UnixMilli(ms).UnixMilli(); got != ms {
			t.Errorf("time.UnixMilli(%d).UnixMilli() = %d", ms, got)
		}
	}
}

// TestFirstN checks the page selection of window answers against a
// model: the first n of random distinct keys, in any order, for every n.
func TestFirstN(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for round := 0; round < 300; round++ {
		count := rng.IntN(60)
		seen := map[string]bool{}
		var keys [][]byte
		for len(keys) < count {
			k := []byte{byte(rng.IntN(256)), byte(rng.IntN(4))}
			if !seen[string(k)] {
				seen[string(k)] = true
				keys = append(keys, k)
			}
		}
		n := 1 + rng.IntN(12)
		f := newFirstN(n, func(b []byte) []byte { return b })
		for _, k := range keys {
			if f.admits(k) {
				f.add(k)
			}
		}
		want := slices.Clone(keys)
		slices.SortFunc(want, bytes.Compare)
		want = want[:min(n, len(want))]
		if got := f.result(); !slices.EqualFunc(got, want, bytes.Equal) {
			t.Fatalf("first %d of %x: %x; want %x", n, keys, got, want)
		}
	}
}

// FuzzWindowParams feeds the parsers of window query parameters (time
// bounds and continuation tokens) arbitrary text: they never panic, an
// accepted time is whole milliseconds of the text's instant, and an
// accepted token is one windowSortKey writes.
func FuzzWindowParams(f *testing.F) {
	for _, s := range []string{"0", "-1", "1714564800000", "2024-05-01T12:00:00Z", "2024-05-01T14:00:00 02:00",
		"2024-05-01T12:00:00.0005Z", "1." + "YQABAAAAAAAAAAU", "1.", "x.y", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if ms, err := parseWindowTime("from", text); err == nil {
			if tm, perr := time.Parse(time.RFC3339Nano, strings.Replace(text, " ", "+", 1)); perr == nil && tm.UnixMilli() != ms {
				t.Fatalf("%q read as %d, is %d", text, ms, tm.UnixMilli())
			}
		}
		if b, err := decodeToken(text); err == nil {
			if kb, start, err := parseWindowSortKey(b); err == nil && !bytes.Equal(windowSortKey(kb, start), b) {
				t.Fatalf("token %q read as %x@%d, which writes %x", text, kb, start, windowSortKey(kb, start))
			}
		}
	})
}
