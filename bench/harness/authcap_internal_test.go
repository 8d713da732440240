package harness

import (
	"testing"
	"time"
)

// TestAuthCaptureReference checks B8's reference output against a join
// computed here from the inputs by the definition (a capture joins an
// authorisation of its key when it is 0 to authCaptureAfter later, both
// bounds included), and that the input has every case the workload
// promises: matches at both bounds, captures 1 ms too late, captures
// before their authorisation, partial captures and captures of unknown
// ids, each topic in time order.
func TestAuthCaptureReference(t *testing.T) {
	base := time.UnixMilli(1_700_000_000_000)
	d := makeAuthCapture(40_000, 20, base)
	if len(d.auths) != 20_000 {
		t.Fatalf("%d authorisations, want 20000", len(d.auths))
	}
	byKey := map[string][]record{}
	for i, a := range d.auths {
		byKey[a.key] = append(byKey[a.key], a)
		if i > 0 && a.ts.Before(d.auths[i-1].ts) {
			t.Fatalf("authorisation %d out of time order", i)
		}
	}
	var n int64
	var sum uint64
	perAuth := map[string]int{}
	var atBound, justLate, before, unknown int
	for i, c := range d.captures {
		if i > 0 && c.ts.Before(d.captures[i-1].ts) {
			t.Fatalf("capture %d out of time order", i)
		}
		auths := byKey[c.key]
		if len(auths) == 0 {
			unknown++
		}
		for _, a := range auths {
			switch delay := c.ts.Sub(a.ts); {
			case delay >= 0 && delay <= authCaptureAfter:
				n++
				// The result has the later of the two timestamps.
				ts := c.ts
				if a.ts.After(ts) {
					ts = a.ts
				}
				sum += recordHash([]byte(c.key), append(append([]byte{}, a.value...), c.value...), ts.UnixMilli())
				perAuth[a.key]++
				if delay == authCaptureAfter {
					atBound++
				}
			case delay == authCaptureAfter+time.Millisecond:
				justLate++
			case delay < 0:
				before++
			}
		}
	}
	if got := digestString(n, sum); got != d.digest || n != d.outputs {
		t.Errorf("reference %q (%d outputs), joined here %q", d.digest, d.outputs, got)
	}
	var partial int
	for _, k := range perAuth {
		if k == 2 {
			partial++
		}
	}
	for what, k := range map[string]int{"at the window's end": atBound, "1 ms after it": justLate, "before the authorisation": before, "of unknown ids": unknown, "partial (two per authorisation)": partial} {
		if k == 0 {
			t.Errorf("no captures %s", what)
		}
	}
	if frac := float64(n) / float64(len(d.auths)); frac < 0.85 || frac > 0.95 {
		t.Errorf("%.2f results per authorisation, want about 0.9", frac)
	}
}
