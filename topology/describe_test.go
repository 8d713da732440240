package topology_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
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
