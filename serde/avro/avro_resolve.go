package avro

import (
	"fmt"
	"math/big"
	"strings"
)

// resolveFn converts a native value decoded with the writer's schema into
// the native value the reader's schema describes.
type resolveFn func(any) (any, error)

// ResolutionError says why data written with one schema cannot be read with
// another. Path locates the problem ("Txn.amount", "Txn.tags[]").
type ResolutionError struct {
	// Path is the dotted location of the problem in the reader's schema.
	Path string
	// Reason describes the mismatch.
	Reason string
}

// Error implements error.
func (e *ResolutionError) Error() string {
	if e.Path == "" {
		return "cannot resolve writer schema to reader schema: " + e.Reason
	}
	return fmt.Sprintf("cannot resolve writer schema to reader schema at %s: %s", e.Path, e.Reason)
}

type resolvePair struct{ w, r *avroSchema }

type resolveSlot struct {
	fn       resolveFn
	identity bool
}

type resolverBuilder struct {
	memo map[resolvePair]*resolveSlot
}

// buildResolver returns the conversion from writer-native to reader-native
// values, or nil when the two schemas decode to identical native values.
// Mismatches that only matter if the data uses them (a writer union branch
// the reader lacks, an enum symbol without reader default) become errors at
// conversion time; all others are returned now.
func buildResolver(w, r *avroSchema) (resolveFn, error) {
	b := &resolverBuilder{memo: map[resolvePair]*resolveSlot{}}
	slot, err := b.build(w, r, shortName(r))
	if err != nil {
		return nil, err
	}
	if slot.identity {
		return nil, nil
	}
	return slot.fn, nil
}

func shortName(s *avroSchema) string {
	if s.name != "" {
		if i := strings.LastIndexByte(s.name, '.'); i >= 0 {
			return s.name[i+1:]
		}
		return s.name
	}
	return s.kind.String()
}

func namesMatch(w, r *avroSchema) bool {
	if shortName(w) == shortName(r) || w.name == r.name {
		return true
	}
	for _, a := range r.aliases {
		if a == w.name || a[strings.LastIndexByte(a, '.')+1:] == shortName(w) {
			return true
		}
	}
	return false
}

func identityFn(v any) (any, error) { return v, nil }

func (b *resolverBuilder) build(w, r *avroSchema, path string) (*resolveSlot, error) {
	key := resolvePair{w, r}
	if s, ok := b.memo[key]; ok {
		return s, nil // possibly still being built (recursive schema)
	}
	if sameSchema(w, r, map[resolvePair]bool{}) {
		slot := &resolveSlot{identity: true}
		b.memo[key] = slot
		return slot, nil
	}
	slot := &resolveSlot{}
	b.memo[key] = slot
	fn, identity, err := b.make(w, r, path)
	if err != nil {
		delete(b.memo, key)
		return nil, err
	}
	slot.fn, slot.identity = fn, identity
	return slot, nil
}

// call returns a function that calls the slot's function, which may not be
// set yet while a recursive schema is being built.
func call(s *resolveSlot) resolveFn {
	if s.fn != nil {
		if s.identity {
			return identityFn
		}
		return s.fn
	}
	return func(v any) (any, error) {
		if s.identity {
			return v, nil
		}
		return s.fn(v)
	}
}

