package store

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckpointErrorUnwraps checks that a checkpoint the scanner cannot
// read (a line longer than it buffers) is a *CheckpointError that keeps
// the scanner's error for errors.Is, not only its text.
func TestCheckpointErrorUnwraps(t *testing.T) {
	dir := t.TempDir()
	data := checkpointHeader + "\n" + strings.Repeat("x", bufio.MaxScanTokenSize+1) + " 0 1\nend 1\n"
	if err := os.WriteFile(filepath.Join(dir, CheckpointFile), []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ReadCheckpoint(dir)
	var ce *CheckpointError
	if !errors.As(err, &ce) {
		t.Fatalf("ReadCheckpoint = %v, want a *CheckpointError", err)
	}
	if !errors.Is(err, bufio.ErrTooLong) {
		t.Fatalf("ReadCheckpoint = %v, does not unwrap to bufio.ErrTooLong", err)
	}
}
