package store

import (
	"bytes"
	"testing"
)

func FuzzWindowKey(f *testing.F) {
	f.Add([]byte("card-1"), int64(1_700_000_000_000), []byte{})
	f.Add([]byte{}, int64(-1), []byte{0, 0, 0, 0})
	f.Add([]byte{0xff, 0}, int64(-1<<63), []byte{0, 0, 0, 1, 'a', 0x80, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte("x"), int64(1<<63-1), []byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 5, 6, 7, 8})
	f.Fuzz(func(t *testing.T, key []byte, start int64, raw []byte) {
		// Encoding round-trips.
		enc := EncodeWindowKey(key, start)
		k, s, err := DecodeWindowKey(enc)
		if err != nil || !bytes.Equal(k, key) || s != start {
			t.Fatalf("round trip of %x/%d gave %x/%d, %v", key, start, k, s, err)
		}
		// Order: for one key, byte order is start order.
		if start < 1<<63-1 {
			if bytes.Compare(enc, EncodeWindowKey(key, start+1)) >= 0 {
				t.Fatalf("window key of %d does not sort before %d", start, start+1)
			}
		}
		// Decoding arbitrary bytes never panics, and what it accepts
		// re-encodes to the same bytes.
		k, s, err = DecodeWindowKey(raw)
		if err == nil && !bytes.Equal(EncodeWindowKey(k, s), raw) {
			t.Fatalf("decode/encode of %x changed it", raw)
		}
		// The segment key parses back too.
		sk := segmentKey(60_000, enc, start)
		if k, s, err := DecodeWindowKey(sk[8:]); err != nil || !bytes.Equal(k, key) || s != start {
			t.Fatalf("segment key of %x/%d does not decode: %v", key, start, err)
		}
		if got := floorDiv(start, 60_000); readTime(sk) != got {
			t.Fatalf("segment %d, want %d", readTime(sk), got)
		}
	})
}
