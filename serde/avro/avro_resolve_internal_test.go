package avro

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

// resolveVia writes native with the writer schema (goavro), reads it back
// with the writer's codec and resolves it to the reader schema.
func resolveVia(t *testing.T, writer, reader string, native any) (any, error) {
	t.Helper()
	ws, err := parseAvroSchema(writer)
	if err != nil {
		t.Fatalf("writer: %v", err)
	}
	rs, err := parseAvroSchema(reader)
	if err != nil {
		t.Fatalf("reader: %v", err)
	}
	wc, err := goavro.NewCodec(writer)
	if err != nil {
		t.Fatal(err)
	}
	b, err := wc.BinaryFromNative(nil, native)
	if err != nil {
		t.Fatalf("encode %v: %v", native, err)
	}
	n, _, err := wc.NativeFromBinary(b)
	if err != nil {
		t.Fatal(err)
	}
	fn, err := buildResolver(ws, rs)
	if err != nil {
		return nil, err
	}
	if fn == nil {
		return n, nil
	}
	out, err := fn(n)
	if err == nil {
		// What resolves must encode with the reader schema.
		rc, _ := goavro.NewCodec(reader)
		if _, err := rc.BinaryFromNative(nil, out); err != nil {
			t.Fatalf("resolved value %v does not fit the reader schema: %v", out, err)
		}
	}
	return out, err
}

func TestResolvePromotions(t *testing.T) {
	cases := []struct {
		w, r string
		in   any
		want any
	}{
		{`"int"`, `"long"`, int32(-5), int64(-5)},
		{`"int"`, `"float"`, int32(7), float32(7)},
		{`"int"`, `"double"`, int32(7), float64(7)},
		{`"long"`, `"float"`, int64(1 << 40), float32(1 << 40)},
		{`"long"`, `"double"`, int64(-3), float64(-3)},
		{`"float"`, `"double"`, float32(1.5), float64(1.5)},
		{`"string"`, `"bytes"`, "hé", []byte("hé")},
		{`"bytes"`, `"string"`, []byte("ok"), "ok"},
		{`{"type":"array","items":"int"}`, `{"type":"array","items":"long"}`, []any{int32(1), int32(2)}, []any{int64(1), int64(2)}},
		{`{"type":"map","values":"float"}`, `{"type":"map","values":"double"}`, map[string]any{"a": float32(2)}, map[string]any{"a": float64(2)}},
		{`"long"`, `{"type":"long","logicalType":"timestamp-millis"}`, int64(1500), time.UnixMilli(1500).UTC()},
		{`{"type":"int","logicalType":"date"}`, `"int"`, int32(3), int32(3)},
		{`{"type":"int","logicalType":"date"}`, `"long"`, int32(3), int64(3)},
	}
	for _, c := range cases {
		got, err := resolveVia(t, c.w, c.r, c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s -> %s: got %#v, %v; want %#v", c.w, c.r, got, err, c.want)
		}
	}
	for _, bad := range [][2]string{{`"long"`, `"int"`}, {`"double"`, `"float"`}, {`"string"`, `"int"`}, {`"bytes"`, `"long"`}, {`"boolean"`, `"int"`}} {
		ws, _ := parseAvroSchema(bad[0])
		rs, _ := parseAvroSchema(bad[1])
		_, err := buildResolver(ws, rs)
		var re *ResolutionError
		if !errors.As(err, &re) || !strings.Contains(re.Reason, "cannot be read as") {
			t.Errorf("%s -> %s: want a ResolutionError, got %v", bad[0], bad[1], err)
		}
	}
}

const recW = `{"type":"record","name":"R","namespace":"a","fields":[
  {"name":"id","type":"string"},
  {"name":"old","type":"int"},
  {"name":"n","type":"int"}]}`

