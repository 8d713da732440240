package avro

import (
	"encoding/binary"
	"fmt"
	"github.com/brookstream/brook/serde"
	"math"
)

// This file holds brook's own Avro binary reader and writer for values in
// goavro's native form. The compiled struct codecs use them for the parts
// of a schema they do not specialise (maps, decimals, `any` fields), and
// the decoder half validates as it reads: lengths and counts are checked
// against the bytes left before anything is allocated.

func appendLong(buf []byte, v int64) []byte {
	u := uint64(v<<1) ^ uint64(v>>63)
	for u >= 0x80 {
		buf = append(buf, byte(u)|0x80)
		u >>= 7
	}
	return append(buf, byte(u))
}

func appendString(buf []byte, s string) []byte {
	buf = appendLong(buf, int64(len(s)))
	return append(buf, s...)
}

func appendBytes(buf []byte, b []byte) []byte {
	buf = appendLong(buf, int64(len(b)))
	return append(buf, b...)
}

func appendFloat(buf []byte, f float32) []byte {
	return binary.LittleEndian.AppendUint32(buf, math.Float32bits(f))
}

func appendDouble(buf []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(buf, math.Float64bits(f))
}

func wrongNative(s *avroSchema, n any) error {
	return fmt.Errorf("value %T does not match Avro %s", n, describe(s))
}

// appendNative appends the binary encoding of native value n of schema s.
func appendNative(s *avroSchema, buf []byte, n any) ([]byte, error) {
	switch s.kind {
	case kNull:
		if n != nil {
			return nil, wrongNative(s, n)
		}
		return buf, nil
	case kBoolean:
		b, ok := n.(bool)
		if !ok {
			return nil, wrongNative(s, n)
		}
		if b {
			return append(buf, 1), nil
		}
		return append(buf, 0), nil
	case kInt, kLong, kString, kBytes, kFixed:
		if s.lt != nil && s.lt.toPhysical != nil {
			p, ok, err := s.lt.toPhysical(s, n, "")
			if err != nil {
				return nil, err
			}
			if ok {
				return appendPhysical(s, buf, p, "")
			}
		}
		p, ok := physicalOf(s, n)
		if !ok {
			return nil, wrongNative(s, n)
		}
		return appendPhysical(s, buf, p, "")
	case kFloat:
		switch x := n.(type) {
		case float32:
			return appendFloat(buf, x), nil
		case float64:
			return appendFloat(buf, float32(x)), nil
		}
		if i, ok := asInt(n); ok { // as goavro accepts: only when exact
			if f := float32(i); int64(f) == i {
				return appendFloat(buf, f), nil
			}
			return nil, fmt.Errorf("%T %d is not exact as Avro float", n, i)
		}
		return nil, wrongNative(s, n)
	case kDouble:
		switch x := n.(type) {
		case float64:
			return appendDouble(buf, x), nil
		case float32:
			return appendDouble(buf, float64(x)), nil
		}
		if i, ok := asInt(n); ok {
			if f := float64(i); int64(f) == i {
				return appendDouble(buf, f), nil
			}
			return nil, fmt.Errorf("%T %d is not exact as Avro double", n, i)
		}
		return nil, wrongNative(s, n)
	case kEnum:
		sym, ok := n.(string)
		if !ok {
			return nil, wrongNative(s, n)
		}
		i, ok := s.symbolIndex[sym]
		if !ok {
			return nil, fmt.Errorf("%q is not a symbol of enum %s", sym, s.name)
		}
		return appendLong(buf, int64(i)), nil
	case kArray:
		items, ok := n.([]any)
		if !ok {
			return nil, wrongNative(s, n)
		}
		if len(items) > 0 {
			buf = appendLong(buf, int64(len(items)))
			for _, it := range items {
				var err error
				if buf, err = appendNative(s.items, buf, it); err != nil {
					return nil, err
				}
			}
		}
		return append(buf, 0), nil
	case kMap:
		m, ok := n.(map[string]any)
		if !ok {
			return nil, wrongNative(s, n)
		}
		if len(m) > 0 {
			buf = appendLong(buf, int64(len(m)))
			for k, it := range m {
				buf = appendString(buf, k)
				var err error
				if buf, err = appendNative(s.items, buf, it); err != nil {
					return nil, err
				}
			}
		}
		return append(buf, 0), nil
	case kRecord:
		m, ok := n.(map[string]any)
		if !ok {
			return nil, wrongNative(s, n)
		}
		for _, f := range s.fields {
			x, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, fmt.Errorf("record %s: no value for field %q, which has no default", s.name, f.name)
				}
				var err error
				if x, err = defaultToNative(f.schema, f.def); err != nil {
					return nil, err
				}
			}
			var err error
			if buf, err = appendNative(f.schema, buf, x); err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
		}
		return buf, nil
	case kUnion:
		if n == nil {
			for i, b := range s.branches {
				if b.kind == kNull {
					return appendLong(buf, int64(i)), nil
				}
			}
			return nil, fmt.Errorf("nil for union %s without null", unionDesc(s))
		}
		m, ok := n.(map[string]any)
		if ok && len(m) == 1 {
			for name, x := range m {
				for i, b := range s.branches {
					if b.unionName == name {
						return appendNative(b, appendLong(buf, int64(i)), x)
					}
				}
			}
		}
		return nil, fmt.Errorf("union %s value must be nil or map[branch]value, got %T", unionDesc(s), n)
	}
	return nil, wrongNative(s, n)
}

