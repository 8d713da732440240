package avro_test

import (
	"errors"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/serde/avro"
	"testing"
)

// The Avro fuzz targets check that arbitrary bytes give a value or a
// *DecodeError of a known kind, never a panic, a hang or a huge allocation.

var fuzzSchemas = []string{
	kitchenSchema,
	`{"type":"array","items":{"type":"map","values":["null","long","string"]}}`,
	`{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"],"default":null}]}`,
	`{"type":"array","items":"null"}`,
}

func FuzzAvroCodec(f *testing.F) {
	kc, err := avro.NewAvroCodec[Kitchen](kitchenSchema)
	if err != nil {
		f.Fatal(err)
	}
	good, err := kc.Marshal(nil, sampleKitchen())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(0), good)
	f.Add(uint8(0), good[:len(good)/2])
	f.Add(uint8(1), []byte{2, 2, 0, 2, 4, 'a', 'b', 0, 0})
	f.Add(uint8(1), []byte{0x80, 0x80, 0x80, 0x80, 0x08})
	f.Add(uint8(2), []byte{2, 2, 4, 2, 0})
	f.Add(uint8(3), []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0})
	generic := make([]*avro.AvroCodec[any], len(fuzzSchemas))
	for i, s := range fuzzSchemas {
		if generic[i], err = avro.NewAvroCodec[any](s); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		i := int(which) % len(fuzzSchemas)
		v, err := generic[i].Unmarshal(data)
		checkDecodeErr(t, err)
		if err == nil {
			// What decodes re-encodes to bytes that decode again.
			b, err := generic[i].Marshal(nil, v)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if _, err := generic[i].Unmarshal(b); err != nil {
				t.Fatalf("decode own output: %v", err)
			}
		}
		if i == 0 {
			// The compiled struct decoder and goavro (after the validation
			// pass) must agree on what is valid.
			k, kerr := kc.Unmarshal(data)
			checkDecodeErr(t, kerr)
			if (err == nil) != (kerr == nil) {
				t.Fatalf("goavro path err=%v, struct path err=%v", err, kerr)
			}
			if kerr == nil {
				b, err := kc.Marshal(nil, k)
				if err != nil {
					t.Fatalf("re-encode struct: %v", err)
				}
				if _, err := generic[0].Unmarshal(b); err != nil {
					t.Fatalf("goavro path cannot read the struct encoding: %v", err)
				}
			}
		}
	})
}

// FuzzAvroDeserialize feeds the wire-format decoder, including the schema
// resolution path (v1 bytes read as v2 and the reverse).
func FuzzAvroDeserialize(f *testing.F) {
	fake := newFakeRegistry(f)
	reg := newTestRegistry(f, fake.URL())
	w1, _ := avro.NewAvro[TxnV1](reg, txnV1)
	w2, _ := avro.NewAvro[TxnV2](reg, txnV2)
	g, _ := avro.NewAvro[map[string]any](reg, txnV2)
	b1, err := w1.Serialize("f", TxnV1{ID: "one", Cents: -3})
	if err != nil {
		f.Fatal(err)
	}
	b2, err := w2.Serialize("f", TxnV2{ID: "two", Cents: 4, Currency: "DKK"})
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][]byte{b1, b2, b1[:4], b2[:7], {1, 0, 0, 0, 1}, {0, 0, 0, 0, 9, 0}, {}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) >= 5 && (data[1] != 0 || data[2] != 0 || data[3] != 0 || data[4] > 3) {
			// Keep unknown ids few: each is a registry round trip.
			data[1], data[2], data[3], data[4] = 0, 0, 0, data[4]%4
		}
		_, err := w1.Deserialize("f", data)
		checkDecodeErr(t, err)
		_, err = w2.Deserialize("f", data)
		checkDecodeErr(t, err)
		_, err = g.Deserialize("f", data)
		checkDecodeErr(t, err)
	})
}

// checkDecodeErr fails t unless err is nil or a *serde.DecodeError of a known kind.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var de *serde.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *serde.DecodeError", err, err)
	}
	for _, k := range []error{serde.ErrWrongMagicByte, serde.ErrUnknownSchemaID, serde.ErrTruncated, serde.ErrCorrupt, serde.ErrRegistryUnavailable, avro.ErrSchemaMismatch} {
		if errors.Is(err, k) {
			return
		}
	}
	t.Fatalf("error %v has no known kind", err)
}
