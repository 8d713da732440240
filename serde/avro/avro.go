package avro

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/linkedin/goavro/v2"
)

// ErrSchemaMismatch is the [serde.DecodeError] kind for data whose writer schema
// does not resolve to the serde's (reader) schema; the cause is a
// [*ResolutionError] naming the place and the reason.
var ErrSchemaMismatch = errors.New("writer schema does not resolve to reader schema")

// AvroCodec converts values of type T to and from Avro binary (no header)
// with one schema, through goavro.
//
// T may be:
//   - map[string]any or any: generic values in goavro's native form
//     (records as map[string]any, unions as nil or map[branch]value,
//     logical types as below);
//   - a Go struct whose exported fields map to record fields by the tag
//     `avro:"name"` (or the field's own name; `avro:"-"` skips a field).
//
// Go types per Avro type: boolean bool; int int32/int/int16/int8; long
// int64/int; float float32; double float64; string string (or []byte);
// bytes []byte (or string); enum string or a string type; fixed [N]byte or
// []byte; array slice; map map[string]V; record struct, *struct or
// map[string]any; ["null", X] a pointer, slice or map (nil is null) or a
// plain X (null reads as the zero value); any other union `any` holding
// goavro's form (Serialize also accepts a bare value whose Go type picks
// the branch). Logical types: decimal *big.Rat (or big.Rat), date,
// timestamp-millis and timestamp-micros time.Time (read back in UTC),
// time-millis and time-micros time.Duration, uuid string. The mapping is
// built and checked once, when the codec is made.
//
// Decimals are exact and never rounded. A value is written only if it has
// at most scale digits after the decimal point and at most precision
// digits in all (and, for a fixed, its two's complement fits the size);
// anything else, 12.345 or 1/3 at scale 2 or a 14-digit value at precision
// 12, is a [*DecimalError] naming the field, the value, the precision and
// the scale, the same error on the struct and generic paths, which write
// the same bytes for every accepted value. Make values with SetString
// ("12.34") or SetFrac: SetFloat64(0.1) is the binary fraction
// 0.1000000000000000055511151231257827021181583404541015625, which does
// not fit scale 2. No other Go type (float64, string) binds to a decimal.
// Data whose unscaled value has more digits than the precision is refused
// when read, with kind [serde.ErrCorrupt], so whatever decodes re-encodes.
//
// goavro checks every schema (what goavro refuses, brook refuses) and
// gives its parsing canonical form; the Avro binary is brook's own. Go
// types compile to direct encoders and validating decoders; generic values
// are written by brook's native writer and read by its validating reader,
// which bounds what a payload may make it allocate. Both paths share one
// definition of each logical type and write the same bytes as goavro (a
// fuzz test holds the struct and generic paths to it). Generic values may
// hold the Go numbers goavro accepts (an int for a double, a float64 for a
// long), when the conversion is exact; anything inexact is an error.
//
// An AvroCodec is safe for concurrent use.
type AvroCodec[T any] struct {
	text    string
	schema  *avroSchema
	codec   *goavro.Codec
	bind    *binder
	generic bool
	pcf     string // parsing canonical form: equal forms mean equal binary layouts
}

// NewAvroCodec parses schema and binds it to T. Errors name what does not
// fit (a *BindError for Go types).
func NewAvroCodec[T any](schema string) (*AvroCodec[T], error) {
	s, err := parseAvroSchema(schema)
	if err != nil {
		return nil, fmt.Errorf("serde: %w", err)
	}
	gtext, err := goavroSchemaText(schema)
	if err != nil {
		return nil, fmt.Errorf("serde: %w", err)
	}
	codec, err := goavro.NewCodec(gtext)
	if err != nil {
		return nil, fmt.Errorf("serde: goavro rejects the schema: %w", err)
	}
	c := &AvroCodec[T]{text: schema, schema: s, codec: codec, pcf: codec.CanonicalSchema()}
	t := reflect.TypeFor[T]()
	if t == typeAny || (t == typeNative && s.kind == kRecord) {
		c.generic = true
		return c, nil
	}
	if c.bind, err = newBinder(t, s); err != nil {
		return nil, err
	}
	return c, nil
}

// Schema returns the schema text the codec was made with.
func (c *AvroCodec[T]) Schema() string { return c.text }

// native converts v to goavro's native form.
func (c *AvroCodec[T]) native(v T) (any, error) {
	if c.generic {
		return any(v), nil
	}
	return c.bind.enc(reflect.ValueOf(&v).Elem())
}

