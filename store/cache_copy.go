package store

import (
	"bytes"
	"math/big"
	"reflect"
	"sync"
	"time"
)

// valueCopier keeps a cache's values apart from its callers' (see Cache,
// "Values are not shared with callers").
type valueCopier[V any] struct {
	// fn copies a value; nil when assignment copies it fully. It reports
	// false for a value it cannot copy.
	fn func(V) (V, bool)
	// never: no value of V can be copied (keep them encoded).
	never bool
}

// clone returns a copy of v that shares nothing a caller could change, or
// false.
func (c *valueCopier[V]) clone(v V) (V, bool) {
	if c.fn == nil {
		return v, !c.never
	}
	return c.fn(v)
}

// maxCopyDepth bounds the nesting a deep copy follows (a cycle of
// pointers would never end).
const maxCopyDepth = 1000

func newValueCopier[V any]() valueCopier[V] {
	t := reflect.TypeFor[V]()
	if t == reflect.TypeFor[[]byte]() {
		fn := func(b []byte) ([]byte, bool) { return bytes.Clone(b), true }
		return valueCopier[V]{fn: any(fn).(func(V) (V, bool))}
	}
	p := planFor(t)
	switch p.refs {
	case refsNone:
		return valueCopier[V]{}
	case refsNever:
		return valueCopier[V]{never: true}
	}
	return valueCopier[V]{fn: func(v V) (V, bool) {
		var out V
		ok := p.copy(reflect.ValueOf(&out).Elem(), reflect.ValueOf(&v).Elem(), 0)
		return out, ok
	}}
}

// refKind says what copying a value of a type takes.
type refKind uint8

const (
	// refsNone: assignment copies the value fully (no pointers, slices,
	// maps or interfaces, or only immutable ones such as time.Time's).
	refsNone refKind = iota
	// refsCopy: a deep copy follows its pointers, slices, maps and
	// interfaces.
	refsCopy
	// refsNever: it holds something a copy cannot follow (a chan, func
	// or unsafe.Pointer, or an unexported field holding references).
	refsNever
)

// copyPlan is how values of one type are deep copied. Plans of recursive
// types refer to each other.
type copyPlan struct {
	t    reflect.Type
	refs refKind
	// elem is the plan of a pointer's, slice's, array's or map's
	// elements.
	elem *copyPlan
	// fields are a struct's fields that hold references.
	fields []fieldPlan
	// custom copies types whose references are unexported but which
	// have a copy method (math/big).
	custom func(dst, src reflect.Value)
}

type fieldPlan struct {
	index int
	plan  *copyPlan
}

var (
	plansMu sync.Mutex
	plans   sync.Map // reflect.Type -> *copyPlan
)

// planFor returns the copy plan of t, built once per type.
func planFor(t reflect.Type) *copyPlan {
	if p, ok := plans.Load(t); ok {
		return p.(*copyPlan)
	}
	plansMu.Lock()
	defer plansMu.Unlock()
	if p, ok := plans.Load(t); ok {
		return p.(*copyPlan)
	}
	memo := map[reflect.Type]*copyPlan{}
	p := buildPlan(t, memo)
	for t, p := range memo {
		plans.Store(t, p)
	}
	return p
}

var (
	typeTime     = reflect.TypeFor[time.Time]()
	typeBigInt   = reflect.TypeFor[big.Int]()
	typeBigRat   = reflect.TypeFor[big.Rat]()
	typeBigFloat = reflect.TypeFor[big.Float]()
)

