package avro

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"time"
)

// binder moves values between a Go type and goavro's native form for one
// schema. It is built once per (Go type, schema) and then only read.
type binder struct {
	// enc returns the native value for v.
	enc func(v reflect.Value) (any, error)
	// dec stores native value n into the settable v.
	dec func(n any, v reflect.Value) error
	// bin appends the Avro binary encoding of v (compiled, no native value).
	bin func(buf []byte, v reflect.Value) ([]byte, error)
	// unbin reads one binary value into the settable v, validating as it
	// goes.
	unbin func(c *avroChecker, v reflect.Value) error
}

// BindError says a Go type cannot represent an Avro schema.
type BindError struct {
	// Type is the Go type.
	Type reflect.Type
	// Path is the location in the schema ("Txn.amount").
	Path string
	// Reason says what does not fit.
	Reason string
}

// Error implements error.
func (e *BindError) Error() string {
	return fmt.Sprintf("serde: avro: Go type %v cannot hold %s: %s", e.Type, e.Path, e.Reason)
}

type bindKey struct {
	t reflect.Type
	s *avroSchema
}

type bindBuilder struct {
	memo map[bindKey]*binder
}

var (
	typeAny    = reflect.TypeFor[any]()
	typeTime   = reflect.TypeFor[time.Time]()
	typeDur    = reflect.TypeFor[time.Duration]()
	typeRatPtr = reflect.TypeFor[*big.Rat]()
	typeRat    = reflect.TypeFor[big.Rat]()
	typeBytes  = reflect.TypeFor[[]byte]()
	typeNative = reflect.TypeFor[map[string]any]()
)

func newBinder(t reflect.Type, s *avroSchema) (*binder, error) {
	b := &bindBuilder{memo: map[bindKey]*binder{}}
	return b.build(t, s, shortName(s))
}

func (b *bindBuilder) build(t reflect.Type, s *avroSchema, path string) (*binder, error) {
	key := bindKey{t, s}
	if bd, ok := b.memo[key]; ok {
		return bd, nil
	}
	bd := &binder{}
	b.memo[key] = bd
	enc, dec, err := b.make(t, s, path)
	if err != nil {
		delete(b.memo, key)
		return nil, err
	}
	bd.enc, bd.dec = enc, dec
	if err := b.compile(t, s, bd, path); err != nil {
		delete(b.memo, key)
		return nil, err
	}
	return bd, nil
}

func bindErr(t reflect.Type, path, format string, args ...any) error {
	return &BindError{Type: t, Path: path, Reason: fmt.Sprintf(format, args...)}
}

func typeErr(n any, want string) error {
	return fmt.Errorf("native value %T is not %s", n, want)
}

// passThrough is used for `any` (and map[string]any at a record): values
// are in goavro's native form already.
func passThrough() (func(reflect.Value) (any, error), func(any, reflect.Value) error) {
	return func(v reflect.Value) (any, error) { return v.Interface(), nil },
		func(n any, v reflect.Value) error {
			if n == nil {
				v.SetZero()
				return nil
			}
			nv := reflect.ValueOf(n)
			if !nv.Type().AssignableTo(v.Type()) {
				return typeErr(n, v.Type().String())
			}
			v.Set(nv)
			return nil
		}
}

type encFn = func(reflect.Value) (any, error)
type decFn = func(any, reflect.Value) error

