package query

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/brookstream/brook/serde"
)

type structKey struct {
	Account string `json:"account"`
	Card    int    `json:"card"`
}

type jsonKeySerde struct{}

func (jsonKeySerde) Serialize(_ string, k structKey) ([]byte, error) { return json.Marshal(k) }
func (jsonKeySerde) Deserialize(_ string, b []byte) (structKey, error) {
	var k structKey
	err := json.Unmarshal(b, &k)
	return k, err
}

// TestParseKey checks how the HTTP handler reads keys of each type.
func TestParseKey(t *testing.T) {
	check := func(q StoreCodec, format, text string, want any, ok bool) {
		t.Helper()
		if got := q.keyFormat(); got != format {
			t.Errorf("format %q, want %q", got, format)
		}
		k, err := q.parseKey(text)
		if (err == nil) != ok {
			t.Fatalf("parseKey(%q): %v, want ok=%v", text, err, ok)
		}
		if ok && !reflect.DeepEqual(k, want) {
			t.Fatalf("parseKey(%q) = %#v, want %#v", text, k, want)
		}
	}
	s := KeyValueCodec(serde.String(), serde.Int64())
	check(s, "string", "a/b c", "a/b c", true)
	i32 := KeyValueCodec(serde.Int32(), serde.Int64())
	check(i32, "int32 (decimal)", "-17", int32(-17), true)
	check(i32, "int32 (decimal)", "2147483648", nil, false)
	check(i32, "int32 (decimal)", "x", nil, false)
	i64 := KeyValueCodec(serde.Int64(), serde.Int64())
	check(i64, "int64 (decimal)", "9223372036854775807", int64(9223372036854775807), true)
	check(i64, "int64 (decimal)", "1.5", nil, false)
	bs := KeyValueCodec(serde.Bytes(), serde.Int64())
	check(bs, "bytes (base64)", "AAEC", []byte{0, 1, 2}, true)
	check(bs, "bytes (base64)", "AAE", []byte{0, 1}, true) // URL alphabet, no padding
	check(bs, "bytes (base64)", "!!", nil, false)
	st := KeyValueCodec[structKey, int64](jsonKeySerde{}, serde.Int64())
	check(st, "JSON", `{"account":"a1","card":2}`, structKey{"a1", 2}, true)
	check(st, "JSON", `{"account":`, nil, false)
	long := make([]byte, maxKeyText+1)
	check(s, "string", string(long), nil, false)

	kb, err := i32.keyBytes("t", int32(1))
	if err != nil || string(kb) != "\x00\x00\x00\x01" {
		t.Fatalf("keyBytes: %q, %v", kb, err)
	}
	if _, err := i32.keyBytes("t", "not an int32"); err == nil {
		t.Fatal("keyBytes accepted a key of another type")
	}
	j, err := st.keyJSON(structKey{"a1", 2})
	if err != nil || string(j) != `{"account":"a1","card":2}` {
		t.Fatalf("keyJSON: %s, %v", j, err)
	}
}