func mismatch(path, format string, args ...any) error {
	return &ResolutionError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

func (b *resolverBuilder) make(w, r *avroSchema, path string) (resolveFn, bool, error) {
	if w.kind == kUnion {
		return b.writerUnion(w, r, path)
	}
	if r.kind == kUnion {
		return b.readerUnion(w, r, path)
	}
	switch {
	case w.kind == r.kind:
		return b.same(w, r, path)
	case w.kind == kInt && r.kind == kLong:
		return physical(w, path, func(p any) (any, bool) {
			i, ok := asInt(p)
			return fromPhysical(r, i), ok
		}), false, nil
	case (w.kind == kInt || w.kind == kLong) && r.kind == kFloat:
		return physical(w, path, func(p any) (any, bool) {
			i, ok := asInt(p)
			return float32(i), ok
		}), false, nil
	case (w.kind == kInt || w.kind == kLong) && r.kind == kDouble:
		return physical(w, path, func(p any) (any, bool) {
			i, ok := asInt(p)
			return float64(i), ok
		}), false, nil
	case w.kind == kFloat && r.kind == kDouble:
		return physical(w, path, func(p any) (any, bool) {
			f, ok := p.(float32)
			return float64(f), ok
		}), false, nil
	case w.kind == kString && r.kind == kBytes:
		return bytesResolver(w, r, path), false, nil
	case w.kind == kBytes && r.kind == kString:
		return physical(w, path, func(p any) (any, bool) {
			b, ok := p.([]byte)
			return string(b), ok
		}), false, nil
	}
	return nil, false, mismatch(path, "writer type %s cannot be read as %s", describe(w), describe(r))
}

func describe(s *avroSchema) string {
	d := s.kind.String()
	if s.name != "" {
		d += " " + s.name
	}
	if s.logical != "" {
		d += " (" + s.logical + ")"
	}
	return d
}

// physical wraps a conversion of the writer's physical value; conv reports
// false when the value is not of the writer's type.
func physical(w *avroSchema, path string, conv func(any) (any, bool)) resolveFn {
	return func(v any) (any, error) {
		p, err := toPhysical(w, v)
		if err != nil {
			return nil, err
		}
		out, ok := conv(p)
		if !ok {
			return nil, notType(path, w, v)
		}
		return out, nil
	}
}

func asInt(p any) (int64, bool) {
	switch x := p.(type) {
	case int32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	}
	return 0, false
}

// bytesResolver converts a writer's string, bytes or fixed value (plain or
// decimal) to a reader's bytes or fixed of the same size. A decimal keeps
// its value, never its unscaled digits, when the scales differ, and must
// fit the reader's precision and scale; plain bytes read as a decimal must
// fit its precision. Nothing is rounded.
func bytesResolver(w, r *avroSchema, path string) resolveFn {
	return func(v any) (any, error) {
		if w.logical == ltDecimal && r.logical == ltDecimal {
			x, ok := v.(*big.Rat)
			if !ok {
				return nil, notType(path, w, v)
			}
			if _, err := decimalBytes(r, x, path); err != nil {
				return nil, err
			}
			return x, nil
		}
		p, err := toPhysical(w, v)
		if err != nil {
			return nil, err
		}
		var b []byte
		switch x := p.(type) {
		case []byte:
			b = x
		case string:
			b = []byte(x)
		default:
			return nil, notType(path, w, v)
		}
		if r.lt != nil && r.lt.toNative != nil {
			return readLogical(r, phys{b: b}, path)
		}
		if w.kind == kString {
			return b, nil
		}
		return p, nil
	}
}

func notType(path string, w *avroSchema, v any) error {
	return mismatch(path, "value of Go type %T is not an Avro %s", v, describe(w))
}

func (b *resolverBuilder) same(w, r *avroSchema, path string) (resolveFn, bool, error) {
	switch w.kind {
	case kNull, kBoolean, kFloat, kDouble:
		return nil, true, nil
	case kInt, kLong, kString:
		if w.logical == r.logical || (!w.lt.converts() && !r.lt.converts()) {
			return nil, true, nil
		}
		return func(v any) (any, error) {
			p, err := toPhysical(w, v)
			if err != nil {
				return nil, err
			}
			return fromPhysical(r, p), nil
		}, false, nil
	case kFixed:
		if !namesMatch(w, r) {
			return nil, false, mismatch(path, "writer fixed %s does not match reader fixed %s", w.name, r.name)
		}
		if w.size != r.size {
			return nil, false, mismatch(path, "fixed %s has size %d in writer, %d in reader", r.name, w.size, r.size)
		}
		fallthrough
	case kBytes:
		if w.logical == r.logical && w.precision == r.precision && w.scale == r.scale {
			return nil, true, nil
		}
		return bytesResolver(w, r, path), false, nil
	case kEnum:
		return b.enum(w, r, path)
	case kArray:
		items, err := b.build(w.items, r.items, path+"[]")
		if err != nil {
			return nil, false, err
		}
		if items.identity {
			return nil, true, nil
		}
		conv := call(items)
		return func(v any) (any, error) {
			in, ok := v.([]any)
			if !ok {
				return nil, notType(path, w, v)
			}
			out := make([]any, len(in))
			for i, x := range in {
				y, err := conv(x)
				if err != nil {
					return nil, err
				}
				out[i] = y
			}
			return out, nil
		}, false, nil
	case kMap:
		items, err := b.build(w.items, r.items, path+"{}")
		if err != nil {
			return nil, false, err
		}
		if items.identity {
			return nil, true, nil
		}
		conv := call(items)
		return func(v any) (any, error) {
			in, ok := v.(map[string]any)
			if !ok {
				return nil, notType(path, w, v)
			}
			out := make(map[string]any, len(in))
			for k, x := range in {
				y, err := conv(x)
				if err != nil {
					return nil, err
				}
				out[k] = y
			}
			return out, nil
		}, false, nil
	case kRecord:
		return b.record(w, r, path)
	}
	return nil, false, mismatch(path, "unsupported type %s", w.kind)
}

func (b *resolverBuilder) enum(w, r *avroSchema, path string) (resolveFn, bool, error) {
	if !namesMatch(w, r) {
		return nil, false, mismatch(path, "writer enum %s does not match reader enum %s", w.name, r.name)
	}
	mapped := make(map[string]string, len(w.symbols))
	identity := true
	for _, sym := range w.symbols {
		if _, ok := r.symbolIndex[sym]; ok {
			mapped[sym] = sym
			continue
		}
		identity = false
		if r.hasEnumDef {
			mapped[sym] = r.enumDefault
		}
	}
	if identity {
		return nil, true, nil
	}
	return func(v any) (any, error) {
		sym, ok := v.(string)
		if !ok {
			return nil, notType(path, w, v)
		}
		out, ok := mapped[sym]
		if !ok {
			return nil, mismatch(path, "enum symbol %q is not in reader enum %s, which has no default", sym, r.name)
		}
		return out, nil
	}, false, nil
}

type fieldPlan struct {
	name     string    // reader field name
	from     string    // writer field name; "" means use def
	conv     resolveFn // nil: copy as is
	def      any
	hasDef   bool
	defIsMut bool // def is a map or slice and must be copied per use
}

func (b *resolverBuilder) record(w, r *avroSchema, path string) (resolveFn, bool, error) {
	if !namesMatch(w, r) {
		return nil, false, mismatch(path, "writer record %s does not match reader record %s", w.name, r.name)
	}
	identity := len(w.fields) == len(r.fields)
	plans := make([]fieldPlan, 0, len(r.fields))
	for i, rf := range r.fields {
		fpath := path + "." + rf.name
		wf := findWriterField(w, rf)
		if wf == nil {
			if !rf.hasDefault {
				return nil, false, mismatch(fpath, "field %q is missing from the writer's schema and has no default", rf.name)
			}
			def, err := defaultToNative(rf.schema, rf.def)
			if err != nil {
				return nil, false, mismatch(fpath, "invalid default: %v", err)
			}
			identity = false
			plans = append(plans, fieldPlan{name: rf.name, def: def, hasDef: true, defIsMut: isMutable(def)})
			continue
		}
		slot, err := b.build(wf.schema, rf.schema, fpath)
		if err != nil {
			return nil, false, err
		}
		p := fieldPlan{name: rf.name, from: wf.name}
		if !slot.identity {
			p.conv = call(slot)
		}
		if p.conv != nil || w.fields[i] != wf {
			identity = false
		}
		plans = append(plans, p)
	}
	if identity {
		return nil, true, nil
	}
	return func(v any) (any, error) {
		in, ok := v.(map[string]any)
		if !ok {
			return nil, notType(path, w, v)
		}
		out := make(map[string]any, len(plans))
		for i := range plans {
			p := &plans[i]
			if p.hasDef {
				if p.defIsMut {
					out[p.name] = cloneNative(p.def)
				} else {
					out[p.name] = p.def
				}
				continue
			}
			x, present := in[p.from]
			if !present {
				continue // a generic value may omit a field: the encoder applies the default
			}
			if p.conv != nil {
				y, err := p.conv(x)
				if err != nil {
					return nil, err
				}
				x = y
			}
			out[p.name] = x
		}
		return out, nil
	}, false, nil
}

func findWriterField(w *avroSchema, rf *avroField) *avroField {
	if i, ok := w.fieldIndex[rf.name]; ok {
		return w.fields[i]
	}
	for _, a := range rf.aliases {
		if i, ok := w.fieldIndex[a]; ok {
			return w.fields[i]
		}
	}
	return nil
}

func isMutable(v any) bool {
	switch v.(type) {
	case map[string]any, []any, []byte:
		return true
	}
	return false
}

// cloneNative deep-copies maps and slices of a native value so that decoded
// values never share a default's storage.
func cloneNative(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneNative(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneNative(e)
		}
		return out
	case []byte:
		return append([]byte(nil), x...)
	}
	return v
}

