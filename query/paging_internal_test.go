package query

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/brookstream/brook/store"
)

// modelInstance is an instance of the paging model: its keys, sorted, and
// the largest page it answers (its own WithRangeLimits maximum).
type modelInstance struct {
	keys [][]byte
	max  int
}

// answer is what the handler's local scan returns for a page: the
// instance's first keys in [lo, hi), at most min(limit, max), and
// whether it has more.
func (m modelInstance) answer(lo, hi []byte, limit int) rangePart {
	var p rangePart
	n := min(limit, m.max)
	for _, k := range m.keys {
		if lo != nil && bytes.Compare(k, lo) < 0 || hi != nil && bytes.Compare(k, hi) >= 0 {
			continue
		}
		if len(p.entries) == n {
			p.more = true
			break
		}
		p.entries = append(p.entries, scanEntry{KeyBytes: k})
	}
	return p
}

// TestRangePagingModel is a property test of the paging algorithm
// (continuation tokens, the lower bound they give, and the merge of the
// instances' pages) against a model: random key sets, with the empty key,
// keys that are prefixes of others and keys of 0x00 and 0xff bytes, split
// over one to four instances with random range limits, paged with every
// page size and random bounds, give every key of the range exactly once,
// in order, and a last page without more.
func TestRangePagingModel(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	alphabet := []byte{0x00, 0x01, 'a', 0x7f, 0xfe, 0xff}
	randKey := func() []byte {
		k := make([]byte, rng.IntN(4))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return k
	}
	for iter := 0; iter < 300; iter++ {
		set := map[string]bool{"": rng.IntN(4) > 0}
		for range rng.IntN(40) {
			set[string(randKey())] = true
		}
		var all [][]byte
		insts := make([]modelInstance, 1+rng.IntN(4))
		for i := range insts {
			insts[i].max = 1 + rng.IntN(6)
			if rng.IntN(3) == 0 {
				insts[i].max = 1000
			}
		}
		for k, ok := range set {
			if !ok {
				continue
			}
			all = append(all, []byte(k))
			i := rng.IntN(len(insts))
			insts[i].keys = append(insts[i].keys, []byte(k))
		}
		slices.SortFunc(all, bytes.Compare)
		for i := range insts {
			slices.SortFunc(insts[i].keys, bytes.Compare)
		}

		// Bounds as the handler computes them: from/to, a prefix, or none.
		var lo, hi []byte
		switch rng.IntN(4) {
		case 1:
			lo, hi = randKey(), randKey()
			if rng.IntN(4) == 0 {
				hi = nil
			}
		case 2:
			if p := randKey(); len(p) > 0 {
				lo, hi = p, store.PrefixEnd(p)
			}
		case 3:
			lo = []byte{}
		}
		var want [][]byte
		for _, k := range all {
			if (lo == nil || bytes.Compare(k, lo) >= 0) && (hi == nil || bytes.Compare(k, hi) < 0) {
				want = append(want, k)
			}
		}

		for limit := 1; limit <= len(want)+1; limit++ {
			var got [][]byte
			token := ""
			for pages := 0; ; pages++ {
				if pages > len(want)+1 {
					t.Fatalf("seed %d iter %d limit %d: paging does not end", seed, iter, limit)
				}
				plo, err := afterToken(lo, token)
				if err != nil {
					t.Fatal(err)
				}
				var parts []rangePart
				for _, in := range insts {
					parts = append(parts, in.answer(plo, hi, limit))
				}
				entries, more, err := mergePages(parts, limit)
				if err != nil {
					t.Fatalf("seed %d iter %d limit %d: %v", seed, iter, limit, err)
				}
				if len(entries) > limit || more && len(entries) == 0 {
					t.Fatalf("seed %d iter %d limit %d: page of %d, more %v", seed, iter, limit, len(entries), more)
				}
				for _, e := range entries {
					got = append(got, e.KeyBytes)
				}
				a := page("s", entries, more)
				if a.More != more || (a.Next != "") != more {
					t.Fatalf("answer %+v for more %v", a, more)
				}
				if !more {
					break
				}
				token = a.Next
			}
			if !slices.EqualFunc(got, want, bytes.Equal) {
				t.Fatalf("seed %d iter %d limit %d bounds [%q, %q) over %d instances: got %q, want %q", seed, iter, limit, lo, hi, len(insts), got, want)
			}
		}
	}
}

// TestContinuationTokens checks the token format: never empty (the
// empty key has a token too), round trips, reads the bare base64url
// tokens of earlier versions, and rejects others.
func TestContinuationTokens(t *testing.T) {
	for _, kb := range [][]byte{nil, {}, {0}, {0xff}, []byte("key-001"), {0xff, 0xff, 0x00}} {
		tok := encodeToken(kb)
		if tok == "" {
			t.Fatalf("token of %q is empty", kb)
		}
		got, err := decodeToken(tok)
		if err != nil || !bytes.Equal(got, kb) {
			t.Fatalf("decodeToken(encodeToken(%q)) = %q, %v", kb, got, err)
		}
	}
	if got, err := decodeToken("a2V5LTAwMQ"); err != nil || string(got) != "key-001" {
		t.Fatalf("earlier token: %q, %v", got, err)
	}
	for _, bad := range []string{"%%%", "2.AA", "x.AA", "1.%", "1.AA.BB", "."} {
		if _, err := decodeToken(bad); err == nil {
			t.Errorf("decodeToken(%q) accepted", bad)
		}
	}
	// The first page of an unbounded range starts anywhere; the page
	// after the empty key starts at "\x00".
	if lo, err := afterToken(nil, ""); err != nil || lo != nil {
		t.Fatalf("afterToken(nil, \"\") = %q, %v", lo, err)
	}
	if lo, err := afterToken(nil, encodeToken(nil)); err != nil || !bytes.Equal(lo, []byte{0}) {
		t.Fatalf("after the empty key: %q, %v", lo, err)
	}
	if lo, err := afterToken([]byte("b"), encodeToken([]byte("a"))); err != nil || string(lo) != "b" {
		t.Fatalf("a token below from: %q, %v", lo, err)
	}
}

// TestMergePagesRejectsBadAnswers checks that an instance answer that
// cannot be paged through is an error, not a page that silently skips.
func TestMergePagesRejectsBadAnswers(t *testing.T) {
	e := func(k string) scanEntry { return scanEntry{KeyBytes: []byte(k)} }
	if _, _, err := mergePages([]rangePart{{from: "a", more: true}}, 5); err == nil {
		t.Fatal("more without keys accepted")
	}
	if _, _, err := mergePages([]rangePart{{from: "a", entries: []scanEntry{e("b"), e("a")}}}, 5); err == nil {
		t.Fatal("keys out of order accepted")
	}
	got, more, err := mergePages([]rangePart{
		{from: "a", entries: []scanEntry{e("a"), e("c"), e("e")}},
		{from: "b", entries: []scanEntry{e("b")}, more: true},
	}, 5)
	if err != nil || !more || len(got) != 2 || string(got[1].KeyBytes) != "b" {
		t.Fatalf("merge stops at the smallest last key of an instance with more: %q, %v, %v", got, more, err)
	}
}
