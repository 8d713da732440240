package avro

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

var unixEpoch = time.Unix(0, 0).UTC()

// defaultToNative converts a field default, as decoded from the schema's
// JSON, to the native form goavro produces for schema s.
func defaultToNative(s *avroSchema, v any) (any, error) {
	switch s.kind {
	case kNull:
		if v != nil {
			return nil, fmt.Errorf("null default must be null, got %v", v)
		}
		return nil, nil
	case kBoolean:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("boolean default must be true or false, got %v", v)
		}
		return b, nil
	case kInt, kLong:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s default must be a number, got %v", s.kind, v)
		}
		i, err := n.Int64()
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<63 {
				return nil, fmt.Errorf("%s default %s is not an integer", s.kind, n)
			}
			i = int64(f)
		}
		if s.kind == kInt {
			if i < math.MinInt32 || i > math.MaxInt32 {
				return nil, fmt.Errorf("int default %d out of range", i)
			}
			return nativeOf(s, int32(i)), nil
		}
		return nativeOf(s, i), nil
	case kFloat, kDouble:
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("%s default must be a number, got %v", s.kind, v)
		}
		f, err := n.Float64()
		if err != nil {
			return nil, fmt.Errorf("%s default %s: %w", s.kind, n, err)
		}
		if s.kind == kFloat {
			return float32(f), nil
		}
		return f, nil
	case kString, kEnum:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s default must be a string, got %v", s.kind, v)
		}
		if s.kind == kEnum {
			if _, ok := s.symbolIndex[str]; !ok {
				return nil, fmt.Errorf("enum default %q is not a symbol of %s", str, s.name)
			}
			return str, nil
		}
		return checkedNative(s, str)
	case kBytes, kFixed:
		str, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%s default must be a string, got %v", s.kind, v)
		}
		b := make([]byte, 0, len(str))
		for _, r := range str {
			if r > 0xff {
				return nil, fmt.Errorf("%s default holds code point U+%04X above U+00FF", s.kind, r)
			}
			b = append(b, byte(r))
		}
		if s.kind == kFixed && len(b) != s.size {
			return nil, fmt.Errorf("fixed %s default has %d bytes, want %d", s.name, len(b), s.size)
		}
		return checkedNative(s, b)
	case kArray:
		arr, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("array default must be a JSON array, got %T", v)
		}
		out := make([]any, len(arr))
		for i, it := range arr {
			x, err := defaultToNative(s.items, it)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = x
		}
		return out, nil
	case kMap:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("map default must be a JSON object, got %T", v)
		}
		out := make(map[string]any, len(m))
		for k, it := range m {
			x, err := defaultToNative(s.items, it)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = x
		}
		return out, nil
	case kRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("record default must be a JSON object, got %T", v)
		}
		out := make(map[string]any, len(s.fields))
		for _, f := range s.fields {
			raw, ok := m[f.name]
			if !ok {
				if !f.hasDefault {
					return nil, fmt.Errorf("record %s default lacks field %q", s.name, f.name)
				}
				raw = f.def
			}
			x, err := defaultToNative(f.schema, raw)
			if err != nil {
				return nil, fmt.Errorf("field %q: %w", f.name, err)
			}
			out[f.name] = x
		}
		return out, nil
	case kUnion:
		// The specification says the default matches the first branch; a
		// later branch is accepted too, as newer Avro releases allow.
		var firstErr error
		for _, b := range s.branches {
			x, err := defaultToNative(b, v)
			if err == nil {
				return wrapUnion(b, x), nil
			}
			if firstErr == nil {
				firstErr = err
			}
		}
		return nil, firstErr
	}
	return nil, fmt.Errorf("unsupported schema kind %s", s.kind)
}

// wrapUnion returns v in goavro's native union form for branch b.
func wrapUnion(b *avroSchema, v any) any {
	if b.kind == kNull {
		return nil
	}
	return map[string]any{b.unionName: v}
}

// checkedNative converts physical default p of s to its native form and
// checks it.
func checkedNative(s *avroSchema, p any) (any, error) {
	return checkedNativeAt(s, p, "")
}

// checkedNativeAt converts boxed physical value x of s to its native
// form and checks it; path locates it for the error.
func checkedNativeAt(s *avroSchema, x any, path string) (any, error) {
	if s.lt == nil || s.lt.toNative == nil {
		return x, nil
	}
	p, ok := physicalOf(s, x)
	if !ok {
		return x, nil
	}
	return readLogical(s, p, path)
}

// markChecks sets hasCheck on every node from which a value of a logical
// type with a check is reachable.
func markChecks(s *avroSchema, visiting map[*avroSchema]bool) bool {
	if visiting[s] {
		return s.hasCheck
	}
	visiting[s] = true
	has := s.lt != nil && s.lt.check != nil
	switch s.kind {
	case kArray, kMap:
		has = markChecks(s.items, visiting) || has
	case kRecord:
		for _, f := range s.fields {
			has = markChecks(f.schema, visiting) || has
		}
	case kUnion:
		for _, b := range s.branches {
			has = markChecks(b, visiting) || has
		}
	}
	s.hasCheck = has
	return has
}

// daysSinceEpoch is the Avro date of t: whole days since 1970-01-01,
// rounded down (so the day before the epoch is -1 at any time of day).
func daysSinceEpoch(t time.Time) int64 {
	sec := t.Unix()
	d := sec / 86400
	if sec%86400 < 0 {
		d--
	}
	return d
}
