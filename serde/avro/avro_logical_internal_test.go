package avro

import (
	"fmt"
	"math/big"
	"reflect"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// logicalSamples holds a schema and a value for every entry of
// logicalTypes. TestEveryLogicalType fails for an entry without one, so a
// new logical type comes with its sample.
var logicalSamples = map[string]struct {
	schema string
	value  any  // of the native Go type
	goavro bool // goavro knows the type: its bytes must agree
}{
	ltDecimal:         {`{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}`, big.NewRat(-123456, 100), true},
	ltUUID:            {`{"type":"string","logicalType":"uuid"}`, "9b2f6c1e-0001-4a6b-8c3d-000000001eef", true},
	ltDate:            {`{"type":"int","logicalType":"date"}`, time.Date(1969, 12, 30, 0, 0, 0, 0, time.UTC), true},
	ltTimeMillis:      {`{"type":"int","logicalType":"time-millis"}`, 13*time.Hour + 1500*time.Millisecond, true},
	ltTimeMicros:      {`{"type":"long","logicalType":"time-micros"}`, 13*time.Hour + 1500*time.Microsecond, true},
	ltTimestampMillis: {`{"type":"long","logicalType":"timestamp-millis"}`, time.Date(2025, 3, 1, 12, 0, 0, 7e6, time.UTC), true},
	ltTimestampMicros: {`{"type":"long","logicalType":"timestamp-micros"}`, time.Date(1960, 3, 1, 12, 0, 0, 7e3, time.UTC), true},
}

// TestEveryLogicalType holds every entry of logicalTypes, through each of
// its Go types, to one behaviour: struct and generic values write the same
// bytes (goavro's, where goavro knows the type), plain and inside a
// nullable union, and read back to the value.
func TestEveryLogicalType(t *testing.T) {
	for name := range logicalTypes {
		if _, ok := logicalSamples[name]; !ok {
			t.Errorf("logical type %q has no entry in logicalSamples", name)
		}
	}
	for name, sm := range logicalSamples {
		t.Run(name, func(t *testing.T) {
			schema := fmt.Sprintf(`{"type":"record","name":"R","fields":[{"name":"v","type":%s},{"name":"o","type":["null",%s],"default":null}]}`, sm.schema, sm.schema)
			gc, err := NewAvroCodec[map[string]any](schema)
			if err != nil {
				t.Fatal(err)
			}
			if gc.schema.fields[0].schema.lt != logicalTypes[name] {
				t.Fatalf("schema %s does not parse as %s", sm.schema, name)
			}
			branch := gc.schema.fields[1].schema.branches[1].unionName
			native := map[string]any{"v": sm.value, "o": map[string]any{branch: sm.value}}
			want, err := gc.Marshal(nil, native)
			if err != nil {
				t.Fatal(err)
			}
			if sm.goavro {
				ga, err := goavro.NewCodec(schema)
				if err != nil {
					t.Fatal(err)
				}
				gb, err := ga.BinaryFromNative(nil, native)
				if err != nil {
					t.Fatal(err)
				}
				if string(gb) != string(want) {
					t.Fatalf("brook writes %x, goavro %x", want, gb)
				}
				back, _, err := ga.NativeFromBinary(want)
				if err != nil {
					t.Fatal(err)
				}
				if fmt.Sprint(back) != fmt.Sprint(native) {
					t.Fatalf("goavro reads %v, want %v", back, native)
				}
			}
			back, err := gc.Unmarshal(want)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(back) != fmt.Sprint(native) {
				t.Fatalf("generic reads %v, want %v", back, native)
			}
			goTypes := logicalTypes[name].goTypes
			if len(goTypes) == 0 {
				goTypes = []reflect.Type{reflect.TypeOf(sm.value)}
			}
			for _, gt := range goTypes {
				st := reflect.StructOf([]reflect.StructField{
					{Name: "V", Type: gt, Tag: `avro:"v"`},
					{Name: "O", Type: reflect.PointerTo(gt), Tag: `avro:"o"`},
				})
				bd, err := newBinder(st, gc.schema)
				if err != nil {
					t.Fatalf("%v: %v", gt, err)
				}
				v := reflect.New(st).Elem()
				val := reflect.ValueOf(sm.value)
				if gt != val.Type() {
					val = val.Elem() // big.Rat for *big.Rat
				}
				v.Field(0).Set(val)
				v.Field(1).Set(reflect.New(gt))
				v.Field(1).Elem().Set(val)
				got, err := bd.bin(nil, v)
				if err != nil {
					t.Fatalf("%v: %v", gt, err)
				}
				if string(got) != string(want) {
					t.Fatalf("%v: struct writes %x, generic %x", gt, got, want)
				}
				out := reflect.New(st).Elem()
				ck := avroChecker{buf: got, zeroBudget: maxZeroWidthItems}
				if err := bd.unbin(&ck, out); err != nil {
					t.Fatalf("%v: %v", gt, err)
				}
				if fmt.Sprint(out.Field(0).Interface(), out.Field(1).Elem().Interface()) != fmt.Sprint(val.Interface(), val.Interface()) {
					t.Fatalf("%v: struct reads %v, want %v", gt, out.Interface(), v.Interface())
				}
				// The binder's native form (the resolution path) agrees.
				n, err := bd.enc(v)
				if err != nil {
					t.Fatalf("%v: %v", gt, err)
				}
				if fmt.Sprint(n) != fmt.Sprint(native) {
					t.Fatalf("%v: binder gives %v, want %v", gt, n, native)
				}
			}
		})
	}
}

// TestGenericNumbersAsGoavro: generic values accept the Go numbers goavro
// accepted before brook wrote them itself, and only when exact.
func TestGenericNumbersAsGoavro(t *testing.T) {
	schema := `{"type":"record","name":"N","fields":[{"name":"l","type":"long"},{"name":"d","type":"double"},{"name":"f","type":"float"}]}`
	c, err := NewAvroCodec[map[string]any](schema)
	if err != nil {
		t.Fatal(err)
	}
	ga, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]any{"l": float64(42), "d": int64(1 << 52), "f": int32(1 << 20)}
	got, err := c.Marshal(nil, ok)
	if err != nil {
		t.Fatal(err)
	}
	want, err := ga.BinaryFromNative(nil, ok)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatalf("brook writes %x, goavro %x", got, want)
	}
	for _, bad := range []map[string]any{
		{"l": 1.5, "d": 0.0, "f": float32(0)},
		{"l": int64(0), "d": int64(1<<62 + 1), "f": float32(0)},
		{"l": int64(0), "d": 0.0, "f": int64(1<<40 + 1)},
	} {
		if b, err := c.Marshal(nil, bad); err == nil {
			t.Errorf("%v written as %x; want an error, not a rounded number", bad, b)
		}
	}
}