func TestResolveRecords(t *testing.T) {
	reader := `{"type":"record","name":"R","namespace":"b","fields":[
	  {"name":"id","type":"string"},
	  {"name":"n","type":"double"},
	  {"name":"tags","type":{"type":"array","items":"string"},"default":["x"]},
	  {"name":"note","type":["null","string"],"default":null},
	  {"name":"sub","type":{"type":"record","name":"Sub","fields":[{"name":"k","type":"long"}]},"default":{"k":9}},
	  {"name":"kind","type":{"type":"enum","name":"K","symbols":["A","B"]},"default":"B"}]}`
	got, err := resolveVia(t, recW, reader, map[string]any{"id": "r1", "old": int32(1), "n": int32(4)})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"id": "r1", "n": float64(4), "tags": []any{"x"}, "note": nil, "sub": map[string]any{"k": int64(9)}, "kind": "B"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	// Defaults are not shared between decoded values.
	got.(map[string]any)["tags"].([]any)[0] = "mutated"
	again, _ := resolveVia(t, recW, reader, map[string]any{"id": "r2", "old": int32(1), "n": int32(4)})
	if again.(map[string]any)["tags"].([]any)[0] != "x" {
		t.Fatal("a default was shared between records")
	}

	// A reader field without default that the writer lacks cannot resolve.
	noDefault := `{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"extra","type":"int"}]}`
	_, err = resolveVia(t, recW, noDefault, map[string]any{"id": "r1", "old": int32(1), "n": int32(4)})
	var re *ResolutionError
	if !errors.As(err, &re) || re.Path != "R.extra" || !strings.Contains(re.Reason, "no default") {
		t.Fatalf("got %v", err)
	}
	// Field aliases: the reader renamed n to count.
	renamed := `{"type":"record","name":"R","fields":[{"name":"count","aliases":["n"],"type":"long"}]}`
	got, err = resolveVia(t, recW, renamed, map[string]any{"id": "r1", "old": int32(1), "n": int32(4)})
	if err != nil || !reflect.DeepEqual(got, map[string]any{"count": int64(4)}) {
		t.Fatalf("alias: %v, %v", got, err)
	}
	// Record names must match (or be aliased).
	other := `{"type":"record","name":"Other","fields":[{"name":"id","type":"string"}]}`
	if _, err := resolveVia(t, recW, other, map[string]any{"id": "r1", "old": int32(1), "n": int32(4)}); !errors.As(err, &re) {
		t.Fatalf("name mismatch: %v", err)
	}
	aliased := `{"type":"record","name":"Other","aliases":["a.R"],"fields":[{"name":"id","type":"string"}]}`
	if got, err := resolveVia(t, recW, aliased, map[string]any{"id": "r1", "old": int32(1), "n": int32(4)}); err != nil || !reflect.DeepEqual(got, map[string]any{"id": "r1"}) {
		t.Fatalf("record alias: %v, %v", got, err)
	}
}

func TestResolveEnums(t *testing.T) {
	w := `{"type":"enum","name":"E","symbols":["A","B","C"]}`
	withDefault := `{"type":"enum","name":"E","symbols":["A","B","UNKNOWN"],"default":"UNKNOWN"}`
	noDefault := `{"type":"enum","name":"E","symbols":["A","B"]}`
	if got, err := resolveVia(t, w, withDefault, "C"); err != nil || got != "UNKNOWN" {
		t.Fatalf("enum default: %v, %v", got, err)
	}
	if got, err := resolveVia(t, w, noDefault, "B"); err != nil || got != "B" {
		t.Fatalf("known symbol: %v, %v", got, err)
	}
	_, err := resolveVia(t, w, noDefault, "C")
	var re *ResolutionError
	if !errors.As(err, &re) || !strings.Contains(re.Reason, `"C"`) {
		t.Fatalf("unknown symbol: %v", err)
	}
}