func (b *bindBuilder) make(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	if t == typeAny {
		enc, dec := passThrough()
		if s.kind == kUnion {
			enc = unionInferEnc(s)
		}
		return enc, dec, nil
	}
	if s.kind == kUnion {
		return b.union(t, s, path)
	}
	logical := s.lt != nil && len(s.lt.goTypes) > 0
	if t.Kind() == reflect.Pointer && !(logical && bindsLogical(s.lt, t)) {
		// A pointer to a non-union: must not be nil.
		elem, err := b.build(t.Elem(), s, path)
		if err != nil {
			return nil, nil, err
		}
		return func(v reflect.Value) (any, error) {
				if v.IsNil() {
					return nil, fmt.Errorf("%s: nil %v for non-nullable %s", path, t, s.kind)
				}
				return elem.enc(v.Elem())
			}, func(n any, v reflect.Value) error {
				p := reflect.New(t.Elem())
				if err := elem.dec(n, p.Elem()); err != nil {
					return err
				}
				v.Set(p)
				return nil
			}, nil
	}
	if logical {
		return logicalBinder(t, s, path)
	}
	switch s.kind {
	case kNull:
		return func(reflect.Value) (any, error) { return nil, nil },
			func(_ any, v reflect.Value) error { v.SetZero(); return nil }, nil
	case kBoolean:
		if t.Kind() == reflect.Bool {
			return func(v reflect.Value) (any, error) { return v.Bool(), nil },
				func(n any, v reflect.Value) error {
					x, ok := n.(bool)
					if !ok {
						return typeErr(n, "bool")
					}
					v.SetBool(x)
					return nil
				}, nil
		}
	case kInt, kLong:
		return b.integer(t, s, path)
	case kFloat, kDouble:
		if t.Kind() == reflect.Float32 || t.Kind() == reflect.Float64 {
			return b.float(t, s)
		}
	case kString:
		if t.Kind() == reflect.String {
			return stringBinder(t)
		}
		if t == typeBytes {
			return func(v reflect.Value) (any, error) { return string(v.Bytes()), nil },
				func(n any, v reflect.Value) error {
					x, ok := n.(string)
					if !ok {
						return typeErr(n, "string")
					}
					v.SetBytes([]byte(x))
					return nil
				}, nil
		}
	case kEnum:
		if t.Kind() == reflect.String {
			syms := s.symbolIndex
			enc, dec, err := stringBinder(t)
			return func(v reflect.Value) (any, error) {
				if _, ok := syms[v.String()]; !ok {
					return nil, fmt.Errorf("%s: %q is not a symbol of enum %s", path, v.String(), s.name)
				}
				return enc(v)
			}, dec, err
		}
	case kBytes, kFixed:
		return b.bytes(t, s, path)
	case kArray:
		if t.Kind() == reflect.Slice && t != typeBytes {
			return b.array(t, s, path)
		}
	case kMap:
		if t.Kind() == reflect.Map && t.Key().Kind() == reflect.String {
			return b.mapping(t, s, path)
		}
	case kRecord:
		if t == typeNative {
			enc, dec := passThrough()
			return enc, dec, nil
		}
		if t.Kind() == reflect.Struct && t != typeTime && t != typeRat {
			return b.record(t, s, path)
		}
	}
	return nil, nil, bindErr(t, path, "no mapping from Avro %s", describe(s))
}

func stringBinder(t reflect.Type) (encFn, decFn, error) {
	return func(v reflect.Value) (any, error) { return v.String(), nil },
		func(n any, v reflect.Value) error {
			x, ok := n.(string)
			if !ok {
				return typeErr(n, "string")
			}
			v.SetString(x)
			return nil
		}, nil
}

func (b *bindBuilder) integer(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
	default:
		return nil, nil, bindErr(t, path, "Avro %s needs a Go signed integer", s.kind)
	}
	if s.kind == kLong {
		if t.Bits() < 64 {
			return nil, nil, bindErr(t, path, "Avro long needs int64 or int, not %v", t)
		}
		return func(v reflect.Value) (any, error) { return v.Int(), nil },
			func(n any, v reflect.Value) error {
				x, ok := n.(int64)
				if !ok {
					return typeErr(n, "int64")
				}
				v.SetInt(x)
				return nil
			}, nil
	}
	return func(v reflect.Value) (any, error) {
			x := v.Int()
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, fmt.Errorf("%s: %d overflows Avro int", path, x)
			}
			return int32(x), nil
		}, func(n any, v reflect.Value) error {
			x, ok := n.(int32)
			if !ok {
				return typeErr(n, "int32")
			}
			if v.OverflowInt(int64(x)) {
				return fmt.Errorf("%s: %d overflows %v", path, x, v.Type())
			}
			v.SetInt(int64(x))
			return nil
		}, nil
}