// Reading primitives. Each checks bounds and reports serde.ErrTruncated or
// serde.ErrCorrupt through a *checkError.

func (c *avroChecker) readBool() (bool, error) {
	if c.pos >= len(c.buf) {
		return false, c.fail(serde.ErrTruncated, "%v in a boolean", errShort)
	}
	b := c.buf[c.pos]
	if b > 1 {
		return false, c.fail(serde.ErrCorrupt, "boolean byte %d", b)
	}
	c.pos++
	return b == 1, nil
}

func (c *avroChecker) readInt() (int32, error) {
	v, err := c.varint()
	if err != nil {
		return 0, err
	}
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, c.fail(serde.ErrCorrupt, "int %d out of 32-bit range", v)
	}
	return int32(v), nil
}

func (c *avroChecker) readFixed(n int) ([]byte, error) {
	if n > len(c.buf)-c.pos {
		return nil, c.fail(serde.ErrTruncated, "%d bytes wanted, %d left", n, len(c.buf)-c.pos)
	}
	b := c.buf[c.pos : c.pos+n]
	c.pos += n
	return b, nil
}

// readBytes returns a length-prefixed byte string, aliasing the input.
func (c *avroChecker) readBytes() ([]byte, error) {
	n, err := c.varint()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, c.fail(serde.ErrCorrupt, "negative length %d", n)
	}
	if n > int64(len(c.buf)-c.pos) {
		return nil, c.fail(serde.ErrTruncated, "%d bytes wanted, %d left", n, len(c.buf)-c.pos)
	}
	return c.readFixed(int(n))
}

func (c *avroChecker) readFloat() (float32, error) {
	b, err := c.readFixed(4)
	if err != nil {
		return 0, err
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(b)), nil
}

func (c *avroChecker) readDouble() (float64, error) {
	b, err := c.readFixed(8)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(b)), nil
}

// blockCount reads an array or map block header and checks the count
// against the bytes left (items of at least itemMin bytes each) or the
// zero-width budget. It returns 0 at the end of the blocks.
func (c *avroChecker) blockCount(itemMin int, what string) (int, error) {
	n, err := c.varint()
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	if n < 0 {
		if n == math.MinInt64 {
			return 0, c.fail(serde.ErrCorrupt, "block count out of range")
		}
		n = -n
		size, err := c.varint()
		if err != nil {
			return 0, err
		}
		if size < 0 || size > int64(len(c.buf)-c.pos) {
			return 0, c.fail(serde.ErrCorrupt, "block size %d out of range", size)
		}
	}
	if itemMin == 0 {
		if n > int64(c.zeroBudget) {
			return 0, c.fail(serde.ErrCorrupt, "more than %d zero-width items", maxZeroWidthItems)
		}
		c.zeroBudget -= int(n)
	} else if n > int64(len(c.buf)-c.pos)/int64(itemMin) {
		return 0, c.fail(serde.ErrTruncated, "block of %d %s items cannot fit in %d bytes", n, what, len(c.buf)-c.pos)
	}
	return int(n), nil
}

