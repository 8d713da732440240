package avro

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"time"
)

// This file is the one place where brook's Avro logical types are defined.
// The schema parser, the binder, the compiled struct codec, the native
// reader and writer (generic values), schema defaults, schema resolution
// and JSON rendering all consult logicalTypes and nothing else; adding a
// logical type is adding one entry here (and a test). See docs/DESIGN.md,
// "Adding an Avro logical type".
//
// A value of a logical type exists in three forms:
//   - physical: what the underlying Avro type holds, a phys (i for int and
//     long, s for string, b for bytes and fixed), unboxed so the compiled
//     codec does not allocate for it;
//   - native: what generic values (map[string]any) hold, goavro's form —
//     goTypes[0];
//   - Go: a struct field of one of goTypes.

// Names of the logical types this package understands; any other
// logicalType attribute is ignored, as the Avro specification requires.
const (
	ltNone            = ""
	ltDecimal         = "decimal"
	ltUUID            = "uuid"
	ltDate            = "date"
	ltTimeMillis      = "time-millis"
	ltTimeMicros      = "time-micros"
	ltTimestampMillis = "timestamp-millis"
	ltTimestampMicros = "timestamp-micros"
)

// logicalType describes one Avro logical type.
type logicalType struct {
	// name is the logicalType attribute.
	name string
	// kinds are the underlying Avro types the annotation is valid on. On
	// any other type it is ignored, as the Avro specification requires.
	kinds []avroKind
	// qualifiedBranch: inside a union the branch is named
	// "<underlying type>.<name>" (goavro's convention, e.g.
	// "long.timestamp-millis"); otherwise by its underlying type. Named
	// types (fixed) are always named by their full name.
	qualifiedBranch bool
	// params, if not nil, reads the annotation's attributes into s; false
	// makes the annotation invalid, hence ignored.
	params func(s *avroSchema, attrs map[string]any) bool
	// goTypes are the Go types a struct field of this type may have, and
	// goTypes[0] is the native form. A T in goTypes whose *T is
	// goTypes[0] is converted through a pointer (big.Rat for *big.Rat).
	// Empty: the logical type binds like its underlying type.
	goTypes []reflect.Type
	// toNative converts a physical value to the native form, without
	// checking it (p.b aliases the data: copy or convert it). Required
	// with goTypes; nil: the physical value is the native value.
	toNative func(s *avroSchema, p phys) any
	// read, if not nil, is toNative followed by check, done faster (the
	// compiled decoder and resolution use it).
	read func(s *avroSchema, p phys, path string) (any, error)
	// toPhysical converts a native value to the physical form, refusing
	// (never rounding) what the schema cannot hold, whatever check
	// refuses included; path locates the value for the error. ok is false
	// for a value of another Go type, left for the writer to report.
	// Required with goTypes.
	toPhysical func(s *avroSchema, n any, path string) (p phys, ok bool, err error)
	// check, if not nil, refuses a native value that the schema cannot hold
	// (path locates it). It runs on every value written and every value
	// read, on the struct and generic paths alike.
	check func(s *avroSchema, native any, path string) error
	// json, if not nil, renders a native value as a JSON literal for
	// ValueJSON; ok false falls back to encoding/json.
	json func(s *avroSchema, native any) (literal string, ok bool)
}

var (
	goTime = reflect.TypeFor[time.Time]()
	goDur  = reflect.TypeFor[time.Duration]()
)