// writerUnion resolves each writer branch separately; a branch that cannot
// resolve is an error only when data uses it.
func (b *resolverBuilder) writerUnion(w, r *avroSchema, path string) (resolveFn, bool, error) {
	type branch struct {
		conv resolveFn
		err  error
	}
	if r.kind == kUnion && len(r.branches) == len(w.branches) {
		identity := true
		for i, wb := range w.branches {
			if wb.unionName != r.branches[i].unionName {
				identity = false
				break
			}
			slot, err := b.build(wb, r.branches[i], path)
			if err != nil || !slot.identity {
				identity = false
				break
			}
		}
		if identity {
			return nil, true, nil
		}
	}
	branches := make(map[string]branch, len(w.branches))
	var nullBranch branch
	hasNull := false
	anyOK := false
	for _, wb := range w.branches {
		var br branch
		slot, err := b.build(wb, r, path)
		if err != nil {
			br.err = err
		} else {
			anyOK = true
			br.conv = call(slot)
		}
		if wb.kind == kNull {
			nullBranch, hasNull = br, true
		} else {
			branches[wb.unionName] = br
		}
	}
	if !anyOK {
		return nil, false, mismatch(path, "no branch of the writer's union %s can be read as %s", unionDesc(w), describe(r))
	}
	return func(v any) (any, error) {
		if v == nil {
			if !hasNull {
				return nil, mismatch(path, "null value for a union without null")
			}
			if nullBranch.err != nil {
				return nil, nullBranch.err
			}
			return nullBranch.conv(nil)
		}
		m, ok := v.(map[string]any)
		if !ok {
			return nil, notType(path, w, v)
		}
		for name, x := range m {
			br, ok := branches[name]
			if !ok {
				return nil, mismatch(path, "unknown union branch %q", name)
			}
			if br.err != nil {
				return nil, br.err
			}
			return br.conv(x)
		}
		return nil, mismatch(path, "empty union value")
	}, false, nil
}