// readPhysical reads one int, long, string, bytes or fixed value of s (b
// aliases the input).
func (c *avroChecker) readPhysical(s *avroSchema) (phys, error) {
	var p phys
	var err error
	switch s.kind {
	case kInt:
		var i int32
		i, err = c.readInt()
		p.i = int64(i)
	case kLong:
		p.i, err = c.varint()
	case kString:
		var b []byte
		b, err = c.readBytes()
		p.s = string(b)
	case kBytes:
		p.b, err = c.readBytes()
	case kFixed:
		p.b, err = c.readFixed(s.size)
	default:
		err = c.fail(serde.ErrCorrupt, "%s has no physical form", s.kind)
	}
	return p, err
}

// appendPhysical appends physical value p of schema s (an int, long,
// string, bytes or fixed).
func appendPhysical(s *avroSchema, buf []byte, p phys, path string) ([]byte, error) {
	switch s.kind {
	case kInt:
		if p.i < math.MinInt32 || p.i > math.MaxInt32 {
			return nil, pathErr(path, "%d overflows Avro int", p.i)
		}
		return appendLong(buf, p.i), nil
	case kLong:
		return appendLong(buf, p.i), nil
	case kString:
		return appendString(buf, p.s), nil
	case kBytes:
		return appendBytes(buf, p.b), nil
	case kFixed:
		if len(p.b) != s.size {
			return nil, pathErr(path, "%d bytes for fixed %s of size %d", len(p.b), s.name, s.size)
		}
		return append(buf, p.b...), nil
	}
	return nil, pathErr(path, "Avro %s has no physical form", s.kind)
}

// readNative reads one value of s in goavro's native form.
func (c *avroChecker) readNative(s *avroSchema) (any, error) {
	switch s.kind {
	case kNull:
		return nil, nil
	case kBoolean:
		return c.readBool()
	case kInt, kLong, kString, kBytes, kFixed:
		p, err := c.readPhysical(s)
		if err != nil {
			return nil, err
		}
		if s.lt != nil && s.lt.toNative != nil {
			return s.lt.toNative(s, p), nil
		}
		if s.kind == kBytes || s.kind == kFixed {
			p.b = append([]byte(nil), p.b...)
		}
		return p.boxed(s), nil
	case kFloat:
		return c.readFloat()
	case kDouble:
		return c.readDouble()
	case kEnum:
		i, err := c.varint()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(s.symbols)) {
			return nil, c.fail(serde.ErrCorrupt, "enum %s index %d out of range", s.name, i)
		}
		return s.symbols[i], nil
	}
	if c.depth++; c.depth > maxAvroDepth {
		return nil, c.fail(serde.ErrCorrupt, "nesting deeper than %d", maxAvroDepth)
	}
	defer func() { c.depth-- }()
	switch s.kind {
	case kUnion:
		i, err := c.varint()
		if err != nil {
			return nil, err
		}
		if i < 0 || i >= int64(len(s.branches)) {
			return nil, c.fail(serde.ErrCorrupt, "union branch index %d out of range", i)
		}
		b := s.branches[i]
		x, err := c.readNative(b)
		if err != nil {
			return nil, err
		}
		return wrapUnion(b, x), nil
	case kRecord:
		m := make(map[string]any, len(s.fields))
		for _, f := range s.fields {
			x, err := c.readNative(f.schema)
			if err != nil {
				return nil, err
			}
			m[f.name] = x
		}
		return m, nil
	case kArray:
		out := []any{}
		for {
			n, err := c.blockCount(s.items.minBytes, "array")
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			for ; n > 0; n-- {
				x, err := c.readNative(s.items)
				if err != nil {
					return nil, err
				}
				out = append(out, x)
			}
		}
	case kMap:
		out := map[string]any{}
		for {
			n, err := c.blockCount(s.items.minBytes+1, "map")
			if err != nil {
				return nil, err
			}
			if n == 0 {
				return out, nil
			}
			for ; n > 0; n-- {
				k, err := c.readBytes()
				if err != nil {
					return nil, err
				}
				x, err := c.readNative(s.items)
				if err != nil {
					return nil, err
				}
				out[string(k)] = x
			}
		}
	}
	return nil, c.fail(serde.ErrCorrupt, "unknown schema kind %d", s.kind)
}