// logicalTypes lists every logical type brook understands, by name. Any
// other logicalType attribute is ignored.
var logicalTypes = map[string]*logicalType{
	ltDecimal: {
		name:  ltDecimal,
		kinds: []avroKind{kBytes, kFixed},
		// goavro names a bytes decimal branch "bytes.decimal", a fixed one
		// by the fixed's name.
		qualifiedBranch: true,
		params: func(s *avroSchema, m map[string]any) bool {
			prec, okP, errP := intAttr(m, "precision")
			scale, _, errS := intAttr(m, "scale")
			if errP != nil || errS != nil || !okP || prec < 1 || scale > prec {
				return false
			}
			s.precision, s.scale = prec, scale
			return true
		},
		goTypes: []reflect.Type{reflect.TypeFor[*big.Rat](), reflect.TypeFor[big.Rat]()},
		toNative: func(s *avroSchema, p phys) any {
			return decimalFromBytes(p.b, s.scale)
		},
		read: func(s *avroSchema, p phys, path string) (any, error) {
			// A value read at its own scale needs only the precision check.
			u := unscaledFromBytes(p.b)
			r := new(big.Rat).SetFrac(u, pow10(s.scale))
			if moreDigits(u, s.precision) {
				return nil, decimalErr(s, path, r, fmt.Sprintf("more than %d digits in all", s.precision))
			}
			return r, nil
		},
		toPhysical: func(s *avroSchema, n any, path string) (phys, bool, error) {
			var b []byte
			var err error
			switch r := n.(type) {
			case *big.Rat:
				b, err = decimalBytes(s, r, path)
			case big.Rat:
				b, err = decimalBytes(s, &r, path)
			default:
				return phys{}, false, nil
			}
			return phys{b: b}, true, err
		},
		check: func(s *avroSchema, n any, path string) error {
			var r *big.Rat
			switch x := n.(type) {
			case *big.Rat:
				r = x
			case big.Rat:
				r = &x
			default:
				return nil // the writer reports the type
			}
			if r == nil {
				return decimalErr(s, path, nil, "")
			}
			_, err := decimalBytes(s, r, path)
			return err
		},
		json: func(s *avroSchema, n any) (string, bool) {
			switch r := n.(type) {
			case *big.Rat:
				if r == nil {
					return "null", true
				}
				return r.FloatString(max(s.scale, 0)), true
			case big.Rat:
				return r.FloatString(max(s.scale, 0)), true
			}
			return "", false
		},
	},
	ltUUID: {
		name:  ltUUID,
		kinds: []avroKind{kString},
		// Binds and reads as a string; goavro names its branch "string".
	},
	ltDate: {
		name:            ltDate,
		kinds:           []avroKind{kInt},
		qualifiedBranch: true,
		goTypes:         []reflect.Type{goTime},
		toNative: func(_ *avroSchema, p phys) any {
			return unixEpoch.AddDate(0, 0, int(p.i))
		},
		toPhysical: func(_ *avroSchema, n any, path string) (phys, bool, error) {
			t, ok := n.(time.Time)
			if !ok {
				return phys{}, false, nil
			}
			d := daysSinceEpoch(t)
			if d < math.MinInt32 || d > math.MaxInt32 {
				return phys{}, true, pathErr(path, "date %v out of range", t)
			}
			return phys{i: d}, true, nil
		},
	},
	ltTimeMillis: {
		name:            ltTimeMillis,
		kinds:           []avroKind{kInt},
		qualifiedBranch: true,
		goTypes:         []reflect.Type{goDur},
		toNative: func(_ *avroSchema, p phys) any {
			return time.Duration(p.i) * time.Millisecond
		},
		toPhysical: func(_ *avroSchema, n any, path string) (phys, bool, error) {
			d, ok := n.(time.Duration)
			if !ok {
				return phys{}, false, nil
			}
			ms := d / time.Millisecond
			if ms < math.MinInt32 || ms > math.MaxInt32 {
				return phys{}, true, pathErr(path, "time-millis %v out of range", d)
			}
			return phys{i: int64(ms)}, true, nil
		},
		json: durationJSON,
	},
	ltTimeMicros: {
		name:            ltTimeMicros,
		kinds:           []avroKind{kLong},
		qualifiedBranch: true,
		goTypes:         []reflect.Type{goDur},
		toNative: func(_ *avroSchema, p phys) any {
			return time.Duration(p.i) * time.Microsecond
		},
		toPhysical: func(_ *avroSchema, n any, _ string) (phys, bool, error) {
			d, ok := n.(time.Duration)
			return phys{i: int64(d / time.Microsecond)}, ok, nil
		},
		json: durationJSON,
	},
	ltTimestampMillis: {
		name:            ltTimestampMillis,
		kinds:           []avroKind{kLong},
		qualifiedBranch: true,
		goTypes:         []reflect.Type{goTime},
		toNative: func(_ *avroSchema, p phys) any {
			sec := p.i / 1e3
			return time.Unix(sec, (p.i-sec*1e3)*1e6).UTC()
		},
		toPhysical: func(_ *avroSchema, n any, _ string) (phys, bool, error) {
			t, ok := n.(time.Time)
			return phys{i: t.Unix()*1e3 + int64(t.Nanosecond()/1e6)}, ok, nil
		},
	},
	ltTimestampMicros: {
		name:            ltTimestampMicros,
		kinds:           []avroKind{kLong},
		qualifiedBranch: true,
		goTypes:         []reflect.Type{goTime},
		toNative: func(_ *avroSchema, p phys) any {
			sec := p.i / 1e6
			return time.Unix(sec, (p.i-sec*1e6)*1e3).UTC()
		},
		toPhysical: func(_ *avroSchema, n any, _ string) (phys, bool, error) {
			t, ok := n.(time.Time)
			return phys{i: t.Unix()*1e6 + int64(t.Nanosecond()/1e3)}, ok, nil
		},
	},
}

