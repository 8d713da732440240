package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// String returns "topic[partition]".
func (tp TopicPartition) String() string { return fmt.Sprintf("%s[%d]", tp.Topic, tp.Partition) }

// CheckpointFile is the name of the checkpoint file in a task directory.
const CheckpointFile = ".checkpoint"

const checkpointHeader = "brook-checkpoint 1"

// CheckpointError reports a checkpoint file that cannot be read back. The
// checkpoint cannot be trusted: treat it as missing (wipe and restore).
type CheckpointError struct {
	// Path is the checkpoint file.
	Path string
	// Line is the 1-based line that is wrong, or 0 for the whole file.
	Line int
	// Reason says what is wrong.
	Reason string
	// Err is the error that made the file unreadable, if any (nil when
	// its content is wrong).
	Err error
}

// Error implements error.
func (e *CheckpointError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("store: checkpoint %s line %d: %s", e.Path, e.Line, e.Reason)
	}
	return fmt.Sprintf("store: checkpoint %s: %s", e.Path, e.Reason)
}

// Unwrap returns Err.
func (e *CheckpointError) Unwrap() error { return e.Err }

// ReadCheckpoint reads the checkpoint of the task directory dir: for each
// changelog partition, the offset of the next record to restore (every
// record below it is in the local store). A missing file gives an empty
// map and no error; a damaged one gives a *CheckpointError.
func ReadCheckpoint(dir string) (map[TopicPartition]int64, error) {
	path := filepath.Join(dir, CheckpointFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[TopicPartition]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: read checkpoint: %w", err)
	}
	return parseCheckpoint(path, data)
}

// parseCheckpoint parses the format WriteCheckpoint writes:
//
//	brook-checkpoint 1
//	<topic> <partition> <offset>
//	...
//	end <number of entries>
func parseCheckpoint(path string, data []byte) (map[TopicPartition]int64, error) {
	out := map[TopicPartition]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	line, ended := 0, false
	for sc.Scan() {
		line++
		text := sc.Text()
		if ended {
			return nil, &CheckpointError{Path: path, Line: line, Reason: "text after the end line"}
		}
		if line == 1 {
			if text != checkpointHeader {
				return nil, &CheckpointError{Path: path, Line: 1, Reason: fmt.Sprintf("header %q, want %q", text, checkpointHeader)}
			}
			continue
		}
		f := strings.Fields(text)
		if len(f) == 2 && f[0] == "end" {
			n, err := strconv.Atoi(f[1])
			if err != nil || n != len(out) {
				return nil, &CheckpointError{Path: path, Line: line, Reason: fmt.Sprintf("end line says %q entries, read %d", f[1], len(out))}
			}
			ended = true
			continue
		}
		if len(f) != 3 {
			return nil, &CheckpointError{Path: path, Line: line, Reason: fmt.Sprintf("want \"topic partition offset\", got %q", text)}
		}
		p, perr := strconv.ParseInt(f[1], 10, 32)
		off, oerr := strconv.ParseInt(f[2], 10, 64)
		if perr != nil || oerr != nil || p < 0 || off < 0 {
			return nil, &CheckpointError{Path: path, Line: line, Reason: fmt.Sprintf("bad partition or offset in %q", text)}
		}
		tp := TopicPartition{Topic: f[0], Partition: int32(p)}
		if _, dup := out[tp]; dup {
			return nil, &CheckpointError{Path: path, Line: line, Reason: "duplicate entry for " + tp.String()}
		}
		out[tp] = off
	}
	if err := sc.Err(); err != nil {
		return nil, &CheckpointError{Path: path, Reason: err.Error(), Err: err}
	}
	if !ended {
		return nil, &CheckpointError{Path: path, Reason: "no end line (truncated file)"}
	}
	return out, nil
}

// WriteCheckpoint atomically replaces the checkpoint of the task directory
// dir: it writes a temporary file, fsyncs it, renames it over the old one
// and fsyncs the directory, so a crash leaves either the old or the new
// checkpoint, never a mix.
//
// The offsets must not be ahead of the data: flush every engine they
// describe first (FlushAndCheckpoint does both in that order).
func WriteCheckpoint(dir string, offsets map[TopicPartition]int64) error {
	tps := make([]TopicPartition, 0, len(offsets))
	for tp, off := range offsets {
		if strings.ContainsAny(tp.Topic, " \t\r\n") || tp.Topic == "" || tp.Topic == "end" {
			return fmt.Errorf("store: write checkpoint: invalid topic name %q", tp.Topic)
		}
		if off < 0 || tp.Partition < 0 {
			return fmt.Errorf("store: write checkpoint: negative offset %d or partition for %s", off, tp)
		}
		tps = append(tps, tp)
	}
	sort.Slice(tps, func(i, j int) bool {
		if tps[i].Topic != tps[j].Topic {
			return tps[i].Topic < tps[j].Topic
		}
		return tps[i].Partition < tps[j].Partition
	})
	var buf bytes.Buffer
	buf.WriteString(checkpointHeader + "\n")
	for _, tp := range tps {
		fmt.Fprintf(&buf, "%s %d %d\n", tp.Topic, tp.Partition, offsets[tp])
	}
	fmt.Fprintf(&buf, "end %d\n", len(tps))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("store: write checkpoint: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, CheckpointFile), buf.Bytes()); err != nil {
		return fmt.Errorf("store: write checkpoint: %w", err)
	}
	return nil
}

// RemoveCheckpoint deletes the checkpoint of the task directory dir (and
// syncs the directory). A missing file is not an error. Call it before
// wiping or restoring a store, so that a crash in the middle cannot leave a
// checkpoint that describes data that is gone.
func RemoveCheckpoint(dir string) error {
	err := os.Remove(filepath.Join(dir, CheckpointFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: remove checkpoint: %w", err)
	}
	return syncDir(dir)
}

// FlushAndCheckpoint flushes every engine, then writes the checkpoint:
// the order that keeps the checkpoint from ever being ahead of the data.
// Call it after a successful commit and on clean close, with the changelog
// offsets (next offset to restore) the flushed data reflects.
func FlushAndCheckpoint(dir string, engines []Engine, offsets map[TopicPartition]int64) error {
	for _, e := range engines {
		if err := e.Flush(); err != nil {
			return fmt.Errorf("store: flush before checkpoint: %w", err)
		}
	}
	return WriteCheckpoint(dir, offsets)
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
