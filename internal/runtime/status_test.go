package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRecentHandler: the App's handler gets what it would have got; the
// ring keeps the last recentLogSize warnings and errors (even those the
// App's handler drops), with their action apart and every other
// attribute flattened, oldest first.
func TestRecentHandler(t *testing.T) {
	var out bytes.Buffer
	var ring recentLog
	log := slog.New(newRecentHandler(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelError}), &ring))

	log.Info("info is not kept")
	log.With("task", "0_1").WithGroup("g").Warn("a warning", "action", "do this", "n", 3, slog.Group("sub", "a", "x"), "err", errors.New("boom"))
	log.Error("an error", "err", "x"+strings.Repeat("é", maxAttrLen)) // longer than kept, cut inside a rune
	if got := ring.records(); len(got) != 2 {
		t.Fatalf("kept %d records, want 2: %+v", len(got), got)
	}
	w := ring.records()[0]
	if w.Level != slog.LevelWarn || w.Message != "a warning" || w.Action != "" {
		// The action sits in group g: it is "g.action", not the record's
		// action.
		t.Fatalf("warning: %+v", w)
	}
	want := []LogAttr{{"task", "0_1"}, {"g.action", "do this"}, {"g.n", "3"}, {"g.sub.a", "x"}, {"g.err", "boom"}}
	if fmt.Sprint(w.Attrs) != fmt.Sprint(want) {
		t.Fatalf("attrs %v, want %v", w.Attrs, want)
	}
	e := ring.records()[1]
	if v := e.Attrs[0].Value; !strings.HasSuffix(v, "…") || len(v) > maxAttrLen+len("…") || !strings.HasPrefix(v, "xéé") || strings.ContainsRune(v, '\uFFFD') {
		t.Fatalf("long value kept as %d bytes: %.40q…", len(v), v)
	}
	// The App's handler saw only the error (its level).
	if s := out.String(); strings.Contains(s, "a warning") || strings.Contains(s, "info is not kept") || !strings.Contains(s, "an error") {
		t.Fatalf("App's handler got:\n%s", s)
	}

	for i := range recentLogSize + 7 {
		log.Warn(fmt.Sprintf("w%d", i), "action", fmt.Sprintf("act%d", i))
	}
	got := ring.records()
	if len(got) != recentLogSize {
		t.Fatalf("kept %d, want %d", len(got), recentLogSize)
	}
	for i, r := range got {
		n := i + 7
		if r.Message != fmt.Sprintf("w%d", n) || r.Action != fmt.Sprintf("act%d", n) || len(r.Attrs) != 0 {
			t.Fatalf("record %d: %+v, want w%d with action act%d", i, r, n, n)
		}
	}
}

// TestDirSize: the regular files under a folder, at any depth; a missing
// folder is empty, not an error.
func TestDirSize(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	for p, n := range map[string]int{"x": 10, "a/y": 100, "a/b/z": 1000} {
		if err := os.WriteFile(filepath.Join(dir, p), make([]byte, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(dir, "a", "b", "z"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if n, err := dirSize(dir); err != nil || n != 1110 {
		t.Fatalf("dirSize = %d, %v; want 1110", n, err)
	}
	if n, err := dirSize(filepath.Join(dir, "missing")); err != nil || n != 0 {
		t.Fatalf("dirSize(missing) = %d, %v; want 0, nil", n, err)
	}
}
