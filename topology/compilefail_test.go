package topology_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMiswiredDoesNotCompile is the compile-fail test behind the promise
// that typed Node handles reject mis-typed wiring at compile time. It runs
// a real `go build` of testdata/miswired/main.go.txt (placed with -overlay,
// so that it builds inside this module with its go.sum) and expects a type
// error at the Process call; then it fixes the source's value serde and
// expects the same program to build, so the failure is the wiring and
// nothing else.
func TestMiswiredDoesNotCompile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		t.Fatalf("go tool not found at %s: %v", goBin, err)
	}
	src, err := os.ReadFile(filepath.Join("testdata", "miswired", "main.go.txt"))
	if err != nil {
		t.Fatal(err)
	}
	pkgDir, err := filepath.Abs(filepath.Join("testdata", "miswired"))
	if err != nil {
		t.Fatal(err)
	}
	build := func(t *testing.T, code string) (string, error) {
		tmp := t.TempDir()
		mainFile := filepath.Join(tmp, "main.go")
		if err := os.WriteFile(mainFile, []byte(code), 0o644); err != nil {
			t.Fatal(err)
		}
		overlay, err := json.Marshal(map[string]map[string]string{
			"Replace": {filepath.Join(pkgDir, "main.go"): mainFile},
		})
		if err != nil {
			t.Fatal(err)
		}
		overlayFile := filepath.Join(tmp, "overlay.json")
		if err := os.WriteFile(overlayFile, overlay, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(goBin, "build", "-overlay", overlayFile, "-o", filepath.Join(tmp, "bin"), ".")
		cmd.Dir = pkgDir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=readonly", "GOPROXY=off")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	t.Run("miswired", func(t *testing.T) {
		out, err := build(t, string(src))
		if err == nil {
			t.Fatalf("miswired program compiled; typed handles no longer catch mis-typed wiring:\n%s", out)
		}
		// The error must be the type mismatch at the Process call (line 24).
		if !strings.Contains(out, "main.go:24") || !strings.Contains(out, "newSummer") {
			t.Fatalf("build failed, but not with the expected type error at main.go:24:\n%s", out)
		}
		t.Logf("compiler said:\n%s", out)
	})
	t.Run("fixed", func(t *testing.T) {
		const miswired = `topology.Source(b, "amounts", "amounts", serde.String(), serde.String())`
		if !strings.Contains(string(src), miswired) {
			t.Fatal("testdata changed: cannot find the source declaration to fix")
		}
		fixed := strings.Replace(string(src), miswired, `topology.Source(b, "amounts", "amounts", serde.String(), serde.Int64())`, 1)
		if out, err := build(t, fixed); err != nil {
			t.Fatalf("fixed program does not compile: %v\n%s", err, out)
		}
	})
}
