package avro

import (
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde"
)

// Limits that keep a hostile payload from exhausting memory or the stack
// before any Avro value is built from it.
const (
	// maxAvroDepth bounds the nesting of records, arrays, maps and unions.
	maxAvroDepth = 1000
	// maxZeroWidthItems bounds the number of array or map items, summed over
	// a payload, whose encoding may take no bytes (null, empty records):
	// nothing else limits how many such items a short payload can claim.
	maxZeroWidthItems = 1 << 16
)

var (
	errShort = errors.New("unexpected end of data")
)

// avroChecker reads binary Avro data against the writer's schema (for
// readNative and the compiled decoders), checking every length and count
// against the bytes left before anything is allocated. It reports serde.ErrTruncated when the data
// ends early and serde.ErrCorrupt for everything else.
type avroChecker struct {
	buf        []byte
	pos        int
	zeroBudget int
	depth      int
}

type checkError struct {
	kind error
	pos  int
	msg  string
}

func (e *checkError) Error() string { return fmt.Sprintf("at byte %d: %s", e.pos, e.msg) }

func (c *avroChecker) fail(kind error, format string, args ...any) error {
	return &checkError{kind: kind, pos: c.pos, msg: fmt.Sprintf(format, args...)}
}

func (c *avroChecker) varint() (int64, error) {
	var v uint64
	var shift uint
	for i := 0; i < 10; i++ {
		if c.pos >= len(c.buf) {
			return 0, c.fail(serde.ErrTruncated, "%v in a varint", errShort)
		}
		b := c.buf[c.pos]
		c.pos++
		if i == 9 && b > 1 {
			return 0, c.fail(serde.ErrCorrupt, "varint overflows 64 bits")
		}
		v |= uint64(b&0x7f) << shift
		if b&0x80 == 0 {
			return int64(v>>1) ^ -int64(v&1), nil
		}
		shift += 7
	}
	return 0, c.fail(serde.ErrCorrupt, "varint longer than 10 bytes")
}

// computeMinSizes stores in every node reachable from s the smallest
// number of bytes one of its values can take. Cycles (recursive records)
// contribute 0, a safe lower bound.
func computeMinSizes(s *avroSchema, visiting map[*avroSchema]bool) int {
	if s.minDone {
		return s.minBytes
	}
	if visiting[s] {
		return 0
	}
	visiting[s] = true
	n := 0
	switch s.kind {
	case kNull:
	case kFloat:
		n = 4
	case kDouble:
		n = 8
	case kFixed:
		n = s.size
	case kRecord:
		for _, f := range s.fields {
			n += computeMinSizes(f.schema, visiting)
		}
	case kArray, kMap, kUnion:
		n = 1
	default:
		n = 1
	}
	switch s.kind {
	case kArray, kMap:
		computeMinSizes(s.items, visiting)
	case kUnion:
		for _, b := range s.branches {
			computeMinSizes(b, visiting)
		}
	}
	delete(visiting, s)
	s.minBytes, s.minDone = n, true
	return n
}
