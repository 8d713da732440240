package store

import (
	"bytes"
	"testing"
)

// TestIterateBytesAndSerializeKey checks byte-range iteration with key
// bytes on both engines, and the errors for foreign stores.
func TestIterateBytesAndSerializeKey(t *testing.T) {
	for _, e := range []Engine{NewMemoryEngine(), mustLevelDB(t)} {
		s := NewKeyValueStore("s", e, strSerde{}, strSerde{})
		for _, k := range []string{"a1", "a2", "b1", "b2", "c"} {
			if err := s.Put(k, "v"+k); err != nil {
				t.Fatal(err)
			}
		}
		kb, err := SerializeKey(s, "b1")
		if err != nil || string(kb) != "b1" {
			t.Fatalf("SerializeKey: %q, %v", kb, err)
		}
		for _, tc := range []struct {
			lo, hi  []byte
			reverse bool
			want    string
		}{
			{nil, nil, false, "a1 a2 b1 b2 c"},
			{[]byte("a2"), []byte("b2"), false, "a2 b1"},
			{[]byte("a2\x00"), nil, false, "b1 b2 c"},
			{[]byte("b"), PrefixEnd([]byte("b")), true, "b2 b1"},
		} {
			it, err := IterateBytes(s, tc.lo, tc.hi, tc.reverse)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for it.Next() {
				if !bytes.Equal(it.KeyBytes(), []byte(it.Key())) || it.Value() != "v"+it.Key() {
					t.Fatalf("key bytes %q for key %q, value %q", it.KeyBytes(), it.Key(), it.Value())
				}
				got = append(got, it.Key())
			}
			if err := it.Err(); err != nil {
				t.Fatal(err)
			}
			it.Close()
			if g := join(got); g != tc.want {
				t.Fatalf("[%q, %q) reverse=%v: %s; want %s", tc.lo, tc.hi, tc.reverse, g, tc.want)
			}
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var foreign ReadOnlyKeyValueStore[string, string] = foreignStore{}
	if _, err := IterateBytes(foreign, nil, nil, false); err == nil {
		t.Fatal("IterateBytes accepted a foreign store")
	}
	if _, err := SerializeKey(foreign, "a"); err == nil {
		t.Fatal("SerializeKey accepted a foreign store")
	}
}

func join(s []string) string {
	var b bytes.Buffer
	for i, x := range s {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(x)
	}
	return b.String()
}

func mustLevelDB(t *testing.T) Engine {
	e, err := openLevelDB(t.TempDir(), LDBTestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

type foreignStore struct {
	ReadOnlyKeyValueStore[string, string]
}