func durationJSON(_ *avroSchema, n any) (string, bool) {
	d, ok := n.(time.Duration)
	if !ok {
		return "", false
	}
	return `"` + d.String() + `"`, true
}

// applyLogical records a logical type on a primitive or fixed node when the
// annotation is valid for it; an invalid annotation is ignored, as the Avro
// specification requires, and the node keeps its underlying type.
func applyLogical(s *avroSchema, name string, attrs map[string]any) {
	lt, ok := logicalTypes[name]
	if !ok {
		return
	}
	valid := false
	for _, k := range lt.kinds {
		valid = valid || k == s.kind
	}
	if !valid || (lt.params != nil && !lt.params(s, attrs)) {
		return
	}
	s.logical, s.lt = name, lt
	if lt.qualifiedBranch && s.kind != kFixed {
		s.unionName = s.kind.String() + "." + name
	}
}

// converts reports whether values of lt differ from their physical form.
// A nil lt converts nothing.
func (lt *logicalType) converts() bool {
	return lt != nil && (lt.toNative != nil || lt.toPhysical != nil)
}

// phys is a value of an underlying Avro type: i for int and long, b
// for bytes and fixed, s for string.
type phys struct {
	i int64
	b []byte
	s string
}

// physicalOf reads boxed physical value x (int32, int64 or int, a whole
// float64 or float32, string, []byte) for schema s, as goavro accepts them.
func physicalOf(s *avroSchema, x any) (phys, bool) {
	switch s.kind {
	case kInt, kLong:
		var i int64
		switch v := x.(type) {
		case int32:
			i = int64(v)
		case int64:
			i = v
		case int:
			i = int64(v)
		case float64: // only whole numbers: never rounded
			if i = int64(v); float64(i) != v {
				return phys{}, false
			}
		case float32:
			if i = int64(v); float32(i) != v {
				return phys{}, false
			}
		default:
			return phys{}, false
		}
		return phys{i: i}, true
	case kString, kBytes, kFixed:
		switch v := x.(type) {
		case string:
			if s.kind == kString {
				return phys{s: v}, true
			}
			return phys{b: []byte(v)}, true
		case []byte:
			if s.kind == kString {
				return phys{s: string(v)}, true
			}
			return phys{b: v}, true
		}
	}
	return phys{}, false
}

// boxed returns p as the Go value goavro's native form uses for the
// underlying type of s (int32, int64, string, []byte).
func (p phys) boxed(s *avroSchema) any {
	switch s.kind {
	case kInt:
		return int32(p.i)
	case kLong:
		return p.i
	case kString:
		return p.s
	}
	return p.b
}

// nativeOf converts boxed physical value x of s to its native form.
func nativeOf(s *avroSchema, x any) any {
	if s.lt == nil || s.lt.toNative == nil {
		return x
	}
	p, ok := physicalOf(s, x)
	if !ok {
		return x
	}
	return s.lt.toNative(s, p)
}