func unionDesc(u *avroSchema) string {
	names := make([]string, len(u.branches))
	for i, b := range u.branches {
		names[i] = b.unionName
	}
	return "[" + strings.Join(names, ", ") + "]"
}

// readerUnion picks the first reader branch the (non-union) writer type
// resolves to, preferring an exact type match over a promotion.
func (b *resolverBuilder) readerUnion(w, r *avroSchema, path string) (resolveFn, bool, error) {
	pick := -1
	for i, rb := range r.branches {
		if rb.kind == w.kind && (w.name == "" || namesMatch(w, rb)) {
			pick = i
			break
		}
	}
	if pick < 0 {
		for i, rb := range r.branches {
			if _, _, err := b.make(w, rb, path); err == nil {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		return nil, false, mismatch(path, "writer type %s matches no branch of the reader's union %s", describe(w), unionDesc(r))
	}
	rb := r.branches[pick]
	slot, err := b.build(w, rb, path)
	if err != nil {
		return nil, false, err
	}
	conv := call(slot)
	if rb.kind == kNull {
		return func(any) (any, error) { return nil, nil }, false, nil
	}
	name := rb.unionName
	return func(v any) (any, error) {
		x, err := conv(v)
		if err != nil {
			return nil, err
		}
		return map[string]any{name: x}, nil
	}, false, nil
}

// sameSchema reports whether w and r decode to identical native values
// from identical bytes. Pairs already being compared are assumed equal,
// which is sound for recursive schemas.
func sameSchema(w, r *avroSchema, inProgress map[resolvePair]bool) bool {
	if w == r {
		return true
	}
	key := resolvePair{w, r}
	if inProgress[key] {
		return true
	}
	inProgress[key] = true
	if w.kind != r.kind || w.logical != r.logical || w.precision != r.precision || w.scale != r.scale || w.size != r.size || w.name != r.name {
		return false
	}
	switch w.kind {
	case kEnum:
		if len(w.symbols) != len(r.symbols) {
			return false
		}
		for i := range w.symbols {
			if w.symbols[i] != r.symbols[i] {
				return false
			}
		}
	case kArray, kMap:
		return sameSchema(w.items, r.items, inProgress)
	case kUnion:
		if len(w.branches) != len(r.branches) {
			return false
		}
		for i := range w.branches {
			if !sameSchema(w.branches[i], r.branches[i], inProgress) {
				return false
			}
		}
	case kRecord:
		if len(w.fields) != len(r.fields) {
			return false
		}
		for i := range w.fields {
			if w.fields[i].name != r.fields[i].name || !sameSchema(w.fields[i].schema, r.fields[i].schema, inProgress) {
				return false
			}
		}
	}
	return true
}
