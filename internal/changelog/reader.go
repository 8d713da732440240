package changelog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/IBM/sarama"

	"github.com/brookstream/brook/store"
)

// Reader implements store.ChangelogReader for one topic partition with a
// sarama client. It sends Fetch requests itself instead of using a sarama
// PartitionConsumer: a consumer skips transaction markers and aborted
// records without saying where it is, so a reader built on it cannot tell
// when it has passed an end offset whose tail is made of such offsets.
//
// A Reader is used by one goroutine at a time; it starts no goroutines.
type Reader struct {
	client    sarama.Client
	topic     string
	partition int32
	iso       sarama.IsolationLevel
	// MaxBytes caps one fetch response. Default 16 MiB.
	MaxBytes int32
	// Retries is the number of consecutive failed fetches (leader moves,
	// network errors) tolerated before Read gives up. Default 10.
	Retries int
}

// NewReader returns a Reader of topic[partition]. iso selects the end
// offset and the records read: sarama.ReadUncommitted reads to the high
// watermark; sarama.ReadCommitted reads to the last stable offset and
// leaves out aborted transactions (what a restore under exactly-once
// needs).
func NewReader(client sarama.Client, topic string, partition int32, iso sarama.IsolationLevel) *Reader {
	return &Reader{client: client, topic: topic, partition: partition, iso: iso, MaxBytes: 16 << 20, Retries: 10}
}

var _ store.ChangelogReader = (*Reader)(nil)

func (r *Reader) where() string { return fmt.Sprintf("%s[%d]", r.topic, r.partition) }

// BeginOffset implements store.ChangelogReader (the log start offset).
func (r *Reader) BeginOffset(ctx context.Context) (int64, error) {
	return r.listOffset(ctx, sarama.OffsetOldest)
}

// EndOffset implements store.ChangelogReader: the high watermark, or the
// last stable offset under read_committed.
func (r *Reader) EndOffset(ctx context.Context) (int64, error) {
	return r.listOffset(ctx, sarama.OffsetNewest)
}

func (r *Reader) listOffset(ctx context.Context, which int64) (int64, error) {
	var last error
	for attempt := 0; attempt <= r.retries(); attempt++ {
		if attempt > 0 {
			if err := r.backoff(ctx, attempt); err != nil {
				return -1, err
			}
		}
		broker, err := r.client.Leader(r.topic, r.partition)
		if err != nil {
			last = err
			continue
		}
		req := sarama.NewOffsetRequest(r.client.Config().Version)
		if req.Version >= 2 {
			req.IsolationLevel = r.iso
		}
		req.AddBlock(r.topic, r.partition, which, 1)
		resp, err := broker.GetAvailableOffsets(req)
		if err != nil {
			last = err
			continue
		}
		b := resp.GetBlock(r.topic, r.partition)
		switch {
		case b == nil:
			last = sarama.ErrIncompleteResponse
		case !errors.Is(b.Err, sarama.ErrNoError):
			last = b.Err
			if !retriable(b.Err) {
				return -1, fmt.Errorf("changelog: %s: list offsets: %w", r.where(), b.Err)
			}
		case len(b.Offsets) == 0:
			last = sarama.ErrIncompleteResponse
		default:
			return b.Offsets[0], nil
		}
	}
	return -1, fmt.Errorf("changelog: %s: list offsets: %w", r.where(), last)
}

func (r *Reader) retries() int {
	if r.Retries <= 0 {
		return 10
	}
	return r.Retries
}

