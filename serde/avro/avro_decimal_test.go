package avro_test

import (
	"encoding/binary"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"math/big"
	"strings"
	"testing"

	"github.com/brookstream/brook/serde"
)

// Decimal handling: brook never rounds. A value with more digits after the
// point than the scale, or more digits in all than the precision, or too
// wide for a fixed, is an error naming the field, the value and the
// schema's precision and scale, the same on the struct and generic paths;
// accepted values encode to the same bytes on both and read back exactly.

func decTxnSchema(decimalType string) string {
	return `{"type":"record","name":"Txn","namespace":"brook.pay","fields":[{"name":"amount","type":` + decimalType + `}]}`
}

const (
	decBytes122 = `{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}`
	decFixed122 = `{"type":"fixed","name":"Amount","size":6,"logicalType":"decimal","precision":12,"scale":2}`
)

type DecTxn struct {
	Amount *big.Rat `avro:"amount"`
}

type DecTxnValue struct {
	Amount big.Rat `avro:"amount"`
}

// rat parses s ("12.345", "1/3", "-0.005") exactly.
func rat(t testing.TB, s string) *big.Rat {
	t.Helper()
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		t.Fatalf("bad rational %q", s)
	}
	return r
}

// twos is the test's own two's-complement encoding of n: the fewest bytes
// whose top bit is the sign, sign-extended to size when size > 0.
func twos(n *big.Int, size int) []byte {
	k := 1
	for {
		lim := new(big.Int).Lsh(big.NewInt(1), uint(8*k-1)) // 2^(8k-1)
		if n.Sign() >= 0 && n.Cmp(lim) < 0 || n.Sign() < 0 && new(big.Int).Neg(n).Cmp(lim) <= 0 {
			break
		}
		k++
	}
	if size > k {
		k = size
	}
	v := new(big.Int).Set(n)
	if n.Sign() < 0 {
		v.Add(v, new(big.Int).Lsh(big.NewInt(1), uint(8*k)))
	}
	out := v.FillBytes(make([]byte, k))
	return out
}

// avroBytes is b as an Avro bytes value (zigzag length prefix).
func avroBytes(b []byte) []byte {
	return append(binary.AppendVarint(nil, int64(len(b))), b...)
}

type decCase struct {
	name string
	in   *big.Rat
	// unscaled is the expected unscaled value; "" means an error.
	unscaled string
	// value and reason are expected in the error message.
	value, reason string
}

func decCases(t *testing.T) []decCase {
	f01 := new(big.Rat).SetFloat64(0.1)
	f025 := new(big.Rat).SetFloat64(0.25)
	return []decCase{
		{name: "12.345 has three places", in: rat(t, "12.345"), value: "12.345", reason: "more than 2 digits after the decimal point"},
		{name: "1/3", in: rat(t, "1/3"), value: "1/3", reason: "more than 2 digits after the decimal point"},
		{name: "14 digits at precision 12", in: rat(t, "123456789012.34"), value: "123456789012.34", reason: "more than 12 digits"},
		{name: "-0.005", in: rat(t, "-0.005"), value: "-0.005", reason: "more than 2 digits after the decimal point"},
		{name: "0.005", in: rat(t, "0.005"), value: "0.005", reason: "more than 2 digits after the decimal point"},
		{name: "2/3", in: rat(t, "2/3"), value: "2/3", reason: "more than 2 digits after the decimal point"},
		{name: "float64 0.1 is not 1/10", in: f01, value: "0.1000000000000000055511151231257827021181583404541015625", reason: "more than 2 digits after the decimal point"},
		{name: "13 digits above max", in: rat(t, "10000000000"), value: "10000000000", reason: "more than 12 digits"},
		{name: "13 digits below min", in: rat(t, "-10000000000.00"), value: "-10000000000", reason: "more than 12 digits"},
		{name: "-0.01", in: rat(t, "-0.01"), unscaled: "-1"},
		{name: "0", in: rat(t, "0"), unscaled: "0"},
		{name: "-0", in: rat(t, "-0.00"), unscaled: "0"},
		{name: "0.01", in: rat(t, "0.01"), unscaled: "1"},
		{name: "negative", in: rat(t, "-123.45"), unscaled: "-12345"},
		{name: "-1.28", in: rat(t, "-1.28"), unscaled: "-128"},
		{name: "1.28", in: rat(t, "1.28"), unscaled: "128"},
		{name: "fewer places", in: rat(t, "12.3"), unscaled: "1230"},
		{name: "5/4", in: rat(t, "5/4"), unscaled: "125"},
		{name: "float64 0.25", in: f025, unscaled: "25"},
		{name: "max precision", in: rat(t, "9999999999.99"), unscaled: "999999999999"},
		{name: "min precision", in: rat(t, "-9999999999.99"), unscaled: "-999999999999"},
		{name: "nil", in: nil},
	}
}

