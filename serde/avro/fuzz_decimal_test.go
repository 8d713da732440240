package avro_test

import (
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"math/big"
	"strings"
	"testing"

	"github.com/brookstream/brook/serde"
)

// decimalFuzzSchemas are the decimal shapes FuzzAvroDecimal writes one value
// into, with the precision, scale and fixed size (0 for bytes) of the
// decimal. Schemas without a fixed decimal are written by goavro on the
// generic path, the others by brook's own writer.
var decimalFuzzSchemas = []struct {
	decimal                string
	precision, scale, size int
}{
	{decBytes122, 12, 2, 0},
	{decFixed122, 12, 2, 6},
	{`{"type":"bytes","logicalType":"decimal","precision":4}`, 4, 0, 0},
	{`{"type":"bytes","logicalType":"decimal","precision":38,"scale":10}`, 38, 10, 0},
	{`{"type":"fixed","name":"Narrow","size":2,"logicalType":"decimal","precision":6,"scale":2}`, 6, 2, 2},
	{`{"type":"fixed","name":"Wide","size":16,"logicalType":"decimal","precision":38,"scale":18}`, 38, 18, 16},
	{`{"type":"bytes","logicalType":"decimal","precision":3,"scale":3}`, 3, 3, 0},
}

// decimalFits is the test's own oracle: whether r has at most scale digits
// after the point and at most precision digits in all, worked out on the
// decimal string rather than on integers.
func decimalFits(r *big.Rat, precision, scale int) bool {
	s := r.FloatString(scale) // rounds, so exact only if it reads back equal
	back, _ := new(big.Rat).SetString(s)
	if back.Cmp(r) != 0 {
		return false
	}
	digits := strings.TrimLeft(strings.NewReplacer("-", "", ".", "").Replace(s), "0")
	return len(digits) <= precision
}

// fitsFixed reports whether the unscaled value of r fits size bytes of
// two's complement.
func fitsFixed(r *big.Rat, scale, size int) bool {
	u := new(big.Rat).Mul(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(scale)), nil)))
	return len(twos(u.Num(), 0)) <= size
}

