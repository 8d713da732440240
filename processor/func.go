package processor

// Func is a stateless processor written as a plain function: it is a
// complete Processor with empty Init and Close, and, having no state, one
// value may serve every task.
type Func[KIn, VIn, KOut, VOut any] func(ctx Context[KOut, VOut], r Record[KIn, VIn]) error

// Init does nothing.
func (f Func[KIn, VIn, KOut, VOut]) Init(Context[KOut, VOut]) error { return nil }

// Process calls f.
func (f Func[KIn, VIn, KOut, VOut]) Process(ctx Context[KOut, VOut], r Record[KIn, VIn]) error {
	return f(ctx, r)
}

// Close does nothing.
func (f Func[KIn, VIn, KOut, VOut]) Close() error { return nil }

// Map returns a Func that forwards fn(r) for each record r.
func Map[KIn, VIn, KOut, VOut any](fn func(Record[KIn, VIn]) (Record[KOut, VOut], error)) Func[KIn, VIn, KOut, VOut] {
	return func(ctx Context[KOut, VOut], r Record[KIn, VIn]) error {
		out, err := fn(r)
		if err != nil {
			return err
		}
		return ctx.Forward(out)
	}
}

// MapValues returns a Func that forwards each record with its value
// replaced by fn(key, value); key, timestamp and headers are kept.
func MapValues[K, VIn, VOut any](fn func(key K, value VIn) (VOut, error)) Func[K, VIn, K, VOut] {
	return func(ctx Context[K, VOut], r Record[K, VIn]) error {
		v, err := fn(r.Key, r.Value)
		if err != nil {
			return err
		}
		return ctx.Forward(Revalue(r, v))
	}
}

// Filter returns a Func that forwards the records for which keep returns
// true and drops the others.
func Filter[K, V any](keep func(Record[K, V]) (bool, error)) Func[K, V, K, V] {
	return func(ctx Context[K, V], r Record[K, V]) error {
		ok, err := keep(r)
		if err != nil || !ok {
			return err
		}
		return ctx.Forward(r)
	}
}

// FlatMap returns a Func that forwards every record fn returns for each
// input record, in order.
func FlatMap[KIn, VIn, KOut, VOut any](fn func(Record[KIn, VIn]) ([]Record[KOut, VOut], error)) Func[KIn, VIn, KOut, VOut] {
	return func(ctx Context[KOut, VOut], r Record[KIn, VIn]) error {
		outs, err := fn(r)
		if err != nil {
			return err
		}
		for _, o := range outs {
			if err := ctx.Forward(o); err != nil {
				return err
			}
		}
		return nil
	}
}

// Peek returns a Func that calls fn for each record and forwards the
// record unchanged.
func Peek[K, V any](fn func(Record[K, V])) Func[K, V, K, V] {
	return func(ctx Context[K, V], r Record[K, V]) error {
		fn(r)
		return ctx.Forward(r)
	}
}
