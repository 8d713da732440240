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

// A pointer to a logical type's Go type binds a non-nullable field of it,
// as a pointer to any other bindable type does (nil is an error).
func TestPointerToLogicalGoType(t *testing.T) {
	const schema = `{"type":"record","name":"P","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"d","type":{"type":"int","logicalType":"date"}}]}`
	type P struct {
		At *time.Time `avro:"at"`
		D  *time.Time `avro:"d"`
	}
	c, err := avro.NewAvroCodec[P](schema)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2025, 3, 1, 12, 0, 0, 5e6, time.UTC)
	d := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	b, err := c.Marshal(nil, P{At: &at, D: &d})
	if err != nil {
		t.Fatal(err)
	}
	back, err := c.Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if back.At == nil || !back.At.Equal(at) || back.D == nil || !back.D.Equal(d) {
		t.Fatalf("read %v, %v; want %v, %v", back.At, back.D, at, d)
	}
	if _, err := c.Marshal(nil, P{D: &d}); err == nil {
		t.Fatal("nil *time.Time for a non-nullable timestamp written; want an error")
	}
}