// buildPlan builds t's plan. A plan still being built (a recursive type
// reached again) is only ever reached through a pointer, slice, map or
// interface, whose plans are refsCopy whatever their element turns out
// to be: copy checks each plan's refs as it goes.
func buildPlan(t reflect.Type, memo map[reflect.Type]*copyPlan) *copyPlan {
	if p, ok := memo[t]; ok {
		return p
	}
	p := &copyPlan{t: t}
	memo[t] = p
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128, reflect.String:
		p.refs = refsNone
	case reflect.Array:
		p.elem = buildPlan(t.Elem(), memo)
		p.refs = p.elem.refs
		if t.Len() == 0 {
			p.refs = refsNone
		}
	case reflect.Pointer, reflect.Slice:
		p.elem = buildPlan(t.Elem(), memo)
		p.refs = refsCopy
		if p.elem.refs == refsNever {
			p.refs = refsNever
		}
	case reflect.Map:
		p.elem = buildPlan(t.Elem(), memo)
		p.refs = refsCopy
		if buildPlan(t.Key(), memo).refs != refsNone || p.elem.refs == refsNever {
			// A key holding references would have to be copied too,
			// and a copied pointer key is another key.
			p.refs = refsNever
		}
	case reflect.Interface:
		p.refs = refsCopy
	case reflect.Struct:
		switch t {
		case typeTime:
			// Its only reference is the *time.Location, which is
			// never changed once made.
			p.refs = refsNone
			return p
		case typeBigInt:
			p.refs, p.custom = refsCopy, copyBig[big.Int]((*big.Int).Set)
			return p
		case typeBigRat:
			p.refs, p.custom = refsCopy, copyBig[big.Rat]((*big.Rat).Set)
			return p
		case typeBigFloat:
			p.refs, p.custom = refsCopy, copyBig[big.Float]((*big.Float).Copy)
			return p
		}
		for i := range t.NumField() {
			f := t.Field(i)
			fp := buildPlan(f.Type, memo)
			if fp.refs == refsNone {
				continue
			}
			if !f.IsExported() || fp.refs == refsNever {
				p.refs, p.fields = refsNever, nil
				return p
			}
			p.refs = refsCopy
			p.fields = append(p.fields, fieldPlan{index: i, plan: fp})
		}
	default: // Chan, Func, UnsafePointer
		p.refs = refsNever
	}
	return p
}

// copyBig returns the custom copy of a math/big type through its Set
// method.
func copyBig[T any](set func(z, x *T) *T) func(dst, src reflect.Value) {
	return func(dst, src reflect.Value) {
		var x *T
		if src.CanAddr() {
			x = src.Addr().Interface().(*T)
		} else {
			v := src.Interface().(T)
			x = &v
		}
		set(dst.Addr().Interface().(*T), x)
	}
}

// copy sets dst (settable, of p's type) to a deep copy of src, or reports
// false when src holds something p cannot copy.
func (p *copyPlan) copy(dst, src reflect.Value, depth int) bool {
	if depth > maxCopyDepth {
		return false
	}
	switch p.refs {
	case refsNone:
		dst.Set(src)
		return true
	case refsNever:
		return false
	}
	if p.custom != nil {
		p.custom(dst, src)
		return true
	}
	switch p.t.Kind() {
	case reflect.Pointer:
		if src.IsNil() {
			dst.SetZero()
			return true
		}
		n := reflect.New(p.t.Elem())
		if !p.elem.copy(n.Elem(), src.Elem(), depth+1) {
			return false
		}
		dst.Set(n)
	case reflect.Slice:
		if src.IsNil() {
			dst.SetZero()
			return true
		}
		l := src.Len()
		n := reflect.MakeSlice(p.t, l, l)
		if p.elem.refs == refsNone {
			reflect.Copy(n, src)
		} else {
			for i := range l {
				if !p.elem.copy(n.Index(i), src.Index(i), depth+1) {
					return false
				}
			}
		}
		dst.Set(n)
	case reflect.Array:
		for i := range p.t.Len() {
			if !p.elem.copy(dst.Index(i), src.Index(i), depth+1) {
				return false
			}
		}
	case reflect.Map:
		if src.IsNil() {
			dst.SetZero()
			return true
		}
		n := reflect.MakeMapWithSize(p.t, src.Len())
		var tmp reflect.Value
		if p.elem.refs != refsNone {
			tmp = reflect.New(p.t.Elem()).Elem()
		}
		for it := src.MapRange(); it.Next(); {
			v := it.Value()
			if tmp.IsValid() {
				if !p.elem.copy(tmp, v, depth+1) {
					return false
				}
				v = tmp
			}
			n.SetMapIndex(it.Key(), v)
		}
		dst.Set(n)
	case reflect.Struct:
		dst.Set(src)
		for _, f := range p.fields {
			if !f.plan.copy(dst.Field(f.index), src.Field(f.index), depth+1) {
				return false
			}
		}
	case reflect.Interface:
		if src.IsNil() {
			dst.SetZero()
			return true
		}
		e := src.Elem()
		ep := planFor(e.Type())
		if ep.refs == refsNone {
			// The interface holds a value no one can change in place.
			dst.Set(src)
			return true
		}
		n := reflect.New(e.Type()).Elem()
		if !ep.copy(n, e, depth+1) {
			return false
		}
		dst.Set(n)
	default:
		return false
	}
	return true
}
