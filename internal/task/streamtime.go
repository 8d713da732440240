package task

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Stream time in offset-commit metadata.
//
// A task's stream time survives restarts and rebalances in the metadata
// string of the offsets it commits: every partition a commit covers gets
//
//	brook:v1:<stream time in Unix epoch milliseconds, decimal>
//
// e.g. "brook:v1:1767225600000" (an empty string when the task has seen no
// timestamp yet). Record timestamps have millisecond precision in Kafka, so
// the value is exact. A task that opens takes the largest stream time among
// its partitions' metadata. Metadata that is empty or written by another
// client means "unknown"; a later version of the format ("brook:v2:...")
// too, as this version cannot read it.

// Every stream-time metadata string starts with streamTimePrefix, then
// the format version and a colon.
const (
	streamTimePrefix  = "brook:"
	streamTimeVersion = "v1"
)

// ErrForeignMetadata is matched by the error of ParseStreamTime for
// non-empty offset-commit metadata that brook did not write (another
// client committed the offset).
var ErrForeignMetadata = errors.New("task: offset-commit metadata not written by brook")

// EncodeStreamTime returns the offset-commit metadata that records stream
// time st: "brook:v1:<epoch millis>", or "" for the zero time (unknown).
func EncodeStreamTime(st time.Time) string {
	if st.IsZero() {
		return ""
	}
	return streamTimePrefix + streamTimeVersion + ":" + strconv.FormatInt(st.UnixMilli(), 10)
}

// ParseStreamTime reads the stream time EncodeStreamTime recorded in
// offset-commit metadata. Empty metadata gives the zero time and no error
// (no stream time was committed). Metadata of another client gives an
// error matching ErrForeignMetadata; brook metadata of another version or
// with a malformed value gives another error. In every error case the
// stream time is unknown (zero).
func ParseStreamTime(meta string) (time.Time, error) {
	if meta == "" {
		return time.Time{}, nil
	}
	rest, ok := strings.CutPrefix(meta, streamTimePrefix)
	if !ok {
		return time.Time{}, fmt.Errorf("%w: %q", ErrForeignMetadata, meta)
	}
	version, value, ok := strings.Cut(rest, ":")
	if !ok || version != streamTimeVersion {
		return time.Time{}, fmt.Errorf("task: offset-commit metadata %q: unknown stream-time format version (this brook reads %s)", meta, streamTimeVersion)
	}
	ms, err := strconv.ParseInt(value, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("task: offset-commit metadata %q: malformed stream time: %w", meta, err)
	}
	return time.UnixMilli(ms), nil
}
