package avro_test

import (
	"encoding/json"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"math"
	"math/big"
	"testing"
	"time"
)

const jsonSchema = `{
  "type": "record", "name": "Order", "fields": [
    {"name": "id", "type": "string"},
    {"name": "note", "type": ["null", "string"], "default": null},
    {"name": "qty", "type": "int"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "tags", "type": {"type": "array", "items": "string"}},
    {"name": "attrs", "type": {"type": "map", "values": "long"}},
    {"name": "raw", "type": "bytes"},
    {"name": "ratio", "type": "double"},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    {"name": "alt", "type": ["null", "long", "string"]}
  ]
}`

type order struct {
	ID    string           `avro:"id"`
	Note  *string          `avro:"note"`
	Qty   int32            `avro:"qty"`
	Price *big.Rat         `avro:"price"`
	At    time.Time        `avro:"at"`
	Tags  []string         `avro:"tags"`
	Attrs map[string]int64 `avro:"attrs"`
	Raw   []byte           `avro:"raw"`
	Ratio float64          `avro:"ratio"`
	Kind  string           `avro:"kind"`
	Alt   any              `avro:"alt"`
}

// TestAvroValueJSON renders a value of every kind by its schema: field
// order, unions unwrapped, decimals with their scale, timestamps in RFC
// 3339, bytes in base64, NaN as a string.
func TestAvroValueJSON(t *testing.T) {
	c, err := avro.NewAvroCodec[order](jsonSchema)
	if err != nil {
		t.Fatal(err)
	}
	note := "rush"
	v := order{
		ID: "o1", Note: &note, Qty: 3, Price: big.NewRat(1999, 100),
		At:   time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC),
		Tags: []string{"x", "y"}, Attrs: map[string]int64{"b": 2, "a": 1}, Raw: []byte{0, 1, 2},
		Ratio: math.NaN(), Kind: "B", Alt: map[string]any{"string": "s"},
	}
	got, err := c.ValueJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"id":"o1","note":"rush","qty":3,"price":19.99,"at":"2026-01-02T03:04:05.006Z","tags":["x","y"],"attrs":{"a":1,"b":2},"raw":"AAEC","ratio":"NaN","kind":"B","alt":"s"}`
	if string(got) != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if !json.Valid(got) {
		t.Fatal("not valid JSON")
	}
	v.Note, v.Alt, v.Ratio, v.Tags = nil, nil, 0.5, nil
	got, err = c.ValueJSON(v)
	if err != nil {
		t.Fatal(err)
	}
	const want2 = `{"id":"o1","note":null,"qty":3,"price":19.99,"at":"2026-01-02T03:04:05.006Z","tags":[],"attrs":{"a":1,"b":2},"raw":"AAEC","ratio":0.5,"kind":"B","alt":null}`
	if string(got) != want2 {
		t.Fatalf("got  %s\nwant %s", got, want2)
	}
}

// TestCheckAvroResolution checks both directions of a change and a schema
// that does not parse.
func TestCheckAvroResolution(t *testing.T) {
	v1 := `{"type":"record","name":"P","fields":[{"name":"id","type":"string"}]}`
	v2 := `{"type":"record","name":"P","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}`
	if err := avro.CheckAvroResolution(v1, v2); err != nil {
		t.Fatalf("v1 reading v2 data (a field dropped): %v", err)
	}
	err := avro.CheckAvroResolution(v2, v1)
	var re *avro.ResolutionError
	if !errors.As(err, &re) {
		t.Fatalf("v2 reading v1 data (a field without default added): %v; want *ResolutionError", err)
	}
	if err := avro.CheckAvroResolution(`{"type":"nope"}`, v1); err == nil || errors.As(err, &re) {
		t.Fatalf("an invalid reader schema: %v", err)
	}
}
