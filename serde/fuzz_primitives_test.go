package serde_test

import (
	"errors"
	"testing"

	"github.com/brookstream/brook/serde"
)

// checkDecodeErr fails unless err is nil or a *DecodeError of a known kind.
func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var de *serde.DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *serde.DecodeError", err, err)
	}
	for _, k := range []error{serde.ErrWrongMagicByte, serde.ErrUnknownSchemaID, serde.ErrTruncated, serde.ErrCorrupt, serde.ErrRegistryUnavailable} {
		if errors.Is(err, k) {
			return
		}
	}
	t.Fatalf("error %v has no known kind", err)
}

func FuzzPrimitives(f *testing.F) {
	for _, seed := range [][]byte{nil, {}, {1}, {0, 0, 0, 1}, {1, 2, 3, 4, 5, 6, 7, 8}, {0x7f, 0xf8, 0, 0, 0, 0, 0, 0}, {1, 2, 3, 4, 5, 6, 7, 8, 9}} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		i32, err := serde.Int32().Deserialize("t", data)
		checkDecodeErr(t, err)
		if err == nil && data != nil {
			if b, _ := serde.Int32().Serialize("t", i32); string(b) != string(data) {
				t.Fatalf("int32 round trip %x -> %d -> %x", data, i32, b)
			}
		}
		i64, err := serde.Int64().Deserialize("t", data)
		checkDecodeErr(t, err)
		if err == nil && data != nil {
			if b, _ := serde.Int64().Serialize("t", i64); string(b) != string(data) {
				t.Fatalf("int64 round trip %x -> %d -> %x", data, i64, b)
			}
		}
		_, err = serde.Float64().Deserialize("t", data)
		checkDecodeErr(t, err)
		if b, err := serde.Bytes().Deserialize("t", data); err != nil || string(b) != string(data) {
			t.Fatalf("bytes: %x, %v", b, err)
		}
		s, err := serde.String().Deserialize("t", data)
		if err != nil || s != string(data) {
			t.Fatalf("string: %q, %v", s, err)
		}
	})
}

func FuzzJSON(f *testing.F) {
	for _, seed := range []string{``, `{}`, `{"id":"a","amount":1.5,"Tags":["x"]}`, `{"id":`, `[1,2]`, `null`, `"\u00e9"`, `{"id":"x"}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := serde.JSON[jsonTxn]().Deserialize("t", data)
		checkDecodeErr(t, err)
		if err == nil {
			s := serde.JSON[jsonTxn]()
			b, err := s.Serialize("t", v)
			if err != nil {
				t.Fatalf("re-serialize %+v: %v", v, err)
			}
			if _, err := s.Deserialize("t", b); err != nil {
				t.Fatalf("decode of own output %s: %v", b, err)
			}
		}
		_, err = serde.JSON[any]().Deserialize("t", data)
		checkDecodeErr(t, err)
	})
}
