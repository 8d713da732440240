package topology

import (
	"errors"
	"strings"
	"testing"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
)

// Typed handles only point at nodes declared earlier, so the public API
// cannot express a cycle; Build still checks, and this test wires one
// behind the API's back.
func TestBuildRejectsCycle(t *testing.T) {
	b := New()
	s := Source(b, "in", "a", serde.String(), serde.String())
	fwd := processor.Func[string, string, string, string](func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		return ctx.Forward(r)
	})
	p1 := ProcessFunc(b, "p1", s, fwd)
	ProcessFunc(b, "p2", p1, fwd)
	b.nodeByName["p1"].parents = append(b.nodeByName["p1"].parents, parentRef{b: b, name: "p2"})

	_, err := b.Build()
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Code != Cycle || ve.Node != "p1" || !strings.Contains(ve.Detail, "[p1 p2]") {
		t.Fatalf("Build error = %v, want a cycle through p1 and p2", err)
	}
}
