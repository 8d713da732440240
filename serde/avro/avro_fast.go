package avro

import (
	"fmt"
	"github.com/brookstream/brook/serde"
	"math"
	"reflect"
)

// compile sets bd.bin and bd.unbin: straight between Go values and Avro
// binary for the common shapes, and through the native form (enc/dec with
// appendNative/readNative) for the rest.
func (b *bindBuilder) compile(t reflect.Type, s *avroSchema, bd *binder, path string) error {
	bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
		n, err := bd.enc(v)
		if err != nil {
			return nil, err
		}
		// Decimals in `any` values are checked here, as on the generic path.
		if err := checkLogical(s, n, path, 0); err != nil {
			return nil, err
		}
		return appendNative(s, buf, n)
	}
	bd.unbin = func(c *avroChecker, v reflect.Value) error {
		n, err := c.readNative(s)
		if err != nil {
			return err
		}
		if err := checkLogical(s, n, path, 0); err != nil {
			return err
		}
		return bd.dec(n, v)
	}
	if t == typeAny || t == typeNative {
		return nil
	}
	if s.kind == kUnion {
		return b.compileUnion(t, s, bd, path)
	}
	logical := s.lt != nil && len(s.lt.goTypes) > 0
	if logical && bindsLogical(s.lt, t) {
		return compileLogical(t, s, bd, path)
	}
	if t.Kind() == reflect.Pointer {
		elem, err := b.build(t.Elem(), s, path)
		if err != nil {
			return err
		}
		et := t.Elem()
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
			if v.IsNil() {
				return nil, fmt.Errorf("%s: nil %v for non-nullable %s", path, t, s.kind)
			}
			return elem.bin(buf, v.Elem())
		}
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			p := reflect.New(et)
			if err := elem.unbin(c, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
		return nil
	}
	switch {
	case s.kind == kBoolean && t.Kind() == reflect.Bool:
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
			if v.Bool() {
				return append(buf, 1), nil
			}
			return append(buf, 0), nil
		}
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			x, err := c.readBool()
			v.SetBool(x)
			return err
		}
	case (s.kind == kInt || s.kind == kLong) && isSignedInt(t):
		if s.kind == kLong {
			bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) { return appendLong(buf, v.Int()), nil }
			bd.unbin = func(c *avroChecker, v reflect.Value) error {
				x, err := c.varint()
				v.SetInt(x)
				return err
			}
			return nil
		}
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
			x := v.Int()
			if x < math.MinInt32 || x > math.MaxInt32 {
				return nil, fmt.Errorf("%s: %d overflows Avro int", path, x)
			}
			return appendLong(buf, x), nil
		}
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			x, err := c.readInt()
			if err != nil {
				return err
			}
			if v.OverflowInt(int64(x)) {
				return fmt.Errorf("%s: %d overflows %v", path, x, v.Type())
			}
			v.SetInt(int64(x))
			return nil
		}
	case (s.kind == kFloat || s.kind == kDouble) && (t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32 && s.kind == kFloat):
		if s.kind == kFloat {
			bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) { return appendFloat(buf, float32(v.Float())), nil }
			bd.unbin = func(c *avroChecker, v reflect.Value) error {
				x, err := c.readFloat()
				v.SetFloat(float64(x))
				return err
			}
			return nil
		}
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) { return appendDouble(buf, v.Float()), nil }
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			x, err := c.readDouble()
			v.SetFloat(x)
			return err
		}
	case s.kind == kString && t.Kind() == reflect.String:
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) { return appendString(buf, v.String()), nil }
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			x, err := c.readBytes()
			if err != nil {
				return err
			}
			v.SetString(string(x))
			return nil
		}
	case s.kind == kEnum && t.Kind() == reflect.String:
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
			i, ok := s.symbolIndex[v.String()]
			if !ok {
				return nil, fmt.Errorf("%s: %q is not a symbol of enum %s", path, v.String(), s.name)
			}
			return appendLong(buf, int64(i)), nil
		}
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			i, err := c.varint()
			if err != nil {
				return err
			}
			if i < 0 || i >= int64(len(s.symbols)) {
				return c.fail(serde.ErrCorrupt, "enum %s index %d out of range", s.name, i)
			}
			v.SetString(s.symbols[i])
			return nil
		}
	case (s.kind == kBytes || s.kind == kFixed) && t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
			if s.kind == kBytes {
				return appendBytes(buf, v.Bytes()), nil
			}
			if v.Len() != s.size {
				return nil, fmt.Errorf("%s: %d bytes for fixed %s of size %d", path, v.Len(), s.name, s.size)
			}
			return append(buf, v.Bytes()...), nil
		}
		bd.unbin = func(c *avroChecker, v reflect.Value) error {
			var x []byte
			var err error
			if s.kind == kBytes {
				x, err = c.readBytes()
			} else {
				x, err = c.readFixed(s.size)
			}
			if err != nil {
				return err
			}
			v.SetBytes(append([]byte(nil), x...))
			return nil
		}
	case s.kind == kArray && t.Kind() == reflect.Slice && t != typeBytes:
		return b.compileArray(t, s, bd, path)
	case s.kind == kRecord && t.Kind() == reflect.Struct && t != typeTime && t != typeRat:
		return b.compileRecord(t, s, bd, path)
	}
	return nil
}