// fromNative converts a native value of the codec's schema to T.
func (c *AvroCodec[T]) fromNative(n any) (T, error) {
	var out T
	if c.generic {
		if n == nil {
			return out, nil
		}
		v, ok := n.(T)
		if !ok {
			return out, fmt.Errorf("native value %T is not %T", n, out)
		}
		return v, nil
	}
	err := c.bind.dec(n, reflect.ValueOf(&out).Elem())
	return out, err
}

// Marshal appends the Avro binary encoding of v to buf.
func (c *AvroCodec[T]) Marshal(buf []byte, v T) ([]byte, error) {
	if !c.generic {
		return c.bind.bin(buf, reflect.ValueOf(&v).Elem())
	}
	n, err := c.native(v)
	if err != nil {
		return buf, err
	}
	if err := checkLogical(c.schema, n, shortName(c.schema), 0); err != nil {
		return buf, err
	}
	return appendNative(c.schema, buf, n)
}

// Unmarshal decodes data, which must hold exactly one value written with
// the codec's schema. Errors are *serde.DecodeError values (topic "").
func (c *AvroCodec[T]) Unmarshal(data []byte) (T, error) {
	if !c.generic {
		return c.unmarshalFast("", -1, data)
	}
	return decodeWith(c, "", -1, c.schema, nil, data)
}

// unmarshalFast decodes data written with a schema whose canonical form is
// the codec's, straight into T.
func (c *AvroCodec[T]) unmarshalFast(topic string, id int, data []byte) (T, error) {
	var out T
	ck := avroChecker{buf: data, zeroBudget: maxZeroWidthItems}
	if err := c.bind.unbin(&ck, reflect.ValueOf(&out).Elem()); err != nil {
		var zero T
		kind := serde.ErrCorrupt
		var ce *checkError
		if errors.As(err, &ce) {
			kind = ce.kind
		}
		return zero, decodeErr("avro", topic, id, kind, err)
	}
	if ck.pos != len(data) {
		var zero T
		return zero, decodeErr("avro", topic, id, serde.ErrCorrupt, fmt.Errorf("%d trailing bytes after the value", len(data)-ck.pos))
	}
	return out, nil
}

// decodeWith reads data as a native value of the writer schema with
// brook's validating reader, checks its logical-type values, resolves it
// to the reader's schema and binds it to T.
func decodeWith[T any](c *AvroCodec[T], topic string, id int, ws *avroSchema, resolve resolveFn, data []byte) (T, error) {
	var zero T
	ck := avroChecker{buf: data, zeroBudget: maxZeroWidthItems}
	n, err := ck.readNative(ws)
	if err == nil && ck.pos != len(data) {
		err = ck.fail(serde.ErrCorrupt, "%d trailing bytes after the value", len(data)-ck.pos)
	}
	if err != nil {
		kind := serde.ErrCorrupt
		var ce *checkError
		if errors.As(err, &ce) {
			kind = ce.kind
		}
		return zero, decodeErr("avro", topic, id, kind, err)
	}
	// Decimals beyond the writer's precision are refused, as the compiled
	// decoder refuses them.
	if err := checkLogical(ws, n, shortName(ws), 0); err != nil {
		return zero, decodeErr("avro", topic, id, serde.ErrCorrupt, err)
	}
	if resolve != nil {
		if n, err = resolve(n); err != nil {
			return zero, decodeErr("avro", topic, id, ErrSchemaMismatch, err)
		}
	}
	v, err := c.fromNative(n)
	if err != nil {
		return zero, decodeErr("avro", topic, id, serde.ErrCorrupt, err)
	}
	return v, nil
}

// SubjectStrategy chooses the registry subject for a topic.
type SubjectStrategy int

const (
	// TopicNameStrategy uses "<topic>-value" (or "<topic>-key"). The default.
	TopicNameStrategy SubjectStrategy = iota
	// RecordNameStrategy uses the schema's full record name, so one subject
	// serves every topic carrying that record.
	RecordNameStrategy
	// TopicRecordNameStrategy uses "<topic>-<full record name>".
	TopicRecordNameStrategy
)

// String implements fmt.Stringer.
func (s SubjectStrategy) String() string {
	switch s {
	case TopicNameStrategy:
		return "topic"
	case RecordNameStrategy:
		return "record"
	case TopicRecordNameStrategy:
		return "topic-record"
	}
	return fmt.Sprintf("SubjectStrategy(%d)", int(s))
}

type registration int

const (
	regAuto registration = iota
	regLatest
	regFixed
)

type avroConfig struct {
	key      bool
	strategy SubjectStrategy
	mode     registration
	fixedID  int
}

// AvroOption configures an Avro serde.
type AvroOption func(*avroConfig)