// readLogical converts physical value p of s, which has a logical type
// with goTypes, to its native form and checks it.
func readLogical(s *avroSchema, p phys, path string) (any, error) {
	lt := s.lt
	if lt.read != nil {
		return lt.read(s, p, path)
	}
	n := lt.toNative(s, p)
	if lt.check != nil {
		if err := lt.check(s, n, path); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// toPhysical turns a native value of schema s into its underlying Avro
// representation (int32, int64, []byte, ...), undoing the logical type and
// refusing what does not fit. Other values are returned unchanged.
func toPhysical(s *avroSchema, n any) (any, error) {
	if s.lt == nil || s.lt.toPhysical == nil {
		return n, nil
	}
	p, ok, err := s.lt.toPhysical(s, n, "")
	if err != nil {
		return nil, err
	}
	if !ok {
		return n, nil
	}
	return p.boxed(s), nil
}

// fromPhysical turns an underlying int, long or string into the native
// form of reader schema r's logical type (bytesResolver does bytes and
// decimals).
func fromPhysical(r *avroSchema, v any) any {
	switch v.(type) {
	case int32, int64, string:
		return nativeOf(r, v)
	}
	return v
}

// logicalGoTypes says which Go types a field of s's logical type needs.
func logicalGoTypes(lt *logicalType) string {
	out := ""
	for i, t := range lt.goTypes {
		if i > 0 {
			out += " or "
		}
		out += t.String()
	}
	return out
}

// logicalGo returns the logical type's Go value held by v as a native
// value, and whether v is one of its Go types.
func logicalGo(lt *logicalType, v reflect.Value) (any, bool) {
	switch {
	case v.Type() == lt.goTypes[0]:
		return v.Interface(), true
	case reflect.PointerTo(v.Type()) == lt.goTypes[0]:
		p := reflect.New(v.Type())
		p.Elem().Set(v)
		return p.Interface(), true
	}
	return nil, false
}

// setLogicalGo stores native value n in v, one of the logical type's Go
// types.
func setLogicalGo(lt *logicalType, n any, v reflect.Value) bool {
	nv := reflect.ValueOf(n)
	if !nv.IsValid() || nv.Type() != lt.goTypes[0] {
		return false
	}
	if v.Type() == lt.goTypes[0] {
		v.Set(nv)
		return true
	}
	if nv.Kind() == reflect.Pointer && !nv.IsNil() && nv.Type().Elem() == v.Type() {
		v.Set(nv.Elem())
		return true
	}
	return false
}

// bindsLogical reports whether Go type t can hold values of lt.
func bindsLogical(lt *logicalType, t reflect.Type) bool {
	for _, g := range lt.goTypes {
		if t == g {
			return true
		}
	}
	return false
}

// checkLogical runs the check of every logical-type value in native value
// n of schema s (decimals: precision and scale, as decimalBytes does when
// writing); path is the location of n, in the form the struct binder uses,
// so both paths report the same error. Values of the wrong Go type are
// left for the encoder to report.
func checkLogical(s *avroSchema, n any, path string, depth int) error {
	if !s.hasCheck {
		return nil
	}
	if depth > maxAvroDepth {
		return fmt.Errorf("serde: avro: %s: value nested deeper than %d", path, maxAvroDepth)
	}
	if s.lt != nil && s.lt.check != nil {
		return s.lt.check(s, n, path)
	}
	switch s.kind {
	case kArray:
		if items, ok := n.([]any); ok {
			p := path + "[]"
			for _, it := range items {
				if err := checkLogical(s.items, it, p, depth+1); err != nil {
					return err
				}
			}
		}
	case kMap:
		if m, ok := n.(map[string]any); ok {
			p := path + "{}"
			for _, it := range m {
				if err := checkLogical(s.items, it, p, depth+1); err != nil {
					return err
				}
			}
		}
	case kRecord:
		if m, ok := n.(map[string]any); ok {
			for _, f := range s.fields {
				if !f.schema.hasCheck {
					continue
				}
				if x, ok := m[f.name]; ok {
					if err := checkLogical(f.schema, x, path+"."+f.name, depth+1); err != nil {
						return err
					}
				}
			}
		}
	case kUnion:
		if m, ok := n.(map[string]any); ok && len(m) == 1 {
			for _, b := range s.branches {
				if x, ok := m[b.unionName]; ok {
					return checkLogical(b, x, path, depth+1)
				}
			}
		}
	}
	return nil
}

// pathErr is an error located at path (if any).
func pathErr(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	return fmt.Errorf("%s", msg)
}