func (b *bindBuilder) float(t reflect.Type, s *avroSchema) (encFn, decFn, error) {
	if s.kind == kFloat {
		return func(v reflect.Value) (any, error) { return float32(v.Float()), nil },
			func(n any, v reflect.Value) error {
				x, ok := n.(float32)
				if !ok {
					return typeErr(n, "float32")
				}
				v.SetFloat(float64(x))
				return nil
			}, nil
	}
	if t.Kind() == reflect.Float32 {
		return nil, nil, bindErr(t, s.kind.String(), "Avro double needs float64")
	}
	return func(v reflect.Value) (any, error) { return v.Float(), nil },
		func(n any, v reflect.Value) error {
			x, ok := n.(float64)
			if !ok {
				return typeErr(n, "float64")
			}
			v.SetFloat(x)
			return nil
		}, nil
}

func (b *bindBuilder) bytes(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	if t == typeBytes || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) {
		size := -1
		if s.kind == kFixed {
			size = s.size
		}
		return func(v reflect.Value) (any, error) {
				if size >= 0 && v.Len() != size {
					return nil, fmt.Errorf("%s: %d bytes for fixed %s of size %d", path, v.Len(), s.name, size)
				}
				return v.Bytes(), nil
			}, func(n any, v reflect.Value) error {
				x, ok := n.([]byte)
				if !ok {
					return typeErr(n, "[]byte")
				}
				// goavro's []byte values alias the payload: copy.
				v.SetBytes(append([]byte(nil), x...))
				return nil
			}, nil
	}
	if s.kind == kFixed && t.Kind() == reflect.Array && t.Elem().Kind() == reflect.Uint8 && t.Len() == s.size {
		return func(v reflect.Value) (any, error) {
				out := make([]byte, s.size)
				reflect.Copy(reflect.ValueOf(out), v)
				return out, nil
			}, func(n any, v reflect.Value) error {
				x, ok := n.([]byte)
				if !ok || len(x) != s.size {
					return typeErr(n, fmt.Sprintf("[%d]byte", s.size))
				}
				reflect.Copy(v, reflect.ValueOf(x))
				return nil
			}, nil
	}
	if s.kind == kBytes && t.Kind() == reflect.String {
		return func(v reflect.Value) (any, error) { return []byte(v.String()), nil },
			func(n any, v reflect.Value) error {
				x, ok := n.([]byte)
				if !ok {
					return typeErr(n, "[]byte")
				}
				v.SetString(string(x))
				return nil
			}, nil
	}
	return nil, nil, bindErr(t, path, "Avro %s needs []byte%s", describe(s), map[bool]string{true: fmt.Sprintf(" or [%d]byte", s.size)}[s.kind == kFixed])
}

func (b *bindBuilder) array(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	elem, err := b.build(t.Elem(), s.items, path+"[]")
	if err != nil {
		return nil, nil, err
	}
	return func(v reflect.Value) (any, error) {
			out := make([]any, v.Len())
			for i := range out {
				x, err := elem.enc(v.Index(i))
				if err != nil {
					return nil, err
				}
				out[i] = x
			}
			return out, nil
		}, func(n any, v reflect.Value) error {
			x, ok := n.([]any)
			if !ok {
				return typeErr(n, "[]any")
			}
			sl := reflect.MakeSlice(t, len(x), len(x))
			for i, e := range x {
				if err := elem.dec(e, sl.Index(i)); err != nil {
					return err
				}
			}
			v.Set(sl)
			return nil
		}, nil
}