// AsKey makes the serde a key serde: the topic strategy's subject becomes
// "<topic>-key".
func AsKey() AvroOption { return func(c *avroConfig) { c.key = true } }

// WithSubjectStrategy sets how subjects are named (default
// TopicNameStrategy).
func WithSubjectStrategy(s SubjectStrategy) AvroOption {
	return func(c *avroConfig) { c.strategy = s }
}

// AutoRegister makes Serialize register the serde's schema under the
// subject on first use (the default). The registry refuses a schema that
// is incompatible with the subject.
func AutoRegister() AvroOption { return func(c *avroConfig) { c.mode = regAuto } }

// UseLatest makes Serialize write with the latest schema registered under
// the subject (fetched once), never registering anything; values are
// converted from the serde's schema to it by schema resolution.
func UseLatest() AvroOption { return func(c *avroConfig) { c.mode = regLatest } }

// UseSchemaID makes Serialize write with the schema registered under id
// (fetched once), converting values to it by schema resolution.
func UseSchemaID(id int) AvroOption {
	return func(c *avroConfig) { c.mode, c.fixedID = regFixed, id }
}

// Avro is a [serde.Serde] for Avro in the Confluent wire format: magic byte 0,
// the schema id as 4 big-endian bytes, then the Avro binary value.
//
// Deserialize reads the writer's schema id, fetches that schema once
// (cached in the [Registry]) and resolves it to the serde's schema (the
// reader's): fields added with defaults, fields removed, int→long→float→
// double and string↔bytes promotions, enum defaults, union branches. A
// decimal read with another precision or scale keeps its value (12.34
// written at scale 2 reads as 12.34 at scale 4, not as 0.1234) and must fit
// the reader's precision and scale, else that record fails with
// [ErrSchemaMismatch]; UseLatest and UseSchemaID convert decimals the same
// way when writing. The conversion plan is built once per writer id.
// Every failure is a *serde.DecodeError whose Kind is [serde.ErrWrongMagicByte],
// [serde.ErrUnknownSchemaID], [serde.ErrTruncated], [serde.ErrCorrupt],
// [serde.ErrRegistryUnavailable] or [ErrSchemaMismatch]; a nil payload is a
// Kafka null and decodes to the zero T.
//
// A schema the serde needs from the registry while the registry is
// unavailable is waited for (see [Registry] and [WithRetry]); a wait that
// outlasts the bound fails with [serde.ErrRegistryUnavailable], which is never
// a verdict on the data.
//
// Avro implements [serde.Preflighter] and [serde.ContextDeserializer]. It is safe for
// concurrent use.
type Avro[T any] struct {
	reg    *Registry
	codec  *AvroCodec[T]
	cfg    avroConfig
	writes sync.Map // topic -> *writePlan
	reads  sync.Map // writer id -> *readPlan
	// nilable: T is a pointer, map, slice or interface, whose nil is
	// written as a Kafka null (tombstone).
	nilable bool
}

type writePlan struct {
	id      int
	schema  *avroSchema
	header  [headerLen]byte
	convert resolveFn // own schema -> target schema; nil when identical
	fast    bool      // encode straight from T (see sameLayout)
	// checkTarget: check decimals against the target schema too, whose
	// decimals differ from the serde's own.
	checkTarget bool
	maxSize     atomic.Int64
}

// sizeHint is the buffer size to start an encoding with: a little more
// than the largest record seen so far, so most records need one allocation.
func (p *writePlan) sizeHint() int {
	if n := int(p.maxSize.Load()); n > 0 {
		return n + n/8
	}
	return 128
}

func (p *writePlan) noteSize(n int) {
	if n > int(p.maxSize.Load()) && n <= 1<<20 {
		p.maxSize.Store(int64(n))
	}
}

type readPlan struct {
	writer  *registeredSchema
	resolve resolveFn
	err     error // resolution failure, reported for every record of this id
	fast    bool  // decode straight into T (see sameLayout)
}

// NewAvro returns an Avro serde for T with the given schema (the reader's
// schema, and the writer's unless UseLatest or UseSchemaID say otherwise).
// It checks the schema and T now; it calls the registry only when first
// used or preflighted.
func NewAvro[T any](reg *Registry, schema string, opts ...AvroOption) (*Avro[T], error) {
	if reg == nil {
		return nil, errors.New("serde: NewAvro needs a *Registry")
	}
	c, err := NewAvroCodec[T](schema)
	if err != nil {
		return nil, err
	}
	a := &Avro[T]{reg: reg, codec: c}
	switch reflect.TypeFor[T]().Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		a.nilable = true
	}
	for _, o := range opts {
		o(&a.cfg)
	}
	if a.cfg.strategy != TopicNameStrategy && c.schema.kind != kRecord {
		return nil, fmt.Errorf("serde: subject strategy %v needs a record schema, got %s", a.cfg.strategy, c.schema.kind)
	}
	if a.cfg.strategy < TopicNameStrategy || a.cfg.strategy > TopicRecordNameStrategy {
		return nil, fmt.Errorf("serde: unknown subject strategy %d", int(a.cfg.strategy))
	}
	return a, nil
}

