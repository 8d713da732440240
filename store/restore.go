package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// ChangelogRecord is one record read back from a changelog. A nil Value is
// a tombstone (the key was deleted).
type ChangelogRecord struct {
	Offset int64
	Key    []byte
	Value  []byte
	// Timestamp and Headers are the record's, where the reader has them
	// (internal/changelog's does): a global table's restore hands them to
	// the deserialization handler with a record it cannot read. Restore
	// ignores them.
	Timestamp time.Time
	Headers   []ChangelogHeader
}

// ChangelogHeader is one header of a ChangelogRecord.
type ChangelogHeader struct {
	Key, Value []byte
}

// ChangelogReader reads one changelog partition for restore. The runtime
// implements it with its Kafka client (internal/changelog does it with
// sarama); tests use an in-memory log. store needs no Kafka client.
type ChangelogReader interface {
	// BeginOffset returns the first offset still in the partition (the
	// log start offset).
	BeginOffset(ctx context.Context) (int64, error)
	// EndOffset returns the offset restore reads up to, exclusive: the
	// high watermark, or the last stable offset when reading committed
	// records only.
	EndOffset(ctx context.Context) (int64, error)
	// Read calls fn with consecutive batches of the records whose offsets
	// are in [from, to), in offset order, and returns once every offset
	// below to has been passed (offsets may have gaps: compaction,
	// transaction markers, aborted records). The slices in a batch are
	// valid only during the call. An error from fn stops Read and is
	// returned. A from below the partition's log start gives an error
	// wrapping ErrChangelogTruncated.
	Read(ctx context.Context, from, to int64, fn func([]ChangelogRecord) error) error
}

// ErrChangelogTruncated is wrapped by ChangelogReader.Read when the offset
// to read from is no longer in the partition. Restore then wipes the store
// and restores from the beginning.
var ErrChangelogTruncated = errors.New("store: changelog offset is below the log start")

// Opener opens a store's engine and wipes its local data. Restore uses it
// to start over when the local state cannot be trusted.
type Opener interface {
	// Open opens the engine.
	Open() (Engine, error)
	// Wipe deletes the local data; the engine must be closed.
	Wipe() error
	// Persistent reports whether data survives Close. A checkpoint means
	// nothing for an engine that is not persistent.
	Persistent() bool
	// String describes the location for logs.
	String() string
}

// LocalDataChecker is implemented by Openers that can tell whether any
// local data exists (package store/leveldb's Opener does); Restore treats
// a checkpoint without local data as untrustworthy and restores from the
// beginning.
type LocalDataChecker interface {
	// HasLocalData reports whether the engine's local data exists.
	HasLocalData() (bool, error)
}

// MemoryOpener returns an Opener for in-memory engines: each Open returns
// a new empty engine, so restore always starts from the beginning.
func MemoryOpener() Opener { return memOpener{} }

type memOpener struct{}

func (memOpener) Open() (Engine, error) { return NewMemoryEngine(), nil }
func (memOpener) Wipe() error           { return nil }
func (memOpener) Persistent() bool      { return false }
func (memOpener) String() string        { return "memory" }

// RestoreProgress reports how far a restore has come. Restored and Total
// count changelog offsets (compacted-away offsets included), so Restored
// reaches Total exactly when the restore is done; Records counts the
// changelog records applied so far.
type RestoreProgress struct {
	Store     string
	Partition int32
	Restored  int64
	Total     int64
	Records   int64
}

// RestoreConfig describes one store partition to restore.
type RestoreConfig struct {
	// Store is the store's name (for progress and logs).
	Store string
	// Changelog is the changelog partition (or the compacted source topic
	// partition the store uses as its changelog).
	Changelog TopicPartition
	// Opener opens (and if needed wipes) the engine.
	Opener Opener
	// Reader reads the changelog partition.
	Reader ChangelogReader
	// Checkpoint is the checkpointed offset (the next offset to restore)
	// when HasCheckpoint is true.
	Checkpoint    int64
	HasCheckpoint bool
	// Apply, if set, adds one changelog record to the batch instead of the
	// default (Put of key and value; Delete for a nil value). Window and
	// TTL stores provide theirs (WindowStoreApply, TTLStoreApply) because
	// their engine layout differs from the changelog's. The slices are
	// valid only during the call; Batch copies what it keeps.
	Apply func(b Batch, key, value []byte) error
	// BatchSize is the number of records per Batch.Write. Default 10,000.
	BatchSize int
	// Progress, if set, is called after every batch and once at the end
	// (with Restored == Total), on the goroutine that called Restore.
	Progress func(RestoreProgress)
	// Logger receives the reasons for wiping. Default slog.Default().
	Logger *slog.Logger
}

// RestoreResult is the outcome of a successful Restore.
type RestoreResult struct {
	// Engine is the open, restored engine; the caller owns it.
	Engine Engine
	// Offset is the next changelog offset: every record below it is in
	// Engine, and Engine has been flushed. It is the offset to checkpoint.
	Offset int64
	// Records is the number of changelog records applied.
	Records int64
	// Wiped reports that the local state was discarded and restored from
	// the beginning; WipeReason says why.
	Wiped      bool
	WipeReason string
}

const defaultRestoreBatch = 10_000

