package topology_test

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files")

// golden compares got with the file at path, or rewrites it with -update.
func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./topology -run %s -update to create it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func TestDescribeGolden(t *testing.T) {
	velocity, err := velocityTopology()
	if err != nil {
		t.Fatal(err)
	}
	words, err := wordCountTopology()
	if err != nil {
		t.Fatal(err)
	}
	// The velocity description is pasted into the README.
	checkGolden(t, filepath.Join("..", "docs", "velocity-describe.txt"), velocity.Describe())
	checkGolden(t, filepath.Join("..", "docs", "velocity-mermaid.txt"), velocity.DescribeMermaid())
	checkGolden(t, filepath.Join("testdata", "wordcount-describe.txt"), words.Describe())
	checkGolden(t, filepath.Join("testdata", "wordcount-mermaid.txt"), words.DescribeMermaid())
}

// A table's nodes show the user's value type, not the internal wrapper
// that carries tombstones.
func TestDescribeTableShowsUserTypes(t *testing.T) {
	b := topology.New()
	topology.Table(b, "customers", "customer-profiles", serde.String(), serde.JSON[customer]())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	got := topo.Describe()
	if strings.Contains(got, "tableEntry") {
		t.Errorf("Describe shows an internal type:\n%s", got)
	}
	want := "Source: customers-source (topics: [customer-profiles]) -> Record[string, topology_test.customer]"
	if !strings.Contains(got, want) {
		t.Errorf("Describe lacks %q:\n%s", want, got)
	}
	if m := topo.DescribeMermaid(); strings.Contains(m, "tableEntry") {
		t.Errorf("DescribeMermaid shows an internal type:\n%s", m)
	}
}

type customer struct{ Name string }

// TestReadmeVelocityExample keeps the README's "What it looks like" in step
// with the code that runs: its topology lines are velocityTopology's (run
// by Example_cardVelocity), in order, and the Describe output it shows is
// the golden file TestDescribeGolden checks.
func TestReadmeVelocityExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section, ok := strings.CutPrefix(string(readme)[strings.Index(string(readme), "## What it looks like"):], "## What it looks like")
	if !ok {
		t.Fatal(`README.md has no "## What it looks like" section`)
	}
	_, block, ok := strings.Cut(section, "```go\n")
	if !ok {
		t.Fatal("README.md: no Go block in \"What it looks like\"")
	}
	block, _, ok = strings.Cut(block, "topo, err := b.Build()")
	if !ok {
		t.Fatal("README.md: the Go block does not build the topology with `topo, err := b.Build()`")
	}
	src, err := os.ReadFile("example_velocity_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(src), "func velocityTopology() (*topology.Topology, error) {\n")
	if !ok {
		t.Fatal("example_velocity_test.go: velocityTopology not found")
	}
	body, _, _ = strings.Cut(body, "return b.Build()")
	trim := func(s string) []string {
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
		return out
	}
	if got, want := trim(block), trim(body); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("README's velocity example differs from velocityTopology:\n--- README\n%s\n--- velocityTopology\n%s",
			strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	golden, err := os.ReadFile(filepath.Join("..", "docs", "velocity-describe.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(section, "```\n"+string(golden)+"```\n") {
		t.Errorf("README's Describe output is not docs/velocity-describe.txt:\n%s", golden)
	}
}