// Codec returns the serde's local codec (no header, no registry).
func (a *Avro[T]) Codec() *AvroCodec[T] { return a.codec }

// Subject returns the registry subject the serde uses for topic.
func (a *Avro[T]) Subject(topic string) string {
	switch a.cfg.strategy {
	case RecordNameStrategy:
		return a.codec.schema.name
	case TopicRecordNameStrategy:
		return topic + "-" + a.codec.schema.name
	}
	if a.cfg.key {
		return topic + "-key"
	}
	return topic + "-value"
}

func (a *Avro[T]) writePlan(ctx context.Context, topic string) (*writePlan, error) {
	if p, ok := a.writes.Load(topic); ok {
		return p.(*writePlan), nil
	}
	subject := a.Subject(topic)
	var target *registeredSchema
	var err error
	switch a.cfg.mode {
	case regAuto:
		target, err = a.reg.register(ctx, subject, a.codec.text)
	case regLatest:
		target, err = a.reg.latest(ctx, subject)
	case regFixed:
		target, err = a.reg.schemaByID(ctx, a.cfg.fixedID)
	}
	if err != nil {
		return nil, err
	}
	p := &writePlan{id: target.id, schema: target.schema}
	binary.BigEndian.PutUint32(p.header[1:], uint32(target.id))
	p.fast = a.sameLayout(target)
	p.checkTarget = target.schema.hasCheck && !sameSchema(a.codec.schema, target.schema, map[resolvePair]bool{})
	if a.cfg.mode != regAuto && !p.fast {
		conv, err := buildResolver(a.codec.schema, target.schema)
		if err != nil {
			return nil, fmt.Errorf("serde: avro: cannot write with schema id %d of subject %q: %w", target.id, subject, err)
		}
		p.convert = conv
	}
	actual, _ := a.writes.LoadOrStore(topic, p)
	return actual.(*writePlan), nil
}

const headerLen = 5

