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
	velocity, err := velocityTopology(3)
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
