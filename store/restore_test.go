package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// memLog is an in-memory changelog partition implementing ChangelogReader.
type memLog struct {
	begin int64
	recs  []ChangelogRecord // ascending offsets >= begin, with gaps allowed
	next  int64             // end offset
	batch int
	reads int
}

func (l *memLog) append(key string, value []byte) {
	l.recs = append(l.recs, ChangelogRecord{Offset: l.next, Key: []byte(key), Value: value})
	l.next++
}

func (l *memLog) BeginOffset(context.Context) (int64, error) { return l.begin, nil }
func (l *memLog) EndOffset(context.Context) (int64, error)   { return l.next, nil }

func (l *memLog) Read(ctx context.Context, from, to int64, fn func([]ChangelogRecord) error) error {
	l.reads++
	if from < l.begin {
		return fmt.Errorf("read %d: %w", from, ErrChangelogTruncated)
	}
	i := sort.Search(len(l.recs), func(i int) bool { return l.recs[i].Offset >= from })
	bs := l.batch
	if bs <= 0 {
		bs = 777
	}
	for i < len(l.recs) && l.recs[i].Offset < to {
		j := i
		for j < len(l.recs) && j-i < bs && l.recs[j].Offset < to {
			j++
		}
		if err := fn(l.recs[i:j]); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// model replays the log into a map, as a restore must.
func (l *memLog) model() map[string]string {
	m := map[string]string{}
	for _, r := range l.recs {
		if r.Value == nil {
			delete(m, string(r.Key))
		} else {
			m[string(r.Key)] = string(r.Value)
		}
	}
	return m
}

// fill appends n writes over keys key0..key<keys-1>, about a tenth of them
// tombstones.
func (l *memLog) fill(rng *rand.Rand, n, keys int) {
	for i := 0; i < n; i++ {
		k := fmt.Sprintf("key%06d", rng.IntN(keys))
		if rng.IntN(10) == 0 {
			l.append(k, nil)
		} else {
			l.append(k, []byte(fmt.Sprintf("v%d", i)))
		}
	}
}

func assertEngineEquals(t *testing.T, e Engine, want map[string]string) {
	t.Helper()
	it, err := e.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for it.Next() {
		w, ok := want[string(it.Key())]
		if !ok {
			t.Fatalf("engine has key %q the changelog does not", it.Key())
		}
		if w != string(it.Value()) {
			t.Fatalf("key %q = %q, want %q", it.Key(), it.Value(), w)
		}
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Fatalf("engine has %d keys, want %d", n, len(want))
	}
}

func quietLogger(buf *bytes.Buffer) *slog.Logger {
	var w io.Writer = io.Discard
	if buf != nil {
		w = buf
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

func TestRestoreFromBeginningWithProgress(t *testing.T) {
	for _, tc := range []struct {
		name   string
		opener func(t *testing.T) Opener
	}{
		{"memory", func(*testing.T) Opener { return MemoryOpener() }},
		{"leveldb", func(t *testing.T) Opener { return levelDBOpener(t.TempDir(), LDBTestOptions{}) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := &memLog{begin: 0}
			log.fill(rand.New(rand.NewPCG(3, 4)), 20_000, 3_000)
			var progress []RestoreProgress
			res, err := Restore(context.Background(), RestoreConfig{
				Store: "s", Changelog: TopicPartition{"app-s-changelog", 2}, Opener: tc.opener(t), Reader: log,
				BatchSize: 1000, Logger: quietLogger(nil),
				Progress: func(p RestoreProgress) { progress = append(progress, p) },
			})
			if err != nil {
				t.Fatal(err)
			}
			defer mustClose(t, res.Engine)
			if res.Offset != 20_000 || res.Records != 20_000 || !res.Wiped {
				t.Fatalf("result = %+v", res)
			}
			assertEngineEquals(t, res.Engine, log.model())
			if len(progress) < 10 {
				t.Fatalf("only %d progress calls for 20 batches", len(progress))
			}
			for i, p := range progress {
				if p.Store != "s" || p.Partition != 2 || p.Total != 20_000 || (i > 0 && p.Restored < progress[i-1].Restored) {
					t.Fatalf("progress[%d] = %+v", i, p)
				}
			}
			if last := progress[len(progress)-1]; last.Restored != last.Total {
				t.Fatalf("last progress = %+v, want Restored == Total", last)
			}
		})
	}
}

func TestRestoreFromCheckpointReadsOnlyTheTail(t *testing.T) {
	dir := t.TempDir()
	opener := levelDBOpener(filepath.Join(dir, "s"), LDBTestOptions{})
	rng := rand.New(rand.NewPCG(5, 6))
	log := &memLog{}
	log.fill(rng, 5000, 800)
	tp := TopicPartition{"app-s-changelog", 0}
	cfg := RestoreConfig{Store: "s", Changelog: tp, Opener: opener, Reader: log, Logger: quietLogger(nil)}
	res, err := Restore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := FlushAndCheckpoint(dir, []Engine{res.Engine}, map[TopicPartition]int64{tp: res.Offset}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, res.Engine)

	log.fill(rng, 1234, 800)
	cp, err := ReadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Checkpoint, cfg.HasCheckpoint = cp[tp]
	if cfg.Checkpoint != 5000 {
		t.Fatalf("checkpoint = %d", cfg.Checkpoint)
	}
	var buf bytes.Buffer
	cfg.Logger = quietLogger(&buf)
	res, err = Restore(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
	if res.Wiped || res.Records != 1234 || res.Offset != 6234 {
		t.Fatalf("result = %+v, want only the 1234-record tail", res)
	}
	if buf.Len() != 0 {
		t.Fatalf("unexpected log: %s", buf.String())
	}
	assertEngineEquals(t, res.Engine, log.model())
}

func TestRestoreCheckpointAheadOfChangelog(t *testing.T) {
	dir := t.TempDir()
	opener := levelDBOpener(dir, LDBTestOptions{})
	// Local state with a key the changelog never had, and a checkpoint
	// beyond the changelog's end (e.g. the topic was deleted and
	// recreated).
	e, err := opener.Open()
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, e, "stale", "x")
	mustClose(t, e)
	log := &memLog{}
	log.fill(rand.New(rand.NewPCG(7, 8)), 300, 50)
	var buf bytes.Buffer
	res, err := Restore(context.Background(), RestoreConfig{
		Store: "s", Changelog: TopicPartition{"c", 0}, Opener: opener, Reader: log,
		Checkpoint: 1000, HasCheckpoint: true, Logger: quietLogger(&buf),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
	if !res.Wiped || !strings.Contains(res.WipeReason, "beyond the changelog end offset 300") {
		t.Fatalf("result = %+v, want a wipe because of the checkpoint", res)
	}
	if !strings.Contains(buf.String(), "checkpoint 1000 is beyond") {
		t.Fatalf("wipe not logged with its reason: %q", buf.String())
	}
	assertEngineEquals(t, res.Engine, log.model())
}

func TestRestoreCheckpointBelowLogStart(t *testing.T) {
	log := &memLog{begin: 100, next: 100}
	log.fill(rand.New(rand.NewPCG(9, 9)), 200, 30)
	res, err := Restore(context.Background(), RestoreConfig{
		Store: "s", Opener: levelDBOpener(t.TempDir(), LDBTestOptions{}), Reader: log,
		Checkpoint: 50, HasCheckpoint: true, Logger: quietLogger(nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
	if !res.Wiped || res.Offset != 300 || res.Records != 200 {
		t.Fatalf("result = %+v", res)
	}
	assertEngineEquals(t, res.Engine, log.model())
}

// corruptions damage a closed LevelDB directory in different ways.
var corruptions = []struct {
	name string
	ext  string
	fn   func(t *testing.T, path string)
}{
	{"TruncateTable", ".ldb", func(t *testing.T, path string) { truncateHalf(t, path) }},
	{"OverwriteTable", ".ldb", func(t *testing.T, path string) { overwriteMiddle(t, path) }},
	{"TruncateJournal", ".log", func(t *testing.T, path string) { truncateHalf(t, path) }},
	{"OverwriteJournal", ".log", func(t *testing.T, path string) { overwriteMiddle(t, path) }},
	{"GarbageManifest", "MANIFEST", func(t *testing.T, path string) { overwriteMiddle(t, path) }},
}

func truncateHalf(t *testing.T, path string) {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}

func overwriteMiddle(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := len(data) / 3; i < len(data)/3+64 && i < len(data); i++ {
		data[i] ^= 0x5a
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// largestFile returns the largest file in dir whose name contains part.
func largestFile(t *testing.T, dir, part string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	best, size := "", int64(-1)
	for _, e := range ents {
		if !strings.Contains(e.Name(), part) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > size {
			best, size = filepath.Join(dir, e.Name()), info.Size()
		}
	}
	if best == "" || size == 0 {
		t.Fatalf("no non-empty %q file in %s", part, dir)
	}
	return best
}

func TestRestoreAfterLevelDBCorruption(t *testing.T) {
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			tp := TopicPartition{"app-s-changelog", 0}
			// A small write buffer puts most data in tables; the rest
			// stays in the journal.
			opts := LDBTestOptions{WriteBufferSize: 16 << 10}
			log := &memLog{}
			log.fill(rand.New(rand.NewPCG(10, 11)), 6_000, 2_000)
			cfg := RestoreConfig{Store: "s", Changelog: tp, Opener: levelDBOpener(dir, opts), Reader: log, Logger: quietLogger(nil), BatchSize: 500}
			res, err := Restore(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.ext == ".log" { // leave a journal with data in it
				for i := 0; i < 200; i++ {
					k := fmt.Sprintf("key%06d", i)
					v := fmt.Sprintf("late%d", i)
					log.append(k, []byte(v))
					mustPut(t, res.Engine, k, v)
				}
				res.Offset = log.next
			}
			mustClose(t, res.Engine)
			c.fn(t, largestFile(t, dir, c.ext))

			var buf bytes.Buffer
			cfg.Logger = quietLogger(&buf)
			cfg.Checkpoint, cfg.HasCheckpoint = res.Offset, true
			res, err = Restore(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer mustClose(t, res.Engine)
			if !res.Wiped || !strings.Contains(res.WipeReason, "corrupt") {
				t.Fatalf("result = %+v, want a wipe because of corruption", res)
			}
			if !strings.Contains(buf.String(), "corrupt") {
				t.Fatalf("wipe reason not logged: %q", buf.String())
			}
			assertEngineEquals(t, res.Engine, log.model())
		})
	}
}

func TestOpenLevelDBReportsCorruption(t *testing.T) {
	dir := t.TempDir()
	e, err := openLevelDB(dir, LDBTestOptions{WriteBufferSize: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20_000; i++ {
		mustPut(t, e, fmt.Sprintf("k%06d", i), strings.Repeat("v", 20))
	}
	mustClose(t, e)
	overwriteMiddle(t, largestFile(t, dir, ".ldb"))
	_, err = openLevelDB(dir, LDBTestOptions{})
	var ce *CorruptionError
	if !errors.As(err, &ce) || ce.Dir != dir {
		t.Fatalf("OpenLevelDB of a corrupt table = %v, want *CorruptionError for %s", err, dir)
	}
	// Without the verification scan the damage shows when read.
	e, err = openLevelDB(dir, LDBTestOptions{SkipVerify: true})
	if err != nil {
		t.Skipf("goleveldb noticed the damage at open already: %v", err)
	}
	defer func() {
		// A background compaction may meet the damage first; Close then
		// reports it, which is right.
		if err := e.Close(); err != nil && !errors.As(err, &ce) {
			t.Errorf("Close: %v", err)
		}
	}()
	it, err := e.Iterate(nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for it.Next() {
	}
	if !errors.As(it.Err(), &ce) {
		t.Fatalf("iterating a corrupt table: err = %v, want *CorruptionError", it.Err())
	}
	mustCloseIter(t, it)
}

func TestRestoreLockedLevelDBIsNotWiped(t *testing.T) {
	dir := t.TempDir()
	holder, err := openLevelDB(dir, LDBTestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, holder)
	mustPut(t, holder, "keep", "me")
	log := &memLog{}
	log.append("a", []byte("1"))
	_, err = Restore(context.Background(), RestoreConfig{
		Store: "s", Opener: levelDBOpener(dir, LDBTestOptions{}), Reader: log,
		Checkpoint: 0, HasCheckpoint: true, Logger: quietLogger(nil),
	})
	if err == nil {
		t.Fatal("Restore opened a LevelDB another engine holds")
	}
	if v, found, err := holder.Get([]byte("keep")); err != nil || !found || string(v) != "me" {
		t.Fatalf("data of the locked store changed: %q %v %v", v, found, err)
	}
}

func TestRestoreStopsOnContextAndReaderErrors(t *testing.T) {
	log := &memLog{batch: 10}
	log.fill(rand.New(rand.NewPCG(1, 1)), 1000, 100)
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := Restore(ctx, RestoreConfig{
		Store: "s", Opener: MemoryOpener(), Reader: log, BatchSize: 10, Logger: quietLogger(nil),
		Progress: func(RestoreProgress) {
			if calls++; calls == 3 {
				cancel()
			}
		},
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Restore after cancel = %v, want context.Canceled", err)
	}
}

func TestCheckpointFile(t *testing.T) {
	dir := t.TempDir()
	cp, err := ReadCheckpoint(dir)
	if err != nil || len(cp) != 0 {
		t.Fatalf("missing checkpoint = %v %v, want empty and no error", cp, err)
	}
	want := map[TopicPartition]int64{{"app-a-changelog", 3}: 42, {"app-b-changelog", 3}: 0, {"profiles", 3}: 1 << 40}
	if err := WriteCheckpoint(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != CheckpointFile {
		t.Fatalf("directory holds %v, want only %s (no temp files)", ents, CheckpointFile)
	}
	// A damaged file is an error, never a silent partial map.
	path := filepath.Join(dir, CheckpointFile)
	data, _ := os.ReadFile(path)
	for _, bad := range [][]byte{data[:len(data)-8], []byte("nonsense\n"), bytes.Replace(data, []byte(" 42"), []byte(" -42"), 1)} {
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		var ce *CheckpointError
		if _, err := ReadCheckpoint(dir); !errors.As(err, &ce) {
			t.Fatalf("ReadCheckpoint(%q) = %v, want *CheckpointError", bad, err)
		}
	}
	if err := RemoveCheckpoint(dir); err != nil {
		t.Fatal(err)
	}
	if err := RemoveCheckpoint(dir); err != nil {
		t.Fatalf("second RemoveCheckpoint: %v", err)
	}
	if err := WriteCheckpoint(dir, map[TopicPartition]int64{{"bad topic", 0}: 1}); err == nil {
		t.Fatal("WriteCheckpoint accepted a topic with a space")
	}
}

// flushRecorder checks FlushAndCheckpoint's order.
type flushRecorder struct {
	Engine
	dir     string
	flushed bool
	t       *testing.T
}

func (f *flushRecorder) Flush() error {
	if _, err := os.Stat(filepath.Join(f.dir, CheckpointFile)); err == nil {
		f.t.Error("checkpoint written before the engine was flushed")
	}
	f.flushed = true
	return f.Engine.Flush()
}

func TestFlushAndCheckpointFlushesFirst(t *testing.T) {
	dir := t.TempDir()
	e := &flushRecorder{Engine: NewMemoryEngine(), dir: dir, t: t}
	defer mustClose(t, e)
	if err := FlushAndCheckpoint(dir, []Engine{e}, map[TopicPartition]int64{{"t", 0}: 5}); err != nil {
		t.Fatal(err)
	}
	if !e.flushed {
		t.Fatal("engine not flushed")
	}
	failing := &failFlush{Engine: NewMemoryEngine()}
	defer mustClose(t, failing)
	if err := FlushAndCheckpoint(dir, []Engine{failing}, map[TopicPartition]int64{{"t", 0}: 9}); err == nil {
		t.Fatal("FlushAndCheckpoint ignored a flush error")
	}
	cp, _ := ReadCheckpoint(dir)
	if cp[TopicPartition{"t", 0}] != 5 {
		t.Fatalf("checkpoint moved to %d although the flush failed", cp[TopicPartition{"t", 0}])
	}
}

type failFlush struct{ Engine }

func (failFlush) Flush() error { return errors.New("disk full") }

func TestRestoreCheckpointWithoutLocalData(t *testing.T) {
	log := &memLog{}
	log.fill(rand.New(rand.NewPCG(12, 13)), 400, 60)
	var buf bytes.Buffer
	res, err := Restore(context.Background(), RestoreConfig{
		Store: "s", Opener: levelDBOpener(filepath.Join(t.TempDir(), "gone"), LDBTestOptions{}), Reader: log,
		Checkpoint: 300, HasCheckpoint: true, Logger: quietLogger(&buf),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer mustClose(t, res.Engine)
	if !res.Wiped || res.Records != 400 || !strings.Contains(buf.String(), "no local data") {
		t.Fatalf("result %+v, log %q: want a full restore because the store directory is missing", res, buf.String())
	}
	assertEngineEquals(t, res.Engine, log.model())
}