// FuzzAvroDecimal feeds the same decimal through the struct path and the
// generic path (codecs and Avro serdes) and checks that they agree: the
// same bytes, or the same error; that exactly the values the oracle says
// fit are accepted; and that accepted values read back exactly on both
// paths.
func FuzzAvroDecimal(f *testing.F) {
	for _, s := range []string{"12.345", "1/3", "123456789012.34", "-0.005", "-0.01", "0", "-0", "-123.45",
		"9999999999.99", "-9999999999.99", "10000000000", "0.5", "-1.28", "327.67", "-327.68", "327.68",
		"0.999", "-0.999", "1", "99999999999999999999.999999999999999999", "1/1024", "-7/8", "0.0000000001",
		"170141183460469231731.687303715884105727", "-170141183460469231731.687303715884105728"} {
		for i := range decimalFuzzSchemas {
			f.Add(s, uint8(i))
		}
	}
	// Data beyond the precision (10^12 at precision 12), as bytes and as
	// a fixed, and a valid value followed by a trailing byte.
	tooBig := new(big.Int).Exp(big.NewInt(10), big.NewInt(12), nil)
	f.Add(string(avroBytes(twos(tooBig, 0))), uint8(0))
	f.Add(string(twos(tooBig, 6)), uint8(1))
	f.Add(string(append(avroBytes(twos(tooBig, 0)), 0)), uint8(0))
	type pair struct {
		s  *avro.AvroCodec[DecTxn]
		g  *avro.AvroCodec[map[string]any]
		ss *avro.Avro[DecTxn]
		gs *avro.Avro[map[string]any]
	}
	fake := newFakeRegistry(f)
	reg := newTestRegistry(f, fake.URL())
	pairs := make([]pair, len(decimalFuzzSchemas))
	for i, d := range decimalFuzzSchemas {
		schema := decTxnSchema(d.decimal)
		pairs[i].s = mustCodec[DecTxn](f, schema)
		pairs[i].g = mustCodec[map[string]any](f, schema)
		var err error
		if pairs[i].ss, err = avro.NewAvro[DecTxn](reg, schema, avro.WithSubjectStrategy(avro.TopicRecordNameStrategy)); err != nil {
			f.Fatal(err)
		}
		if pairs[i].gs, err = avro.NewAvro[map[string]any](reg, schema, avro.WithSubjectStrategy(avro.TopicRecordNameStrategy)); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, text string, which uint8) {
		i := int(which) % len(decimalFuzzSchemas)
		d, p := decimalFuzzSchemas[i], pairs[i]
		// The text as data: both decoders agree on what it holds.
		decodeBothWays(t, p.s, p.g, []byte(text))
		// Exponents and long texts would only make huge numbers.
		if len(text) > 96 || strings.ContainsAny(text, "eEpP") {
			return
		}
		r, ok := new(big.Rat).SetString(text)
		if !ok {
			return
		}
		topic := "fuzz" + itoa(i)
		sb, serr := p.s.Marshal(nil, DecTxn{Amount: r})
		gb, gerr := p.g.Marshal(nil, map[string]any{"amount": new(big.Rat).Set(r)})
		sw, swerr := p.ss.Serialize(topic, DecTxn{Amount: r})
		gw, gwerr := p.gs.Serialize(topic, map[string]any{"amount": new(big.Rat).Set(r)})
		want := decimalFits(r, d.precision, d.scale) && (d.size == 0 || fitsFixed(r, d.scale, d.size))
		if (serr == nil) != want || (gerr == nil) != want || (swerr == nil) != want || (gwerr == nil) != want {
			t.Fatalf("%s in %s: oracle says fits=%v; struct %v, generic %v, struct serde %v, generic serde %v",
				text, d.decimal, want, serr, gerr, swerr, gwerr)
		}
		if !want {
			if serr.Error() != gerr.Error() || swerr.Error() != gwerr.Error() {
				t.Fatalf("%s in %s: errors differ:\nstruct  %v\ngeneric %v\nstruct  %v\ngeneric %v", text, d.decimal, serr, gerr, swerr, gwerr)
			}
			if !strings.Contains(serr.Error(), "Txn.amount") {
				t.Fatalf("error does not name the field: %v", serr)
			}
			return
		}
		if string(sb) != string(gb) || string(sw) != string(gw) || string(sw[5:]) != string(sb) {
			t.Fatalf("%s in %s: struct % x, generic % x; serdes % x, % x", text, d.decimal, sb, gb, sw, gw)
		}
		sv, err := p.s.Unmarshal(sb)
		if err != nil || sv.Amount.Cmp(r) != 0 {
			t.Fatalf("%s: struct read back %v, %v", text, sv.Amount, err)
		}
		gv, err := p.g.Unmarshal(sb)
		if err != nil || gv["amount"].(*big.Rat).Cmp(r) != 0 {
			t.Fatalf("%s: generic read back %v, %v", text, gv, err)
		}
		if v, err := p.gs.Deserialize(topic, sw); err != nil || v["amount"].(*big.Rat).Cmp(r) != 0 {
			t.Fatalf("%s: generic serde read back %v, %v", text, v, err)
		}
		if v, err := p.ss.Deserialize(topic, gw); err != nil || v.Amount.Cmp(r) != 0 {
			t.Fatalf("%s: struct serde read back %v, %v", text, v.Amount, err)
		}
	})
}

// decodeBothWays decodes data with the compiled struct decoder and with
// goavro: both fail with the same kind, or both give the same value; a
// decimal beyond the precision is the same error on both.
func decodeBothWays(t *testing.T, s *avro.AvroCodec[DecTxn], g *avro.AvroCodec[map[string]any], data []byte) {
	t.Helper()
	sv, serr := s.Unmarshal(data)
	gv, gerr := g.Unmarshal(data)
	checkDecodeErr(t, serr)
	checkDecodeErr(t, gerr)
	if (serr == nil) != (gerr == nil) {
		t.Fatalf("% x: struct %v, generic %v", data, serr, gerr)
	}
	if serr != nil {
		for _, k := range []error{serde.ErrTruncated, serde.ErrCorrupt} {
			if errors.Is(serr, k) != errors.Is(gerr, k) {
				t.Fatalf("% x: kinds differ: struct %v, generic %v", data, serr, gerr)
			}
		}
		var sd, gd *avro.DecimalError
		if errors.As(serr, &sd) && errors.As(gerr, &gd) && serr.Error() != gerr.Error() {
			t.Fatalf("% x: struct %v, generic %v", data, serr, gerr)
		}
		return
	}
	if sv.Amount.Cmp(gv["amount"].(*big.Rat)) != 0 {
		t.Fatalf("% x: struct %v, generic %v", data, sv.Amount, gv["amount"])
	}
}