func (b *bindBuilder) mapping(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	elem, err := b.build(t.Elem(), s.items, path+"{}")
	if err != nil {
		return nil, nil, err
	}
	return func(v reflect.Value) (any, error) {
			out := make(map[string]any, v.Len())
			it := v.MapRange()
			for it.Next() {
				x, err := elem.enc(it.Value())
				if err != nil {
					return nil, err
				}
				out[it.Key().String()] = x
			}
			return out, nil
		}, func(n any, v reflect.Value) error {
			x, ok := n.(map[string]any)
			if !ok {
				return typeErr(n, "map[string]any")
			}
			m := reflect.MakeMapWithSize(t, len(x))
			ev := reflect.New(t.Elem()).Elem()
			kv := reflect.New(t.Key()).Elem()
			for k, e := range x {
				ev.SetZero()
				if err := elem.dec(e, ev); err != nil {
					return err
				}
				kv.SetString(k)
				m.SetMapIndex(kv, ev)
			}
			v.Set(m)
			return nil
		}, nil
}

type structField struct {
	index     []int
	name      string
	bd        *binder
	schemaIdx int
}

// structFields maps t's exported fields to the record's fields.
func (b *bindBuilder) structFields(t reflect.Type, s *avroSchema, path string) ([]structField, error) {
	var fields []structField
	seen := map[string]bool{}
	for _, sf := range reflect.VisibleFields(t) {
		if !sf.IsExported() || sf.Anonymous {
			continue
		}
		name := sf.Name
		if tag, ok := sf.Tag.Lookup("avro"); ok {
			tag, _, _ = strings.Cut(tag, ",")
			if tag == "-" {
				continue
			}
			if tag != "" {
				name = tag
			}
		}
		fi, ok := s.fieldIndex[name]
		if !ok {
			return nil, bindErr(t, path, "field %s (avro name %q) is not in the schema; tag it `avro:\"-\"` to skip it", sf.Name, name)
		}
		if seen[name] {
			return nil, bindErr(t, path, "two Go fields map to %q", name)
		}
		seen[name] = true
		bd, err := b.build(sf.Type, s.fields[fi].schema, path+"."+name)
		if err != nil {
			return nil, err
		}
		fields = append(fields, structField{index: sf.Index, name: name, bd: bd, schemaIdx: fi})
	}
	for _, f := range s.fields {
		if !seen[f.name] && !f.hasDefault {
			return nil, bindErr(t, path, "schema field %q has no default and no Go field (tag a field `avro:%q`)", f.name, f.name)
		}
	}
	return fields, nil
}

func (b *bindBuilder) record(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	fields, err := b.structFields(t, s, path)
	if err != nil {
		return nil, nil, err
	}
	return func(v reflect.Value) (any, error) {
			out := make(map[string]any, len(fields))
			for i := range fields {
				f := &fields[i]
				x, err := f.bd.enc(v.FieldByIndex(f.index))
				if err != nil {
					return nil, err
				}
				out[f.name] = x
			}
			return out, nil
		}, func(n any, v reflect.Value) error {
			m, ok := n.(map[string]any)
			if !ok {
				return typeErr(n, "record map")
			}
			for i := range fields {
				f := &fields[i]
				x, ok := m[f.name]
				if !ok {
					return fmt.Errorf("%s: record lacks field %q", path, f.name)
				}
				if err := f.bd.dec(x, v.FieldByIndex(f.index)); err != nil {
					return err
				}
			}
			return nil
		}, nil
}

// union binds a union to a Go type. A two-branch union with null maps to a
// pointer, slice or map (nil is null) or to a plain type (null decodes to
// the zero value and the zero value is never written as null). Other
// unions need an `any` Go type holding goavro's union form.
// unionShape is how a two-branch union with null (or a one-branch union)
// maps to a Go type.
type unionShape struct {
	nullIdx, other  int
	nullable, deref bool
	target          reflect.Type
}

