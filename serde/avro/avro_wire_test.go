package avro_test

import (
	"context"
	"encoding/binary"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"log/slog"
	"strings"
	"testing"

	"github.com/brookstream/brook/serde"
)

const txnV1 = `{"type":"record","name":"Txn","namespace":"brook.pay","fields":[
  {"name":"id","type":"string"},
  {"name":"cents","type":"int"}]}`

// v2 adds a field with a default and promotes cents to long.
const txnV2 = `{"type":"record","name":"Txn","namespace":"brook.pay","fields":[
  {"name":"id","type":"string"},
  {"name":"cents","type":"long"},
  {"name":"currency","type":"string","default":"EUR"}]}`

type TxnV1 struct {
	ID    string `avro:"id"`
	Cents int32  `avro:"cents"`
}

type TxnV2 struct {
	ID       string `avro:"id"`
	Cents    int64  `avro:"cents"`
	Currency string `avro:"currency"`
}

func newTestRegistry(t testing.TB, url string) *avro.Registry {
	t.Helper()
	// No retries: these tests stop the registry on purpose and want the
	// failure at once (registry_retry_internal_test.go tests retrying).
	reg, err := avro.NewRegistry(url, avro.WithLogger(slog.New(slog.DiscardHandler)), avro.WithRetry(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

func TestAvroWireFormatAndCaching(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	s, err := avro.NewAvro[TxnV1](reg, txnV1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Serialize("payments", TxnV1{ID: "t1", Cents: 250})
	if err != nil {
		t.Fatal(err)
	}
	ids := fake.subjectIDs("payments-value")
	if len(ids) != 1 {
		t.Fatalf("subject payments-value ids %v", ids)
	}
	if b[0] != 0 || int(binary.BigEndian.Uint32(b[1:5])) != ids[0] {
		t.Fatalf("header % x, want magic 0 and id %d", b[:5], ids[0])
	}
	if string(b[5:]) != "\x04t1\xf4\x03" {
		t.Fatalf("body % x", b[5:])
	}
	// A fresh serde on another registry client reads it (fetching the
	// schema by id once).
	reader, _ := avro.NewAvro[TxnV1](newTestRegistry(t, fake.URL()), txnV1)
	got, err := reader.Deserialize("payments", b)
	if err != nil || got != (TxnV1{ID: "t1", Cents: 250}) {
		t.Fatalf("got %+v, %v", got, err)
	}
	before := fake.requests.Load()
	for i := 0; i < 100; i++ {
		b, err := s.Serialize("payments", TxnV1{ID: "x", Cents: int32(i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := reader.Deserialize("payments", b); err != nil {
			t.Fatal(err)
		}
	}
	if n := fake.requests.Load() - before; n != 0 {
		t.Fatalf("steady stream made %d registry calls, want 0", n)
	}
	// Nil is a Kafka null, both ways.
	if v, err := reader.Deserialize("payments", nil); err != nil || v != (TxnV1{}) {
		t.Fatalf("nil payload: %+v, %v", v, err)
	}
	ps, _ := avro.NewAvro[*TxnV1](reg, txnV1)
	if b, err := ps.Serialize("payments", nil); b != nil || err != nil {
		t.Fatalf("nil pointer: %v, %v", b, err)
	}
	if b, err := ps.Serialize("payments", &TxnV1{ID: "p"}); err != nil || len(b) != 5+3 {
		t.Fatalf("pointer: % x, %v", b, err)
	}
}

func TestAvroSubjectStrategies(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	cases := []struct {
		opts []avro.AvroOption
		want string
	}{
		{nil, "orders-value"},
		{[]avro.AvroOption{avro.AsKey()}, "orders-key"},
		{[]avro.AvroOption{avro.WithSubjectStrategy(avro.RecordNameStrategy)}, "brook.pay.Txn"},
		{[]avro.AvroOption{avro.WithSubjectStrategy(avro.TopicRecordNameStrategy)}, "orders-brook.pay.Txn"},
	}
	for _, c := range cases {
		s, err := avro.NewAvro[TxnV1](reg, txnV1, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.Subject("orders"); got != c.want {
			t.Fatalf("subject %q, want %q", got, c.want)
		}
		if _, err := s.Serialize("orders", TxnV1{ID: "a"}); err != nil {
			t.Fatal(err)
		}
		if len(fake.subjectIDs(c.want)) != 1 {
			t.Fatalf("nothing registered under %q", c.want)
		}
	}
	if _, err := avro.NewAvro[string](reg, `"string"`, avro.WithSubjectStrategy(avro.RecordNameStrategy)); err == nil {
		t.Fatal("record strategy on a non-record schema: want error")
	}
}

func TestAvroDecodeErrorKinds(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	s, _ := avro.NewAvro[TxnV1](reg, txnV1)
	good, err := s.Serialize("t", TxnV1{ID: "abc", Cents: 1})
	if err != nil {
		t.Fatal(err)
	}
	unknown := append([]byte{0, 0, 0, 0x7f, 0xff}, good[5:]...)
	cases := []struct {
		name string
		data []byte
		kind error
	}{
		{"wrong magic", append([]byte{1}, good[1:]...), serde.ErrWrongMagicByte},
		{"JSON text", []byte(`{"id":"x"}`), serde.ErrWrongMagicByte},
		{"empty", []byte{}, serde.ErrTruncated},
		{"short header", good[:3], serde.ErrTruncated},
		{"truncated body", good[:len(good)-1], serde.ErrTruncated},
		{"trailing bytes", append(append([]byte{}, good...), 9), serde.ErrCorrupt},
		{"unknown id", unknown, serde.ErrUnknownSchemaID},
		{"zero id", append([]byte{0, 0, 0, 0, 0}, good[5:]...), serde.ErrUnknownSchemaID},
	}
	for _, c := range cases {
		_, err := s.Deserialize("t", c.data)
		var de *serde.DecodeError
		if !errors.Is(err, c.kind) || !errors.As(err, &de) || de.Topic != "t" {
			t.Errorf("%s: got %v, want kind %v", c.name, err, c.kind)
		}
	}
	// An unknown id is asked for once, not once per record.
	before := fake.requests.Load()
	for i := 0; i < 5; i++ {
		if _, err := s.Deserialize("t", unknown); !errors.Is(err, serde.ErrUnknownSchemaID) {
			t.Fatal(err)
		}
	}
	if n := fake.requests.Load() - before; n != 0 {
		t.Fatalf("repeated unknown id made %d registry calls, want 0 (already asked)", n)
	}
	// Registry down: a new id cannot be fetched.
	fake.srv.Close()
	s2, _ := avro.NewAvro[TxnV1](newTestRegistry(t, fake.URL()), txnV1)
	_, err = s2.Deserialize("t", good)
	var re *avro.RegistryError
	if !errors.Is(err, serde.ErrRegistryUnavailable) || !errors.As(err, &re) {
		t.Fatalf("registry down: got %v", err)
	}
	// The serde whose cache is warm keeps working.
	if _, err := s.Deserialize("t", good); err != nil {
		t.Fatalf("warm cache with registry down: %v", err)
	}
	if _, err := s2.Serialize("t", TxnV1{}); !errors.Is(err, serde.ErrRegistryUnavailable) {
		t.Fatalf("serialize with registry down: %v", err)
	}
}

func TestAvroResolutionThroughRegistry(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	w1, _ := avro.NewAvro[TxnV1](reg, txnV1)
	w2, _ := avro.NewAvro[TxnV2](reg, txnV2)
	b1, err := w1.Serialize("p", TxnV1{ID: "one", Cents: 5})
	if err != nil {
		t.Fatal(err)
	}
	b2, err := w2.Serialize("p", TxnV2{ID: "two", Cents: 1 << 40, Currency: "NOK"})
	if err != nil {
		t.Fatal(err)
	}
	got2, err := w2.Deserialize("p", b1)
	if err != nil || got2 != (TxnV2{ID: "one", Cents: 5, Currency: "EUR"}) {
		t.Fatalf("v1 bytes as v2: %+v, %v", got2, err)
	}
	// v2 bytes as v1: long cannot narrow to int, a clear mismatch.
	_, err = w1.Deserialize("p", b2)
	var rerr *avro.ResolutionError
	if !errors.Is(err, avro.ErrSchemaMismatch) || !errors.As(err, &rerr) || !strings.Contains(rerr.Path, "cents") {
		t.Fatalf("v2 bytes as v1: got %v", err)
	}
	// UseLatest writes with the latest registered schema (v2) converted from v1.
	latest, _ := avro.NewAvro[TxnV1](reg, txnV1, avro.UseLatest())
	b, err := latest.Serialize("p", TxnV1{ID: "l", Cents: 9})
	if err != nil {
		t.Fatal(err)
	}
	if id := int(binary.BigEndian.Uint32(b[1:5])); id != int(binary.BigEndian.Uint32(b2[1:5])) {
		t.Fatalf("use-latest wrote id %d", id)
	}
	if got, err := w2.Deserialize("p", b); err != nil || got != (TxnV2{ID: "l", Cents: 9, Currency: "EUR"}) {
		t.Fatalf("use-latest bytes: %+v, %v", got, err)
	}
	// Generic values of the wrong Go type are an error, not a panic, on
	// the conversion path too.
	glatest, _ := avro.NewAvro[map[string]any](reg, txnV1, avro.UseLatest())
	for _, bad := range []map[string]any{{"id": "x", "cents": "12"}, {"id": 5, "cents": int32(1)}, {"cents": int32(1)}} {
		if _, err := glatest.Serialize("p", bad); err == nil {
			t.Fatalf("%v: want an error", bad)
		}
	}
	if b, err := glatest.Serialize("p", map[string]any{"id": "g", "cents": int32(7)}); err != nil || len(b) < 5 {
		t.Fatalf("generic use-latest: %v", err)
	}
	// UseSchemaID writes with a fixed id.
	id1 := int(binary.BigEndian.Uint32(b1[1:5]))
	fixed, _ := avro.NewAvro[TxnV1](reg, txnV1, avro.UseSchemaID(id1))
	b, err = fixed.Serialize("other", TxnV1{ID: "f"})
	if err != nil || int(binary.BigEndian.Uint32(b[1:5])) != id1 {
		t.Fatalf("fixed id: % x, %v", b, err)
	}
	if len(fake.subjectIDs("other-value")) != 0 {
		t.Fatal("a fixed-id serde must not register")
	}
	// Use-latest on an empty subject is an error naming the subject.
	empty, _ := avro.NewAvro[TxnV1](reg, txnV1, avro.UseLatest())
	if _, err := empty.Serialize("nothing-here", TxnV1{}); !errors.Is(err, avro.ErrSubjectNotFound) || !strings.Contains(err.Error(), "nothing-here-value") {
		t.Fatalf("use latest on empty subject: %v", err)
	}
}

func TestAvroPreflightFake(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	s, _ := avro.NewAvro[TxnV1](reg, txnV1)
	var p serde.Preflighter = s // the runtime type-asserts this
	ctx := context.Background()
	if err := p.Preflight(ctx, "pf"); err != nil {
		t.Fatalf("empty subject: %v", err)
	}
	if _, err := s.Serialize("pf", TxnV1{}); err != nil {
		t.Fatal(err)
	}
	fake.compat = func(subject, schema string) (bool, []string) {
		return false, []string{"reader field 'x' has no default"}
	}
	err := p.Preflight(ctx, "pf")
	var ie *avro.IncompatibleSchemaError
	if !errors.As(err, &ie) || ie.Subject != "pf-value" || ie.Level != "BACKWARD" || len(ie.Messages) != 1 {
		t.Fatalf("got %v", err)
	}
	// A use-latest serde whose schema cannot write the latest schema fails
	// preflight on its own resolution check.
	fake.compat = nil
	narrow, _ := avro.NewAvro[map[string]any](reg, `{"type":"record","name":"Txn","namespace":"brook.pay","fields":[{"name":"id","type":"long"}]}`, avro.UseLatest())
	if err := narrow.Preflight(ctx, "pf"); !errors.As(err, &ie) || !strings.Contains(err.Error(), "id") {
		t.Fatalf("use-latest preflight: %v", err)
	}
}

func TestAvroConcurrentUse(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	w1, _ := avro.NewAvro[TxnV1](reg, txnV1)
	r2, _ := avro.NewAvro[TxnV2](reg, txnV2)
	done := make(chan error, 8)
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; i < 200; i++ {
				b, err := w1.Serialize("c", TxnV1{ID: "x", Cents: int32(i)})
				if err != nil {
					done <- err
					return
				}
				v, err := r2.Deserialize("c", b)
				if err != nil || v.Cents != int64(i) || v.Currency != "EUR" {
					done <- errors.New("bad value")
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 8; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestPreflightRegistryDown(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	s, _ := avro.NewAvro[TxnV1](reg, txnV1)
	fake.srv.Close()
	err := s.Preflight(context.Background(), "down")
	var re *avro.RegistryError
	if !errors.Is(err, serde.ErrRegistryUnavailable) || !errors.As(err, &re) || re.Op != "config" {
		t.Fatalf("got %v", err)
	}
}

func TestAvroNilGenericIsTombstone(t *testing.T) {
	fake := newFakeRegistry(t)
	reg := newTestRegistry(t, fake.URL())
	m, _ := avro.NewAvro[map[string]any](reg, txnV1)
	if b, err := m.Serialize("n", nil); b != nil || err != nil {
		t.Fatalf("nil map: %v, %v", b, err)
	}
	a, _ := avro.NewAvro[any](reg, `"long"`)
	if b, err := a.Serialize("n", nil); b != nil || err != nil {
		t.Fatalf("nil any: %v, %v", b, err)
	}
	b, err := a.Serialize("n", int64(3))
	if err != nil || len(b) != 6 {
		t.Fatalf("any(int64): % x, %v", b, err)
	}
	if v, err := a.Deserialize("n", b); err != nil || v != int64(3) {
		t.Fatalf("back: %v, %v", v, err)
	}
}