func mustCodec[T any](t testing.TB, schema string) *avro.AvroCodec[T] {
	t.Helper()
	c, err := avro.NewAvroCodec[T](schema)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// checkDecErr checks that err is a *DecimalError naming the field, the
// value, the precision and scale and the reason.
func checkDecErr(t *testing.T, what string, err error, path, value, reason string, precision, scale int) {
	t.Helper()
	var de *avro.DecimalError
	if !errors.As(err, &de) {
		t.Fatalf("%s: got %v (%T), want a *avro.DecimalError", what, err, err)
	}
	if de.Path != path || de.Value != value || de.Precision != precision || de.Scale != scale {
		t.Fatalf("%s: got %+v, want path %s value %s decimal(%d,%d)", what, de, path, value, precision, scale)
	}
	msg := err.Error()
	for _, want := range []string{path, value, reason} {
		if !strings.Contains(msg, want) {
			t.Fatalf("%s: error %q does not mention %q", what, msg, want)
		}
	}
}

func TestAvroDecimalNeverRounds(t *testing.T) {
	for _, schemaKind := range []struct {
		name   string
		schema string
		size   int
	}{{"bytes", decBytes122, 0}, {"fixed", decFixed122, 6}} {
		schema := decTxnSchema(schemaKind.schema)
		sc := mustCodec[DecTxn](t, schema)
		gc := mustCodec[map[string]any](t, schema)
		ac := mustCodec[any](t, schema)
		fake := newFakeRegistry(t)
		reg := newTestRegistry(t, fake.URL())
		ss, _ := avro.NewAvro[DecTxn](reg, schema)
		gs, _ := avro.NewAvro[map[string]any](reg, schema)
		for _, tc := range decCases(t) {
			t.Run(schemaKind.name+"/"+tc.name, func(t *testing.T) {
				sb, serr := sc.Marshal(nil, DecTxn{Amount: tc.in})
				gb, gerr := gc.Marshal(nil, map[string]any{"amount": tc.in})
				ab, aerr := ac.Marshal(nil, map[string]any{"amount": tc.in})
				sw, swerr := ss.Serialize("t", DecTxn{Amount: tc.in})
				gw, gwerr := gs.Serialize("t", map[string]any{"amount": tc.in})
				if tc.in == nil {
					for _, err := range []error{serr, gerr, aerr, swerr, gwerr} {
						var de *avro.DecimalError
						if !errors.As(err, &de) || de.Path != "Txn.amount" || !strings.Contains(err.Error(), "nil *big.Rat") {
							t.Fatalf("nil: got %v", err)
						}
					}
					if serr.Error() != gerr.Error() || swerr.Error() != gwerr.Error() {
						t.Fatalf("nil: struct %q, generic %q / %q, %q", serr, gerr, swerr, gwerr)
					}
					return
				}
				if tc.unscaled == "" {
					checkDecErr(t, "struct", serr, "Txn.amount", tc.value, tc.reason, 12, 2)
					checkDecErr(t, "generic", gerr, "Txn.amount", tc.value, tc.reason, 12, 2)
					checkDecErr(t, "any", aerr, "Txn.amount", tc.value, tc.reason, 12, 2)
					checkDecErr(t, "struct serialize", swerr, "Txn.amount", tc.value, tc.reason, 12, 2)
					checkDecErr(t, "generic serialize", gwerr, "Txn.amount", tc.value, tc.reason, 12, 2)
					if serr.Error() != gerr.Error() || serr.Error() != aerr.Error() {
						t.Fatalf("paths disagree:\nstruct  %v\ngeneric %v\nany     %v", serr, gerr, aerr)
					}
					if swerr.Error() != gwerr.Error() {
						t.Fatalf("serialize paths disagree:\nstruct  %v\ngeneric %v", swerr, gwerr)
					}
					var ee *serde.EncodeError
					if !errors.As(swerr, &ee) || ee.Topic != "t" {
						t.Fatalf("serialize error is not an *EncodeError for topic t: %v", swerr)
					}
					// A big.Rat (not a pointer) field takes the same path.
					var v DecTxnValue
					v.Amount.Set(tc.in)
					_, verr := mustCodec[DecTxnValue](t, schema).Marshal(nil, v)
					if verr == nil || verr.Error() != serr.Error() {
						t.Fatalf("big.Rat field: %v, want %v", verr, serr)
					}
					return
				}
				for what, err := range map[string]error{"struct": serr, "generic": gerr, "any": aerr, "struct serialize": swerr, "generic serialize": gwerr} {
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
				}
				u, _ := new(big.Int).SetString(tc.unscaled, 10)
				want := twos(u, schemaKind.size)
				if schemaKind.size == 0 {
					want = avroBytes(want)
				}
				for what, got := range map[string][]byte{"struct": sb, "generic": gb, "any": ab, "struct serialize": sw[5:], "generic serialize": gw[5:]} {
					if string(got) != string(want) {
						t.Fatalf("%s: % x, want % x (unscaled %s)", what, got, want, tc.unscaled)
					}
				}
				sv, err := sc.Unmarshal(want)
				if err != nil || sv.Amount.Cmp(tc.in) != 0 {
					t.Fatalf("struct read back %v, %v; want %v", sv.Amount, err, tc.in)
				}
				gv, err := gc.Unmarshal(want)
				if err != nil || gv["amount"].(*big.Rat).Cmp(tc.in) != 0 {
					t.Fatalf("generic read back %v, %v; want %v", gv, err, tc.in)
				}
				if v, err := ss.Deserialize("t", sw); err != nil || v.Amount.Cmp(tc.in) != 0 {
					t.Fatalf("struct deserialize %v, %v", v.Amount, err)
				}
				if v, err := gs.Deserialize("t", gw); err != nil || v["amount"].(*big.Rat).Cmp(tc.in) != 0 {
					t.Fatalf("generic deserialize %v, %v", v, err)
				}
			})
		}
	}
}

// TestAvroDecimalKnownBytes pins a few encodings by hand.
func TestAvroDecimalKnownBytes(t *testing.T) {
	for _, tc := range []struct {
		schema string
		in     string
		want   []byte
	}{
		{decBytes122, "-0.01", []byte{2, 0xff}},
		{decBytes122, "0", []byte{2, 0}},
		{decBytes122, "1.28", []byte{4, 0, 0x80}},
		{decBytes122, "-1.28", []byte{2, 0x80}},
		{decBytes122, "-1.29", []byte{4, 0xff, 0x7f}},
		{decFixed122, "-0.01", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{decFixed122, "0", []byte{0, 0, 0, 0, 0, 0}},
		{decFixed122, "9999999999.99", []byte{0, 0xe8, 0xd4, 0xa5, 0x0f, 0xff}},
	} {
		schema := decTxnSchema(tc.schema)
		sb, err := mustCodec[DecTxn](t, schema).Marshal(nil, DecTxn{Amount: rat(t, tc.in)})
		if err != nil || string(sb) != string(tc.want) {
			t.Fatalf("%s %s struct: % x, %v; want % x", tc.schema, tc.in, sb, err, tc.want)
		}
		gb, err := mustCodec[map[string]any](t, schema).Marshal(nil, map[string]any{"amount": rat(t, tc.in)})
		if err != nil || string(gb) != string(tc.want) {
			t.Fatalf("%s %s generic: % x, %v; want % x", tc.schema, tc.in, gb, err, tc.want)
		}
	}
}

// TestAvroDecimalFixedTooNarrow: a fixed whose size cannot hold the
// precision rejects values that do not fit its bytes, naming the field.
func TestAvroDecimalFixedTooNarrow(t *testing.T) {
	schema := decTxnSchema(`{"type":"fixed","name":"Small","size":2,"logicalType":"decimal","precision":6,"scale":2}`)
	sc := mustCodec[DecTxn](t, schema)
	gc := mustCodec[map[string]any](t, schema)
	for _, tc := range []struct {
		in   string
		want []byte // nil: error
	}{
		{"327.67", []byte{0x7f, 0xff}},
		{"-327.68", []byte{0x80, 0x00}},
		{"327.68", nil},
		{"-327.69", nil},
		{"9999.99", nil},
	} {
		sb, serr := sc.Marshal(nil, DecTxn{Amount: rat(t, tc.in)})
		gb, gerr := gc.Marshal(nil, map[string]any{"amount": rat(t, tc.in)})
		if tc.want == nil {
			checkDecErr(t, "struct "+tc.in, serr, "Txn.amount", tc.in, "fixed brook.pay.Small has 2", 6, 2)
			checkDecErr(t, "generic "+tc.in, gerr, "Txn.amount", tc.in, "fixed brook.pay.Small has 2", 6, 2)
			if serr.Error() != gerr.Error() {
				t.Fatalf("%s: struct %v, generic %v", tc.in, serr, gerr)
			}
			continue
		}
		if serr != nil || gerr != nil || string(sb) != string(tc.want) || string(gb) != string(tc.want) {
			t.Fatalf("%s: struct % x %v, generic % x %v; want % x", tc.in, sb, serr, gb, gerr, tc.want)
		}
	}
}

// TestAvroDecimalShapes: decimals inside unions, arrays, maps and `any`
// fields are checked on both paths, with paths that say where.
func TestAvroDecimalShapes(t *testing.T) {
	// With a fixed decimal in the schema generic values are written by
	// brook's own writer, without one by goavro: both are checked.
	for _, items := range []string{decFixed122, decBytes122} {
		testAvroDecimalShapes(t, items)
	}
}

func testAvroDecimalShapes(t *testing.T, items string) {
	schema := `{"type":"record","name":"Book","fields":[
	  {"name":"opt","type":["null",` + decBytes122 + `],"default":null},
	  {"name":"list","type":{"type":"array","items":` + items + `}},
	  {"name":"byCcy","type":{"type":"map","values":` + decBytes122 + `}},
	  {"name":"free","type":["null","string",{"type":"bytes","logicalType":"decimal","precision":4,"scale":1}],"default":null}]}`
	type Book struct {
		Opt   *big.Rat            `avro:"opt"`
		List  []*big.Rat          `avro:"list"`
		ByCcy map[string]*big.Rat `avro:"byCcy"`
		Free  any                 `avro:"free"`
	}
	sc := mustCodec[Book](t, schema)
	gc := mustCodec[map[string]any](t, schema)
	ok := Book{Opt: rat(t, "1.5"), List: []*big.Rat{rat(t, "-0.01"), rat(t, "3")}, ByCcy: map[string]*big.Rat{"EUR": rat(t, "7.25")}, Free: rat(t, "99.9")}
	native := func(b Book) map[string]any {
		m := map[string]any{"opt": nil, "list": []any{}, "byCcy": map[string]any{}, "free": nil}
		if b.Opt != nil {
			m["opt"] = map[string]any{"bytes.decimal": b.Opt}
		}
		for _, x := range b.List {
			m["list"] = append(m["list"].([]any), x)
		}
		for k, x := range b.ByCcy {
			m["byCcy"].(map[string]any)[k] = x
		}
		if b.Free != nil {
			m["free"] = map[string]any{"bytes.decimal": b.Free}
		}
		return m
	}
	sb, err := sc.Marshal(nil, ok)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := gc.Marshal(nil, native(ok))
	if err != nil || string(gb) != string(sb) {
		t.Fatalf("generic % x %v, struct % x", gb, err, sb)
	}
	back, err := sc.Unmarshal(sb)
	if err != nil || back.Opt.Cmp(ok.Opt) != 0 || back.List[0].Cmp(ok.List[0]) != 0 || back.ByCcy["EUR"].Cmp(ok.ByCcy["EUR"]) != 0 ||
		back.Free.(map[string]any)["bytes.decimal"].(*big.Rat).Cmp(rat(t, "99.9")) != 0 {
		t.Fatalf("read back %+v, %v", back, err)
	}
	for _, tc := range []struct {
		name  string
		edit  func(*Book)
		path  string
		value string
		prec  int
		scale int
	}{
		{"union", func(b *Book) { b.Opt = rat(t, "0.125") }, "Book.opt", "0.125", 12, 2},
		{"array", func(b *Book) { b.List = append(b.List, rat(t, "1/3")) }, "Book.list[]", "1/3", 12, 2},
		{"map", func(b *Book) { b.ByCcy["USD"] = rat(t, "-0.005") }, "Book.byCcy{}", "-0.005", 12, 2},
		{"any", func(b *Book) { b.Free = rat(t, "1000") }, "Book.free", "1000", 4, 1},
		{"any scale", func(b *Book) { b.Free = rat(t, "1.25") }, "Book.free", "1.25", 4, 1},
	} {
		b := ok
		b.List = append([]*big.Rat(nil), ok.List...)
		b.ByCcy = map[string]*big.Rat{"EUR": ok.ByCcy["EUR"]}
		tc.edit(&b)
		_, serr := sc.Marshal(nil, b)
		_, gerr := gc.Marshal(nil, native(b))
		checkDecErr(t, tc.name+" struct", serr, tc.path, tc.value, "", tc.prec, tc.scale)
		checkDecErr(t, tc.name+" generic", gerr, tc.path, tc.value, "", tc.prec, tc.scale)
		if serr.Error() != gerr.Error() {
			t.Fatalf("%s: struct %v, generic %v", tc.name, serr, gerr)
		}
	}
}

// TestAvroDecimalDecodeBeyondPrecision: data whose unscaled value has more
// digits than the precision is refused when read, on both paths alike.
func TestAvroDecimalDecodeBeyondPrecision(t *testing.T) {
	tooBig := new(big.Int).Exp(big.NewInt(10), big.NewInt(12), nil) // 13 digits
	maxOK := new(big.Int).Sub(tooBig, big.NewInt(1))
	for _, k := range []struct {
		schema string
		size   int
	}{{decBytes122, 0}, {decFixed122, 6}} {
		schema := decTxnSchema(k.schema)
		sc := mustCodec[DecTxn](t, schema)
		gc := mustCodec[map[string]any](t, schema)
		enc := func(n *big.Int) []byte {
			b := twos(n, k.size)
			if k.size == 0 {
				return avroBytes(b)
			}
			return b
		}
		for _, n := range []*big.Int{tooBig, new(big.Int).Neg(tooBig)} {
			data := enc(n)
			_, serr := sc.Unmarshal(data)
			_, gerr := gc.Unmarshal(data)
			value := strings.TrimSuffix(strings.TrimRight(new(big.Rat).SetFrac(n, big.NewInt(100)).FloatString(2), "0"), ".")
			for what, err := range map[string]error{"struct": serr, "generic": gerr} {
				if !errors.Is(err, serde.ErrCorrupt) {
					t.Fatalf("%s %s: %v, want ErrCorrupt", k.schema, what, err)
				}
				checkDecErr(t, what, err, "Txn.amount", value, "more than 12 digits", 12, 2)
			}
			if serr.Error() != gerr.Error() {
				t.Fatalf("struct %v\ngeneric %v", serr, gerr)
			}
		}
		for _, n := range []*big.Int{maxOK, new(big.Int).Neg(maxOK)} {
			want := new(big.Rat).SetFrac(n, big.NewInt(100))
			sv, serr := sc.Unmarshal(enc(n))
			gv, gerr := gc.Unmarshal(enc(n))
			if serr != nil || gerr != nil || sv.Amount.Cmp(want) != 0 || gv["amount"].(*big.Rat).Cmp(want) != 0 {
				t.Fatalf("%v: struct %v %v, generic %v %v", n, sv.Amount, serr, gv, gerr)
			}
		}
	}
}

// TestAvroDecimalResolution: reading with a decimal of another scale or
// precision keeps the value (never reinterprets the unscaled digits) or
// fails naming the field; writing with a registered schema of another scale
// does the same.
func TestAvroDecimalResolution(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		dec := func(p, s int) string {
			if fixed {
				return `{"type":"fixed","name":"Amount","size":8,"logicalType":"decimal","precision":` + itoa(p) + `,"scale":` + itoa(s) + `}`
			}
			return `{"type":"bytes","logicalType":"decimal","precision":` + itoa(p) + `,"scale":` + itoa(s) + `}`
		}
		fake := newFakeRegistry(t)
		reg := newTestRegistry(t, fake.URL())
		w122, _ := avro.NewAvro[DecTxn](reg, decTxnSchema(dec(12, 2)))
		w123, _ := avro.NewAvro[DecTxn](reg, decTxnSchema(dec(12, 3)))
		w142, _ := avro.NewAvro[DecTxn](reg, decTxnSchema(dec(14, 2)))
		b122, err := w122.Serialize("a", DecTxn{Amount: rat(t, "12.34")})
		if err != nil {
			t.Fatal(err)
		}
		b123, err := w123.Serialize("b", DecTxn{Amount: rat(t, "12.345")})
		if err != nil {
			t.Fatal(err)
		}
		b142, err := w142.Serialize("c", DecTxn{Amount: rat(t, "123456789012.34")})
		if err != nil {
			t.Fatal(err)
		}
		r144s, _ := avro.NewAvro[DecTxn](reg, decTxnSchema(dec(14, 4)))
		r144g, _ := avro.NewAvro[map[string]any](reg, decTxnSchema(dec(14, 4)))
		if v, err := r144s.Deserialize("a", b122); err != nil || v.Amount.Cmp(rat(t, "12.34")) != 0 {
			t.Fatalf("fixed=%v: 12.34 at scale 2 read at scale 4 (struct): %v, %v", fixed, v.Amount, err)
		}
		if v, err := r144g.Deserialize("a", b122); err != nil || v["amount"].(*big.Rat).Cmp(rat(t, "12.34")) != 0 {
			t.Fatalf("fixed=%v: 12.34 at scale 2 read at scale 4 (generic): %v, %v", fixed, v, err)
		}
		r122s, _ := avro.NewAvro[DecTxn](reg, decTxnSchema(dec(12, 2)))
		r122g, _ := avro.NewAvro[map[string]any](reg, decTxnSchema(dec(12, 2)))
		for _, tc := range []struct {
			data          []byte
			value, reason string
		}{
			{b123, "12.345", "more than 2 digits after the decimal point"},
			{b142, "123456789012.34", "more than 12 digits"},
		} {
			_, serr := r122s.Deserialize("b", tc.data)
			_, gerr := r122g.Deserialize("b", tc.data)
			for what, err := range map[string]error{"struct": serr, "generic": gerr} {
				if !errors.Is(err, avro.ErrSchemaMismatch) {
					t.Fatalf("fixed=%v %s %s: %v, want ErrSchemaMismatch", fixed, what, tc.value, err)
				}
				checkDecErr(t, what, err, "Txn.amount", tc.value, tc.reason, 12, 2)
			}
			if serr.Error() != gerr.Error() {
				t.Fatalf("struct %v\ngeneric %v", serr, gerr)
			}
		}
		// Writing with the latest registered schema (scale 4) converts the
		// value, not the digits.
		if _, err := r144s.Serialize("w", DecTxn{Amount: rat(t, "1")}); err != nil {
			t.Fatal(err)
		}
		ls, _ := avro.NewAvro[DecTxn](reg, decTxnSchema(dec(12, 2)), avro.UseLatest())
		lg, _ := avro.NewAvro[map[string]any](reg, decTxnSchema(dec(12, 2)), avro.UseLatest())
		sb, err := ls.Serialize("w", DecTxn{Amount: rat(t, "12.34")})
		if err != nil {
			t.Fatal(err)
		}
		gb, err := lg.Serialize("w", map[string]any{"amount": rat(t, "12.34")})
		if err != nil || string(gb) != string(sb) {
			t.Fatalf("fixed=%v use-latest generic % x %v, struct % x", fixed, gb, err, sb)
		}
		if v, err := r144s.Deserialize("w", sb); err != nil || v.Amount.Cmp(rat(t, "12.34")) != 0 {
			t.Fatalf("fixed=%v use-latest wrote %v, %v", fixed, v.Amount, err)
		}
		// The serde's own schema still bounds what it accepts.
		_, serr := ls.Serialize("w", DecTxn{Amount: rat(t, "12.345")})
		_, gerr := lg.Serialize("w", map[string]any{"amount": rat(t, "12.345")})
		checkDecErr(t, "use-latest struct", serr, "Txn.amount", "12.345", "more than 2 digits", 12, 2)
		checkDecErr(t, "use-latest generic", gerr, "Txn.amount", "12.345", "more than 2 digits", 12, 2)
		if serr.Error() != gerr.Error() {
			t.Fatalf("use-latest: struct %v, generic %v", serr, gerr)
		}
	}
}

func itoa(i int) string { return big.NewInt(int64(i)).String() }

// TestAvroDecimalDefaultBeyondPrecision: a decimal default must fit the
// precision, like any value.
func TestAvroDecimalDefaultBeyondPrecision(t *testing.T) {
	bad := `{"type":"record","name":"R","fields":[{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":2,"scale":0},"default":"\u0001\u0000"}]}`
	if _, err := avro.NewAvroCodec[map[string]any](bad); err == nil || !strings.Contains(err.Error(), "256") || !strings.Contains(err.Error(), "more than 2 digits") {
		t.Fatalf("default 256 at precision 2: %v", err)
	}
	good := `{"type":"record","name":"R","fields":[{"name":"x","type":"int"},{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":2,"scale":0},"default":"c"}]}`
	type R struct {
		X int32 `avro:"x"`
	}
	c := mustCodec[R](t, good)
	b, err := c.Marshal(nil, R{X: 1})
	if err != nil || string(b) != string([]byte{2, 2, 'c'}) {
		t.Fatalf("default 99: % x, %v", b, err)
	}
	m, err := mustCodec[map[string]any](t, good).Unmarshal(b)
	if err != nil || m["d"].(*big.Rat).Cmp(big.NewRat(99, 1)) != 0 {
		t.Fatalf("default 99 read back: %v, %v", m, err)
	}
}

// TestAvroDecimalValueJSON: rendering a decimal as JSON never rounds
// either.
func TestAvroDecimalValueJSON(t *testing.T) {
	schema := decTxnSchema(decBytes122)
	g := mustCodec[map[string]any](t, schema)
	s := mustCodec[DecTxn](t, schema)
	_, gerr := g.ValueJSON(map[string]any{"amount": rat(t, "12.345")})
	_, serr := s.ValueJSON(DecTxn{Amount: rat(t, "12.345")})
	checkDecErr(t, "generic", gerr, "Txn.amount", "12.345", "more than 2 digits", 12, 2)
	checkDecErr(t, "struct", serr, "Txn.amount", "12.345", "more than 2 digits", 12, 2)
	out, err := g.ValueJSON(map[string]any{"amount": rat(t, "-0.5")})
	if err != nil || string(out) != `{"amount":-0.50}` {
		t.Fatalf("-0.5: %s, %v", out, err)
	}
}
