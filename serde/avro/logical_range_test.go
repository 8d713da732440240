package avro_test

import (
	"testing"
	"time"

	"github.com/brookstream/brook/serde/avro"
)

// A time-millis beyond the 32 bits of its int (24 days 20:31:23.647) is an
// error on the struct and generic paths, never a wrapped-around time.
func TestTimeMillisOutOfRange(t *testing.T) {
	const schema = `{"type":"record","name":"T","fields":[{"name":"d","type":{"type":"int","logicalType":"time-millis"}}]}`
	type T struct {
		D time.Duration `avro:"d"`
	}
	sc, err := avro.NewAvroCodec[T](schema)
	if err != nil {
		t.Fatal(err)
	}
	gc, err := avro.NewAvroCodec[map[string]any](schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []time.Duration{600 * time.Hour, -600 * time.Hour} {
		if b, err := sc.Marshal(nil, T{D: d}); err == nil {
			back, _ := sc.Unmarshal(b)
			t.Errorf("struct: %v written, reads back as %v; want an error", d, back.D)
		}
		if _, err := gc.Marshal(nil, map[string]any{"d": d}); err == nil {
			t.Errorf("generic: %v written; want an error", d)
		}
	}
	ok := 596*time.Hour + 31*time.Minute
	b, err := sc.Marshal(nil, T{D: ok})
	if err != nil {
		t.Fatal(err)
	}
	if back, err := sc.Unmarshal(b); err != nil || back.D != ok {
		t.Fatalf("read %v, %v; want %v", back.D, err, ok)
	}
}
