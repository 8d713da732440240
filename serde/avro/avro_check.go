package avro

import (
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde"
	"math"
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

// avroChecker walks binary Avro data against the writer's schema without
// building values, so that goavro is only ever handed data it can decode
// without unbounded allocations. It reports serde.ErrTruncated when the data ends
// early and serde.ErrCorrupt for everything else.
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

// checkAvro validates that data holds exactly one value of schema s.
// The schema must come from parseAvroSchema (which computes minBytes).
func checkAvro(s *avroSchema, data []byte) error {
	c := avroChecker{buf: data, zeroBudget: maxZeroWidthItems}
	if err := c.value(s, 0); err != nil {
		return err
	}
	if c.pos != len(data) {
		return c.fail(serde.ErrCorrupt, "%d trailing bytes after the value", len(data)-c.pos)
	}
	return nil
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

func (c *avroChecker) skip(n int64, what string) error {
	if n < 0 {
		return c.fail(serde.ErrCorrupt, "negative %s length %d", what, n)
	}
	if n > int64(len(c.buf)-c.pos) {
		return c.fail(serde.ErrTruncated, "%s of %d bytes but only %d left", what, n, len(c.buf)-c.pos)
	}
	c.pos += int(n)
	return nil
}

func (c *avroChecker) value(s *avroSchema, depth int) error {
	if depth > maxAvroDepth {
		return c.fail(serde.ErrCorrupt, "nesting deeper than %d", maxAvroDepth)
	}
	switch s.kind {
	case kNull:
		return nil
	case kBoolean:
		if c.pos >= len(c.buf) {
			return c.fail(serde.ErrTruncated, "%v in a boolean", errShort)
		}
		if b := c.buf[c.pos]; b > 1 {
			return c.fail(serde.ErrCorrupt, "boolean byte %d", b)
		}
		c.pos++
		return nil
	case kInt:
		v, err := c.varint()
		if err != nil {
			return err
		}
		if v < math.MinInt32 || v > math.MaxInt32 {
			return c.fail(serde.ErrCorrupt, "int %d out of 32-bit range", v)
		}
		return nil
	case kLong:
		_, err := c.varint()
		return err
	case kFloat:
		return c.skip(4, "float")
	case kDouble:
		return c.skip(8, "double")
	case kBytes, kString:
		n, err := c.varint()
		if err != nil {
			return err
		}
		return c.skip(n, s.kind.String())
	case kFixed:
		return c.skip(int64(s.size), "fixed")
	case kEnum:
		i, err := c.varint()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.symbols)) {
			return c.fail(serde.ErrCorrupt, "enum %s index %d out of range", s.name, i)
		}
		return nil
	case kUnion:
		i, err := c.varint()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.branches)) {
			return c.fail(serde.ErrCorrupt, "union branch index %d out of range", i)
		}
		return c.value(s.branches[i], depth+1)
	case kRecord:
		for _, f := range s.fields {
			if err := c.value(f.schema, depth+1); err != nil {
				return err
			}
		}
		return nil
	case kArray, kMap:
		return c.blocks(s, depth)
	}
	return c.fail(serde.ErrCorrupt, "unknown schema kind %d", s.kind)
}

func (c *avroChecker) blocks(s *avroSchema, depth int) error {
	itemMin := s.items.minBytes
	if s.kind == kMap {
		itemMin++ // the key's length
	}
	for {
		n, err := c.varint()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if n < 0 {
			if n == math.MinInt64 {
				return c.fail(serde.ErrCorrupt, "block count out of range")
			}
			n = -n
			size, err := c.varint()
			if err != nil {
				return err
			}
			if size < 0 || size > int64(len(c.buf)-c.pos) {
				return c.fail(serde.ErrCorrupt, "block size %d out of range", size)
			}
		}
		if itemMin == 0 {
			if n > int64(c.zeroBudget) {
				return c.fail(serde.ErrCorrupt, "more than %d zero-width items", maxZeroWidthItems)
			}
			c.zeroBudget -= int(n)
		} else if n > int64(len(c.buf)-c.pos)/int64(itemMin) {
			return c.fail(serde.ErrTruncated, "block of %d %s items cannot fit in %d bytes", n, s.kind, len(c.buf)-c.pos)
		}
		for i := int64(0); i < n; i++ {
			if s.kind == kMap {
				kl, err := c.varint()
				if err != nil {
					return err
				}
				if err := c.skip(kl, "map key"); err != nil {
					return err
				}
			}
			if err := c.value(s.items, depth+1); err != nil {
				return err
			}
		}
	}
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