func TestResolveUnions(t *testing.T) {
	// Promotion inside a union.
	got, err := resolveVia(t, `["null","int"]`, `["null","long"]`, goavro.Union("int", int32(3)))
	if err != nil || !reflect.DeepEqual(got, map[string]any{"long": int64(3)}) {
		t.Fatalf("union promotion: %#v, %v", got, err)
	}
	got, err = resolveVia(t, `["null","int"]`, `["null","long"]`, nil)
	if err != nil || got != nil {
		t.Fatalf("union null: %#v, %v", got, err)
	}
	// Non-union writer into a union reader: the first matching branch.
	got, err = resolveVia(t, `"int"`, `["null","string","long"]`, int32(5))
	if err != nil || !reflect.DeepEqual(got, map[string]any{"long": int64(5)}) {
		t.Fatalf("into union: %#v, %v", got, err)
	}
	got, err = resolveVia(t, `"string"`, `["null","bytes","string"]`, "s")
	if err != nil || !reflect.DeepEqual(got, map[string]any{"string": "s"}) {
		t.Fatalf("exact branch preferred over promotion: %#v, %v", got, err)
	}
	// Union writer into a non-union reader: fine per value, error for a
	// branch the reader cannot take.
	got, err = resolveVia(t, `["null","string"]`, `"string"`, goavro.Union("string", "v"))
	if err != nil || got != "v" {
		t.Fatalf("out of union: %#v, %v", got, err)
	}
	_, err = resolveVia(t, `["null","string"]`, `"string"`, nil)
	var re *ResolutionError
	if !errors.As(err, &re) {
		t.Fatalf("null into string: %v", err)
	}
	// A union none of whose branches fit is refused up front.
	ws, _ := parseAvroSchema(`["int","string"]`)
	rs, _ := parseAvroSchema(`"boolean"`)
	if _, err := buildResolver(ws, rs); !errors.As(err, &re) {
		t.Fatalf("no branch fits: %v", err)
	}
	// Records inside unions, by name.
	wr := `["null",{"type":"record","name":"P","fields":[{"name":"x","type":"int"}]}]`
	rr := `["null",{"type":"record","name":"P","fields":[{"name":"x","type":"long"},{"name":"y","type":"int","default":1}]}]`
	got, err = resolveVia(t, wr, rr, goavro.Union("P", map[string]any{"x": int32(2)}))
	if err != nil || !reflect.DeepEqual(got, map[string]any{"P": map[string]any{"x": int64(2), "y": int32(1)}}) {
		t.Fatalf("record in union: %#v, %v", got, err)
	}
}

func TestResolveRecursiveAndIdentity(t *testing.T) {
	w := `{"type":"record","name":"L","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","L"],"default":null}]}`
	r := `{"type":"record","name":"L","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","L"],"default":null}]}`
	in := map[string]any{"v": int32(1), "next": goavro.Union("L", map[string]any{"v": int32(2), "next": nil})}
	got, err := resolveVia(t, w, r, in)
	want := map[string]any{"v": int64(1), "next": map[string]any{"L": map[string]any{"v": int64(2), "next": nil}}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("recursive: %#v, %v", got, err)
	}
	for _, s := range []string{w, recW, `["null","string"]`, `{"type":"map","values":{"type":"array","items":"long"}}`} {
		ps, _ := parseAvroSchema(s)
		ps2, _ := parseAvroSchema(s)
		fn, err := buildResolver(ps, ps2)
		if err != nil || fn != nil {
			t.Errorf("%s: identical schemas should need no conversion (fn nil: %v, err %v)", s, fn == nil, err)
		}
	}
}

func TestParseSchemaErrors(t *testing.T) {
	for _, bad := range []string{
		`{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`,
		`{"type":"record","name":"1R","fields":[]}`,
		`{"type":"enum","name":"E","symbols":["A","A"]}`,
		`{"type":"enum","name":"E","symbols":["A"],"default":"B"}`,
		`{"type":"fixed","name":"F"}`,
		`["null",["int"]]`,
		`{"type":"array"}`,
		`"Undefined"`,
		`{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2},"default":5}]}`,
	} {
		if _, err := parseAvroSchema(bad); err == nil {
			t.Errorf("%s: want an error", bad)
		}
	}
	// A decimal without a scale gets scale 0 for goavro (which otherwise
	// panics building a second decimal codec).
	two := `{"type":"record","name":"R","fields":[
	  {"name":"a","type":{"type":"bytes","logicalType":"decimal","precision":4}},
	  {"name":"b","type":{"type":"bytes","logicalType":"decimal","precision":4}}]}`
	text, err := goavroSchemaText(two)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := goavro.NewCodec(text); err != nil {
		t.Fatal(err)
	}
}