// backoff waits before a retry and refreshes the partition's metadata.
func (r *Reader) backoff(ctx context.Context, attempt int) error {
	d := time.Duration(attempt) * 50 * time.Millisecond
	if d > time.Second {
		d = time.Second
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	_ = r.client.RefreshMetadata(r.topic) // a failure shows in the next attempt
	return nil
}

func retriable(err error) bool {
	switch {
	case errors.Is(err, sarama.ErrNotLeaderForPartition),
		errors.Is(err, sarama.ErrLeaderNotAvailable),
		errors.Is(err, sarama.ErrUnknownTopicOrPartition),
		errors.Is(err, sarama.ErrFencedLeaderEpoch),
		errors.Is(err, sarama.ErrUnknownLeaderEpoch),
		errors.Is(err, sarama.ErrOffsetNotAvailable),
		errors.Is(err, sarama.ErrRequestTimedOut),
		errors.Is(err, sarama.ErrNotEnoughReplicas),
		errors.Is(err, sarama.ErrReplicaNotAvailable):
		return true
	}
	return false
}

func (r *Reader) fetchVersion() (int16, error) {
	v := r.client.Config().Version
	switch {
	case v.IsAtLeast(sarama.V2_3_0_0):
		return 11, nil
	case v.IsAtLeast(sarama.V2_1_0_0):
		return 10, nil
	case v.IsAtLeast(sarama.V0_11_0_0):
		return 5, nil
	}
	return 0, fmt.Errorf("changelog: %s: sarama Version %s is too old: restore needs Kafka 0.11 or later", r.where(), v)
}

// Read implements store.ChangelogReader.
func (r *Reader) Read(ctx context.Context, from, to int64, fn func([]store.ChangelogRecord) error) error {
	version, err := r.fetchVersion()
	if err != nil {
		return err
	}
	maxBytes := r.MaxBytes
	if maxBytes <= 0 {
		maxBytes = 16 << 20
	}
	partBytes := maxBytes
	offset := from
	failures, stalls := 0, 0
	var out []store.ChangelogRecord
	for offset < to {
		if err := ctx.Err(); err != nil {
			return err
		}
		resp, err := r.fetch(version, offset, maxBytes, partBytes)
		var block *sarama.FetchResponseBlock
		if err == nil {
			if block = resp.GetBlock(r.topic, r.partition); block == nil {
				err = sarama.ErrIncompleteResponse
			} else if !errors.Is(block.Err, sarama.ErrNoError) {
				err = block.Err
			}
		}
		if errors.Is(err, sarama.ErrOffsetOutOfRange) {
			begin, berr := r.BeginOffset(ctx)
			if berr == nil && offset < begin {
				return fmt.Errorf("changelog: %s: offset %d is below the log start %d: %w", r.where(), offset, begin, store.ErrChangelogTruncated)
			}
			return fmt.Errorf("changelog: %s: fetch offset %d (to %d): %w", r.where(), offset, to, err)
		}
		if err != nil {
			var kerr sarama.KError
			if errors.As(err, &kerr) && !retriable(kerr) {
				return fmt.Errorf("changelog: %s: fetch offset %d: %w", r.where(), offset, err)
			}
			if failures++; failures > r.retries() {
				return fmt.Errorf("changelog: %s: fetch offset %d: giving up after %d attempts: %w", r.where(), offset, failures, err)
			}
			if err := r.backoff(ctx, failures); err != nil {
				return err
			}
			continue
		}
		failures = 0

		out = out[:0]
		next, partial, err := r.decode(block, offset, to, &out)
		if err != nil {
			return err
		}
		if len(out) > 0 {
			if err := fn(out); err != nil {
				return err
			}
		}
		if next > offset {
			offset = next
			partBytes = maxBytes
			stalls = 0
			continue
		}
		if stalls++; stalls > 100 {
			return fmt.Errorf("changelog: %s: no progress at offset %d after %d fetches (reading to %d)", r.where(), offset, stalls, to)
		}
		// No progress.
		if partial { // one batch is larger than we asked for
			if partBytes >= 1<<30 {
				return fmt.Errorf("changelog: %s: record batch at offset %d is larger than 1 GiB", r.where(), offset)
			}
			partBytes *= 2
			if partBytes > maxBytes {
				maxBytes = partBytes
			}
			continue
		}
		available := block.HighWaterMarkOffset
		if r.iso == sarama.ReadCommitted && block.LastStableOffset >= 0 {
			available = block.LastStableOffset
		}
		if available <= offset {
			// The end we were asked to reach is no longer there (the log
			// was truncated after a leader change): restore what exists.
			return fmt.Errorf("changelog: %s: end offset fell to %d while reading to %d", r.where(), available, to)
		}
	}
	return nil
}

func (r *Reader) fetch(version int16, offset int64, maxBytes, partBytes int32) (*sarama.FetchResponse, error) {
	broker, err := r.client.Leader(r.topic, r.partition)
	if err != nil {
		return nil, err
	}
	req := &sarama.FetchRequest{Version: version, MaxWaitTime: 250, MinBytes: 1, MaxBytes: maxBytes, Isolation: r.iso}
	if version >= 7 {
		req.SessionID, req.SessionEpoch = 0, -1
	}
	req.AddBlock(r.topic, r.partition, offset, partBytes, -1)
	return broker.Fetch(req)
}

// decode appends the block's records with offsets in [offset, to) to out,
// leaving out control batches and, under read_committed, aborted
// transactions. It returns the offset after the last complete batch.
func (r *Reader) decode(block *sarama.FetchResponseBlock, offset, to int64, out *[]store.ChangelogRecord) (next int64, partial bool, err error) {
	next = offset
	aborted := append([]*sarama.AbortedTransaction(nil), block.AbortedTransactions...)
	sort.Slice(aborted, func(i, j int) bool { return aborted[i].FirstOffset < aborted[j].FirstOffset })
	abortedPIDs := map[int64]bool{}
	// Room for every record of the block at once: growing out as it goes
	// copied it over and over (a fifth of a cold restore's CPU).
	n := 0
	for _, recs := range block.RecordsSet {
		if recs != nil && recs.RecordBatch != nil {
			n += len(recs.RecordBatch.Records)
		}
	}
	*out = slices.Grow(*out, n)
	for _, recs := range block.RecordsSet {
		if recs == nil {
			continue
		}
		b := recs.RecordBatch
		if b == nil {
			if recs.MsgSet != nil && len(recs.MsgSet.Messages) > 0 {
				return next, false, fmt.Errorf("changelog: %s: legacy (pre-0.11) message format at offset %d is not supported", r.where(), next)
			}
			continue
		}
		if b.PartialTrailingRecord {
			return next, true, nil
		}
		last := b.FirstOffset + int64(b.LastOffsetDelta)
		for len(aborted) > 0 && aborted[0].FirstOffset <= last {
			abortedPIDs[aborted[0].ProducerID] = true
			aborted = aborted[1:]
		}
		if last < next {
			continue
		}
		switch {
		case b.Control:
			if len(b.Records) > 0 && isAbortMarker(b.Records[0].Key) {
				delete(abortedPIDs, b.ProducerID)
			}
		case r.iso == sarama.ReadCommitted && b.IsTransactional && abortedPIDs[b.ProducerID]:
			// aborted records: skipped
		default:
			for _, rec := range b.Records {
				o := b.FirstOffset + rec.OffsetDelta
				if o < next || o >= to {
					continue
				}
				c := store.ChangelogRecord{Offset: o, Key: rec.Key, Value: rec.Value, Timestamp: recordTime(b, rec)}
				for _, h := range rec.Headers {
					if h != nil {
						c.Headers = append(c.Headers, store.ChangelogHeader{Key: h.Key, Value: h.Value})
					}
				}
				*out = append(*out, c)
			}
		}
		next = last + 1
	}
	return next, false, nil
}

// isAbortMarker reads a control record key: version int16, type int16
// (0 = abort, 1 = commit).
func isAbortMarker(key []byte) bool {
	return len(key) >= 4 && binary.BigEndian.Uint16(key[2:4]) == 0
}

// recordTime is a record's timestamp: its batch's first timestamp plus
// its delta, or the batch's max timestamp when the broker sets the time
// (LogAppendTime).
func recordTime(b *sarama.RecordBatch, rec *sarama.Record) time.Time {
	if b.LogAppendTime {
		return b.MaxTimestamp
	}
	return b.FirstTimestamp.Add(rec.TimestampDelta)
}