// isNil reports whether x is nil or holds a nil pointer, map or slice.
func isNil(x any) bool {
	rv := reflect.ValueOf(x)
	switch rv.Kind() {
	case reflect.Invalid:
		return true
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// Serialize encodes v in the Confluent wire format. A nil v (for pointer,
// map, slice and interface types) is written as a Kafka null: nil bytes.
func (a *Avro[T]) Serialize(topic string, v T) ([]byte, error) {
	if a.nilable && isNil(any(v)) {
		return nil, nil
	}
	p, err := a.writePlan(context.Background(), topic)
	if err != nil {
		return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
	}
	if p.fast {
		buf := make([]byte, 0, p.sizeHint())
		buf = append(buf, p.header[:]...)
		out, err := a.codec.bind.bin(buf, reflect.ValueOf(&v).Elem())
		p.noteSize(len(out))
		if err != nil {
			return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
		}
		return out, nil
	}
	n, err := a.codec.native(v)
	if err != nil {
		return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
	}
	// The serde's own schema bounds the decimals it accepts, whatever it
	// writes with; conversions check them against the target schema.
	if err := checkLogical(a.codec.schema, n, shortName(a.codec.schema), 0); err != nil {
		return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
	}
	if p.convert != nil {
		if n, err = p.convert(n); err != nil {
			return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
		}
	}
	if p.checkTarget {
		if err := checkLogical(p.schema, n, shortName(p.schema), 0); err != nil {
			return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
		}
	}
	buf := make([]byte, 0, p.sizeHint())
	buf = append(buf, p.header[:]...)
	out, err := appendNative(p.schema, buf, n)
	p.noteSize(len(out))
	if err != nil {
		return nil, &serde.EncodeError{Format: "avro", Topic: topic, Err: err}
	}
	return out, nil
}

// Deserialize decodes a Confluent wire-format payload. It is
// DeserializeContext with a context that never ends.
func (a *Avro[T]) Deserialize(topic string, data []byte) (T, error) {
	return a.DeserializeContext(context.Background(), topic, data)
}

// DeserializeContext decodes a Confluent wire-format payload. A writer
// schema it has not seen yet is fetched from the registry; while the
// registry is unavailable it waits (see [WithRetry]) until the registry
// answers, the retry bound passes or ctx ends, and then fails with a
// *serde.DecodeError of kind [serde.ErrRegistryUnavailable] (which also matches
// ctx's error when ctx ended the wait).
func (a *Avro[T]) DeserializeContext(ctx context.Context, topic string, data []byte) (T, error) {
	var zero T
	if data == nil {
		return zero, nil
	}
	if len(data) > 0 && data[0] != 0 {
		return zero, decodeErr("avro", topic, -1, serde.ErrWrongMagicByte, fmt.Errorf("first byte is %#02x, want 0x00", data[0]))
	}
	if len(data) < headerLen {
		return zero, decodeErr("avro", topic, -1, serde.ErrTruncated, fmt.Errorf("%d bytes, shorter than the 5-byte header", len(data)))
	}
	id := int(int32(binary.BigEndian.Uint32(data[1:headerLen])))
	p, err := a.readPlan(ctx, id)
	if err != nil {
		kind := serde.ErrRegistryUnavailable
		var re *RegistryError
		if errors.As(err, &re) && (re.Kind == serde.ErrUnknownSchemaID || re.Kind == ErrSchemaRejected || re.Kind == ErrSubjectNotFound) {
			kind = serde.ErrUnknownSchemaID
		}
		return zero, decodeErr("avro", topic, id, kind, err)
	}
	if p.err != nil {
		return zero, decodeErr("avro", topic, id, ErrSchemaMismatch, p.err)
	}
	if p.fast {
		return a.codec.unmarshalFast(topic, id, data[headerLen:])
	}
	return decodeWith(a.codec, topic, id, p.writer.schema, p.resolve, data[headerLen:])
}

// sameLayout reports whether struct values can be written with, or read
// from, schema rs directly by the serde's compiled codec. Equal parsing
// canonical forms are not enough: they drop logical types, so a decimal of
// another scale or precision (or a timestamp of another unit) would be
// reinterpreted, not converted.
func (a *Avro[T]) sameLayout(rs *registeredSchema) bool {
	return !a.codec.generic && rs.codec.CanonicalSchema() == a.codec.pcf &&
		sameSchema(rs.schema, a.codec.schema, map[resolvePair]bool{})
}

func (a *Avro[T]) readPlan(ctx context.Context, id int) (*readPlan, error) {
	if p, ok := a.reads.Load(id); ok {
		return p.(*readPlan), nil
	}
	if id <= 0 {
		return nil, &RegistryError{URL: a.reg.baseURL, Op: opByID, SchemaID: id, Kind: serde.ErrUnknownSchemaID, Err: errors.New("schema ids are positive")}
	}
	w, err := a.reg.schemaByID(ctx, id)
	if err != nil {
		return nil, err
	}
	p := &readPlan{writer: w}
	p.fast = a.sameLayout(w)
	if !p.fast && w.text != a.codec.text {
		p.resolve, p.err = buildResolver(w.schema, a.codec.schema)
	}
	actual, _ := a.reads.LoadOrStore(id, p)
	return actual.(*readPlan), nil
}

// Preflight checks the serde's schema against the subject for topic at the
// subject's compatibility level (else the global level), using the
// registry's compatibility endpoint with verbose reasons. For UseLatest and
// UseSchemaID serdes it also checks that the serde's schema converts to the
// schema it will write with and back. An incompatible schema is an
// *IncompatibleSchemaError; a registry failure a *RegistryError.
func (a *Avro[T]) Preflight(ctx context.Context, topic string) error {
	subject := a.Subject(topic)
	if err := a.reg.CheckCompatibility(ctx, subject, a.codec.text); err != nil {
		return err
	}
	if a.cfg.mode == regAuto {
		return nil
	}
	p, err := a.writePlan(ctx, topic)
	if err == nil {
		var rp *readPlan
		if rp, err = a.readPlan(ctx, p.id); err == nil {
			err = rp.err
		}
	}
	var re *ResolutionError
	if errors.As(err, &re) {
		level, lerr := a.reg.CompatibilityLevel(ctx, subject)
		if lerr != nil {
			level = "unknown"
		}
		return &IncompatibleSchemaError{Subject: subject, Level: level, Messages: []string{strings.TrimPrefix(err.Error(), "serde: avro: ")}}
	}
	return err
}

var (
	_ serde.Preflighter              = (*Avro[any])(nil)
	_ serde.ContextDeserializer[any] = (*Avro[any])(nil)
)

func decodeErr(format, topic string, id int, kind, cause error) *serde.DecodeError {
	return &serde.DecodeError{Format: format, Topic: topic, SchemaID: id, Kind: kind, Err: cause}
}