// Restore opens a store's engine and brings it up to the end of its
// changelog: from the checkpointed offset to the end offset, applying the
// records in batches with Batch.Write.
//
// The local state is wiped and restored from the beginning of the
// changelog (after logging why) when: the engine is not persistent, there
// is no checkpoint, the checkpoint is beyond the changelog's end offset or
// below its start, there is a checkpoint but no local database, the engine fails to open as corrupt, or reading it or
// writing to it meets corruption during the restore. Other errors (for
// example another process holding the LevelDB lock) are returned as they
// are: wiping would be wrong.
func Restore(ctx context.Context, cfg RestoreConfig) (*RestoreResult, error) {
	if cfg.Opener == nil || cfg.Reader == nil {
		return nil, fmt.Errorf("store: restore %s: Opener and Reader are required", cfg.Store)
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = defaultRestoreBatch
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("store", cfg.Store, "changelog", cfg.Changelog.String(), "engine", cfg.Opener.String())

	begin, err := cfg.Reader.BeginOffset(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: restore %s: begin offset of %s: %w", cfg.Store, cfg.Changelog, err)
	}
	end, err := cfg.Reader.EndOffset(ctx)
	if err != nil {
		return nil, fmt.Errorf("store: restore %s: end offset of %s: %w", cfg.Store, cfg.Changelog, err)
	}

	reason := ""
	switch {
	case !cfg.Opener.Persistent():
		reason = "engine is not persistent"
	case !cfg.HasCheckpoint:
		reason = "no checkpoint"
	case cfg.Checkpoint > end:
		reason = fmt.Sprintf("checkpoint %d is beyond the changelog end offset %d", cfg.Checkpoint, end)
	case cfg.Checkpoint < begin:
		reason = fmt.Sprintf("checkpoint %d is below the changelog start offset %d", cfg.Checkpoint, begin)
	}
	// fresh: there is no local copy at all (a first start on this
	// machine, or a task new here), which is normal, not worth a warning.
	fresh := false
	if lc, ok := cfg.Opener.(LocalDataChecker); ok && (reason == "" || !cfg.HasCheckpoint) {
		has, err := lc.HasLocalData()
		if err != nil {
			return nil, fmt.Errorf("store: restore %s: %w", cfg.Store, err)
		}
		switch {
		case !has && reason == "":
			reason = fmt.Sprintf("checkpoint %d but no local data in %s", cfg.Checkpoint, cfg.Opener)
		case !has:
			fresh = true
		case !cfg.HasCheckpoint:
			reason = "local data without a checkpoint (the last stop was not clean, or exactly-once discarded uncommitted state)"
		}
	}
	res := &RestoreResult{}
	for attempt := 0; ; attempt++ {
		start := cfg.Checkpoint
		if reason != "" {
			switch {
			case !cfg.Opener.Persistent():
			case fresh && attempt == 0:
				log.Info("store: no local state; restoring from the changelog", "reason", reason)
			default:
				log.Warn("store: local state cannot be trusted; wiping it and restoring from the changelog",
					"action", "nothing: it is rebuilt; if this follows every clean stop, check that the state directory "+
						"is kept between runs and not shared or changed by anything else", "reason", reason)
			}
			if err := cfg.Opener.Wipe(); err != nil {
				return nil, fmt.Errorf("store: restore %s: %w", cfg.Store, err)
			}
			res.Wiped, res.WipeReason = true, reason
			start = begin
		}
		e, err := cfg.Opener.Open()
		var ce *CorruptionError
		if errors.As(err, &ce) && attempt == 0 {
			reason = "engine failed to open: " + err.Error()
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("store: restore %s: open: %w", cfg.Store, err)
		}
		n, err := applyChangelog(ctx, &cfg, e, start, end)
		if err == nil {
			err = e.Flush()
		}
		if err == nil {
			res.Engine, res.Offset, res.Records = e, end, n
			return res, nil
		}
		if cerr := e.Close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
		switch {
		case attempt == 0 && errors.As(err, &ce):
			reason = "engine corrupt during restore: " + err.Error()
		case attempt == 0 && errors.Is(err, ErrChangelogTruncated) && start != begin:
			reason = "checkpointed offset is no longer in the changelog: " + err.Error()
		default:
			return nil, fmt.Errorf("store: restore %s from %s: %w", cfg.Store, cfg.Changelog, err)
		}
	}
}

// applyChangelog reads [start, end) into e in batches.
func applyChangelog(ctx context.Context, cfg *RestoreConfig, e Engine, start, end int64) (int64, error) {
	total := end - start
	var n int64
	progress := func(next int64) {
		if cfg.Progress != nil {
			cfg.Progress(RestoreProgress{Store: cfg.Store, Partition: cfg.Changelog.Partition, Restored: next - start, Total: total, Records: n})
		}
	}
	if start >= end {
		progress(end)
		return 0, nil
	}
	b := e.NewBatch()
	next := start
	flush := func(report bool) error {
		if b.Len() == 0 {
			return nil
		}
		if err := b.Write(); err != nil {
			return err
		}
		b.Reset()
		if report {
			progress(next)
		}
		return nil
	}
	err := cfg.Reader.Read(ctx, start, end, func(recs []ChangelogRecord) error {
		for i := range recs {
			r := &recs[i]
			if r.Offset < next || r.Offset >= end {
				continue // a reader may hand back a whole batch around the range
			}
			if r.Key == nil {
				// Kafka allows null keys; a store cannot hold them.
				next = r.Offset + 1
				continue
			}
			if cfg.Apply != nil {
				if err := cfg.Apply(b, r.Key, r.Value); err != nil {
					return fmt.Errorf("offset %d: %w", r.Offset, err)
				}
			} else if r.Value == nil {
				b.Delete(r.Key)
			} else {
				b.Put(r.Key, r.Value)
			}
			n++
			next = r.Offset + 1
			if b.Len() >= cfg.BatchSize {
				if err := flush(true); err != nil {
					return err
				}
			}
		}
		return ctx.Err()
	})
	if err != nil {
		return n, err
	}
	if err := flush(false); err != nil {
		return n, err
	}
	progress(end)
	return n, nil
}