func shapeOf(t reflect.Type, s *avroSchema) (unionShape, bool) {
	u := unionShape{nullIdx: -1, other: -1}
	for i, br := range s.branches {
		if br.kind == kNull {
			u.nullIdx = i
		} else if u.other == -1 {
			u.other = i
		} else {
			u.other = -2
		}
	}
	if u.other < 0 {
		return u, false
	}
	u.nullable = u.nullIdx >= 0 && (t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map)
	u.target = t
	br := s.branches[u.other]
	u.deref = u.nullable && t.Kind() == reflect.Pointer && !(br.lt != nil && bindsLogical(br.lt, t))
	if u.deref {
		u.target = t.Elem()
	}
	return u, true
}

func (b *bindBuilder) union(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	u, ok := shapeOf(t, s)
	if !ok {
		return nil, nil, bindErr(t, path, "union %s needs a Go `any` field (holding nil or map[branch]value)", unionDesc(s))
	}
	br := s.branches[u.other]
	name := br.unionName
	nullable, deref, target := u.nullable, u.deref, u.target
	inner, err := b.build(target, br, path)
	if err != nil {
		return nil, nil, err
	}
	return func(v reflect.Value) (any, error) {
			if nullable && v.IsNil() {
				return nil, nil
			}
			if deref {
				v = v.Elem()
			}
			x, err := inner.enc(v)
			if err != nil {
				return nil, err
			}
			return map[string]any{name: x}, nil
		}, func(n any, v reflect.Value) error {
			if n == nil {
				v.SetZero()
				return nil
			}
			m, ok := n.(map[string]any)
			if !ok || len(m) != 1 {
				return typeErr(n, "union value")
			}
			x, ok := m[name]
			if !ok {
				return fmt.Errorf("%s: union branch is not %q", path, name)
			}
			if deref {
				p := reflect.New(target)
				if err := inner.dec(x, p.Elem()); err != nil {
					return err
				}
				v.Set(p)
				return nil
			}
			return inner.dec(x, v)
		}, nil
}

// unionInferEnc encodes an `any` holding a union value: nil, goavro's
// map[branch]value form, or a bare value whose Go type picks the branch.
func unionInferEnc(s *avroSchema) encFn {
	names := map[string]bool{}
	for _, b := range s.branches {
		names[b.unionName] = true
	}
	return func(v reflect.Value) (any, error) {
		if v.IsNil() {
			return nil, nil
		}
		x := v.Interface()
		if m, ok := x.(map[string]any); ok && len(m) == 1 {
			for k := range m {
				if names[k] {
					return m, nil
				}
			}
		}
		for _, b := range s.branches {
			if nativeFits(b, x) {
				return map[string]any{b.unionName: x}, nil
			}
		}
		return nil, errors.New("value of type " + v.Elem().Type().String() + " fits no branch of union " + unionDesc(s))
	}
}

// nativeFits reports whether native value x can only belong to branch b.
func nativeFits(b *avroSchema, x any) bool {
	if b.lt != nil && len(b.lt.goTypes) > 0 {
		return reflect.TypeOf(x) == b.lt.goTypes[0]
	}
	switch x.(type) {
	case bool:
		return b.kind == kBoolean
	case int32:
		return b.kind == kInt
	case int64:
		return b.kind == kLong
	case float32:
		return b.kind == kFloat
	case float64:
		return b.kind == kDouble
	case string:
		return b.kind == kString
	case []byte:
		return b.kind == kBytes
	case []any:
		return b.kind == kArray
	}
	return false
}

// logicalBinder binds a logical type to one of its Go types.
func logicalBinder(t reflect.Type, s *avroSchema, path string) (encFn, decFn, error) {
	lt := s.lt
	if !bindsLogical(lt, t) {
		return nil, nil, bindErr(t, path, "Avro %s needs %s", describe(s), logicalGoTypes(lt))
	}
	return func(v reflect.Value) (any, error) {
			n, _ := logicalGo(lt, v)
			if _, _, err := lt.toPhysical(s, n, path); err != nil {
				return nil, err
			}
			return n, nil
		}, func(n any, v reflect.Value) error {
			if !setLogicalGo(lt, n, v) {
				return typeErr(n, lt.goTypes[0].String())
			}
			return nil
		}, nil
}
