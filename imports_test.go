package brook_test

import (
	"os/exec"
	"strings"
	"testing"
)

// importRule forbids pkg (a package of this module) from depending,
// directly or through any chain of imports, on any package whose import
// path equals or starts with one of the forbidden prefixes.
type importRule struct {
	pkg       string
	forbidden []string
	why       string
}

const mod = "github.com/brookstream/brook/"

var (
	heavy = []string{
		"github.com/linkedin/goavro",
		"github.com/syndtr/goleveldb",
		"github.com/riferrei/srclient",
		"github.com/IBM/sarama",
		"net/http",
		mod + "serde/avro",
		mod + "store/leveldb",
	}
	upper = []string{
		mod + "topology",
		mod + "internal/runtime",
		mod + "testutil",
	}
)

// importRules are the import rules of docs/DESIGN.md ("Package layout and
// import rules").
var importRules = []importRule{
	{"serde", append(append([]string{mod + "processor", mod + "store"}, upper...), heavy...),
		"serde is the light leaf: Serde, primitives, JSON"},
	{"store", append(append([]string(nil), upper...), heavy...),
		"store holds the interfaces and the memory engine; LevelDB lives in store/leveldb"},
	{"processor", append(append([]string(nil), upper...), heavy...),
		"writing a Processor must not link Avro, LevelDB, Kafka clients or HTTP"},
	{"serde/avro", append([]string{mod + "processor", mod + "store"}, upper...),
		"the Avro serde knows nothing of the runtime"},
	{"store/leveldb", append([]string{"github.com/linkedin/goavro", mod + "serde/avro", mod + "processor"}, upper...),
		"the LevelDB engine knows nothing of Avro, processors or the runtime"},
	{"partition", upper, "the partitioner is a leaf producers outside brook use"},
	{"metrics", append(append([]string{
		mod + "processor", mod + "store", mod + "serde", mod + "query", mod + "partition", mod + "internal",
	}, upper...), heavy...), "metrics is the measurement surface: the standard library only, so that adapters (Prometheus) and programs can read it without linking brook's runtime"},
	{"internal/meter", append(append([]string{
		mod + "processor", mod + "store", mod + "serde", mod + "query", mod + "partition",
	}, upper...), heavy...), "the task core and the query handler update the meter: it needs nothing but package metrics"},
	{"query", []string{mod + "topology", mod + "testutil", "github.com/linkedin/goavro", mod + "serde/avro"},
		"interactive queries reach the App through query.App (never package topology) and serdes through serde.Serde"},
	{"internal/task", append([]string{
		"github.com/linkedin/goavro", "github.com/syndtr/goleveldb", mod + "serde/avro", mod + "store/leveldb",
	}, upper...), "the task core talks to serdes and engines through interfaces"},
}

// deps lists every package pkg depends on (not its tests), itself included.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("go list -deps ./%s: %v\n%s", pkg, err, ee.Stderr)
		}
		t.Fatalf("go list -deps ./%s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestImportRules fails when a package links something its rule forbids,
// naming the package, the forbidden dependency and the rule's reason.
func TestImportRules(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("the go command is not on PATH")
	}
	for _, r := range importRules {
		t.Run(strings.ReplaceAll(r.pkg, "/", "_"), func(t *testing.T) {
			all := deps(t, r.pkg)
			if len(all) == 0 {
				t.Fatalf("go list -deps ./%s listed nothing", r.pkg)
			}
			for _, d := range all {
				for _, f := range r.forbidden {
					if d == f || strings.HasPrefix(d, f+"/") {
						t.Errorf("%s depends on %s (forbidden: %s)", mod+r.pkg, d, r.why)
					}
				}
			}
		})
	}
}
