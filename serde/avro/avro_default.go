package avro

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
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
			return intLogical(s, int32(i)), nil
		}
		return longLogical(s, i), nil
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
		}
		return str, nil
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
		if s.logical == ltDecimal {
			return decodeDecimal(s, b, "")
		}
		return b, nil
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

// intLogical converts a physical int to the native form of s's logical type.
func intLogical(s *avroSchema, i int32) any {
	switch s.logical {
	case ltDate:
		return unixEpoch.AddDate(0, 0, int(i))
	case ltTimeMillis:
		return time.Duration(i) * time.Millisecond
	}
	return i
}

// longLogical converts a physical long to the native form of s's logical type.
func longLogical(s *avroSchema, i int64) any {
	switch s.logical {
	case ltTimestampMillis:
		sec := i / 1e3
		return time.Unix(sec, (i-sec*1e3)*1e6).UTC()
	case ltTimestampMicros:
		sec := i / 1e6
		return time.Unix(sec, (i-sec*1e6)*1e3).UTC()
	case ltTimeMicros:
		return time.Duration(i) * time.Microsecond
	}
	return i
}

// toPhysical turns a native value of writer schema w into its underlying
// Avro representation (int32, int64, []byte, ...), undoing logical types.
func toPhysical(w *avroSchema, v any) (any, error) {
	switch x := v.(type) {
	case time.Time:
		switch w.logical {
		case ltDate:
			d := daysSinceEpoch(x)
			if d < math.MinInt32 || d > math.MaxInt32 {
				return nil, fmt.Errorf("date %v out of range", x)
			}
			return int32(d), nil
		case ltTimestampMillis:
			return x.Unix()*1e3 + int64(x.Nanosecond()/1e6), nil
		case ltTimestampMicros:
			return x.Unix()*1e6 + int64(x.Nanosecond()/1e3), nil
		}
	case time.Duration:
		switch w.logical {
		case ltTimeMillis:
			return int32(x / time.Millisecond), nil
		case ltTimeMicros:
			return int64(x / time.Microsecond), nil
		}
	case *big.Rat:
		if w.logical == ltDecimal {
			return decimalBytes(w, x, "")
		}
	}
	return v, nil
}

// fromPhysical turns an underlying int or long into the native form of
// reader schema r's logical type (bytesResolver does bytes and decimals).
func fromPhysical(r *avroSchema, v any) any {
	switch x := v.(type) {
	case int32:
		return intLogical(r, x)
	case int64:
		return longLogical(r, x)
	}
	return v
}

// markDecimals sets hasDecimal on every node from which a decimal is
// reachable.
func markDecimals(s *avroSchema, visiting map[*avroSchema]bool) bool {
	if visiting[s] {
		return s.hasDecimal
	}
	visiting[s] = true
	has := s.logical == ltDecimal
	switch s.kind {
	case kArray, kMap:
		has = markDecimals(s.items, visiting) || has
	case kRecord:
		for _, f := range s.fields {
			has = markDecimals(f.schema, visiting) || has
		}
	case kUnion:
		for _, b := range s.branches {
			has = markDecimals(b, visiting) || has
		}
	}
	s.hasDecimal = has
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

// hasFixedDecimal reports whether a fixed decimal is reachable from s.
// goavro cannot encode those when the value's minimal two's complement is
// shorter than the fixed size (zero among them), so values of such schemas
// are encoded by appendNative instead.
func hasFixedDecimal(s *avroSchema, seen map[*avroSchema]bool) bool {
	if seen[s] {
		return false
	}
	seen[s] = true
	if s.kind == kFixed && s.logical == ltDecimal {
		return true
	}
	switch s.kind {
	case kArray, kMap:
		return hasFixedDecimal(s.items, seen)
	case kRecord:
		for _, f := range s.fields {
			if hasFixedDecimal(f.schema, seen) {
				return true
			}
		}
	case kUnion:
		for _, b := range s.branches {
			if hasFixedDecimal(b, seen) {
				return true
			}
		}
	}
	return false
}