// compileLogical compiles a logical type bound to one of its Go types:
// the value's physical form, written and read directly.
func compileLogical(t reflect.Type, s *avroSchema, bd *binder, path string) error {
	lt := s.lt
	if !bindsLogical(lt, t) {
		return nil // make has refused t already
	}
	bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
		n, _ := logicalGo(lt, v)
		p, _, err := lt.toPhysical(s, n, path)
		if err != nil {
			return nil, err
		}
		return appendPhysical(s, buf, p, path)
	}
	bd.unbin = func(c *avroChecker, v reflect.Value) error {
		p, err := c.readPhysical(s)
		if err != nil {
			return err
		}
		n, err := readLogical(s, p, path)
		if err != nil {
			return err
		}
		if !setLogicalGo(lt, n, v) {
			return fmt.Errorf("%s: native value %T is not %v", path, n, v.Type())
		}
		return nil
	}
	return nil
}

func isSignedInt(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return t != typeDur
	}
	return false
}

func (c *avroChecker) enter() error {
	if c.depth++; c.depth > maxAvroDepth {
		return c.fail(serde.ErrCorrupt, "nesting deeper than %d", maxAvroDepth)
	}
	return nil
}

func (b *bindBuilder) compileUnion(t reflect.Type, s *avroSchema, bd *binder, path string) error {
	u, ok := shapeOf(t, s)
	if !ok {
		return nil
	}
	inner, err := b.build(u.target, s.branches[u.other], path)
	if err != nil {
		return err
	}
	otherTag := appendLong(nil, int64(u.other))
	nullTag := appendLong(nil, int64(u.nullIdx))
	bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
		if u.nullable && v.IsNil() {
			return append(buf, nullTag...), nil
		}
		if u.deref {
			v = v.Elem()
		}
		return inner.bin(append(buf, otherTag...), v)
	}
	bd.unbin = func(c *avroChecker, v reflect.Value) error {
		i, err := c.varint()
		if err != nil {
			return err
		}
		if i < 0 || i >= int64(len(s.branches)) {
			return c.fail(serde.ErrCorrupt, "union branch index %d out of range", i)
		}
		if int(i) == u.nullIdx {
			v.SetZero()
			return nil
		}
		if err := c.enter(); err != nil {
			return err
		}
		defer func() { c.depth-- }()
		if u.deref {
			p := reflect.New(u.target)
			if err := inner.unbin(c, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
		return inner.unbin(c, v)
	}
	return nil
}

func (b *bindBuilder) compileArray(t reflect.Type, s *avroSchema, bd *binder, path string) error {
	elem, err := b.build(t.Elem(), s.items, path+"[]")
	if err != nil {
		return err
	}
	bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
		n := v.Len()
		if n > 0 {
			buf = appendLong(buf, int64(n))
			for i := 0; i < n; i++ {
				var err error
				if buf, err = elem.bin(buf, v.Index(i)); err != nil {
					return nil, err
				}
			}
		}
		return append(buf, 0), nil
	}
	bd.unbin = func(c *avroChecker, v reflect.Value) error {
		if err := c.enter(); err != nil {
			return err
		}
		defer func() { c.depth-- }()
		sl := reflect.MakeSlice(t, 0, 0)
		for {
			n, err := c.blockCount(s.items.minBytes, "array")
			if err != nil {
				return err
			}
			if n == 0 {
				v.Set(sl)
				return nil
			}
			start := sl.Len()
			sl = reflect.AppendSlice(sl, reflect.MakeSlice(t, n, n))
			for i := 0; i < n; i++ {
				if err := elem.unbin(c, sl.Index(start+i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

type recordStep struct {
	field  *structField // nil: not in the Go type
	schema *avroSchema
	def    []byte // encoded default, written when field is nil
}

func (b *bindBuilder) compileRecord(t reflect.Type, s *avroSchema, bd *binder, path string) error {
	fields, err := b.structFields(t, s, path)
	if err != nil {
		return err
	}
	steps := make([]recordStep, len(s.fields))
	for i, f := range s.fields {
		steps[i].schema = f.schema
	}
	for i := range fields {
		steps[fields[i].schemaIdx].field = &fields[i]
	}
	for i, f := range s.fields {
		if steps[i].field != nil {
			continue
		}
		n, err := defaultToNative(f.schema, f.def)
		if err != nil {
			return bindErr(t, path, "default of %q: %v", f.name, err)
		}
		if steps[i].def, err = appendNative(f.schema, nil, n); err != nil {
			return bindErr(t, path, "default of %q: %v", f.name, err)
		}
	}
	// Single-index fields (no embedding) use the faster Field(i).
	bd.bin = func(buf []byte, v reflect.Value) ([]byte, error) {
		for i := range steps {
			st := &steps[i]
			if st.field == nil {
				buf = append(buf, st.def...)
				continue
			}
			var err error
			if buf, err = st.field.bd.bin(buf, fieldOf(v, st.field.index)); err != nil {
				return nil, err
			}
		}
		return buf, nil
	}
	bd.unbin = func(c *avroChecker, v reflect.Value) error {
		if err := c.enter(); err != nil {
			return err
		}
		defer func() { c.depth-- }()
		for i := range steps {
			st := &steps[i]
			if st.field == nil {
				// A field the Go type leaves out: read and drop it.
				if _, err := c.readNative(st.schema); err != nil {
					return err
				}
				continue
			}
			if err := st.field.bd.unbin(c, fieldOf(v, st.field.index)); err != nil {
				return err
			}
		}
		return nil
	}
	return nil
}

func fieldOf(v reflect.Value, index []int) reflect.Value {
	if len(index) == 1 {
		return v.Field(index[0])
	}
	return v.FieldByIndex(index)
}
