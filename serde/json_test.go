package serde_test

import (
	"errors"
	"testing"

	"github.com/brookstream/brook/serde"
)

type jsonTxn struct {
	ID     string  `json:"id"`
	Amount float64 `json:"amount"`
	Tags   []string
}

func TestJSONRoundTrip(t *testing.T) {
	s := serde.JSON[jsonTxn]()
	in := jsonTxn{ID: "t-1", Amount: 12.5, Tags: []string{"a"}}
	b, err := s.Serialize("t", in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"id":"t-1","amount":12.5,"Tags":["a"]}` {
		t.Fatalf("got %s", b)
	}
	out, err := s.Deserialize("t", b)
	if err != nil || out.ID != in.ID || out.Amount != in.Amount || len(out.Tags) != 1 {
		t.Fatalf("got %+v, %v", out, err)
	}
}

func TestJSONErrors(t *testing.T) {
	s := serde.JSON[jsonTxn]()
	if v, err := s.Deserialize("t", nil); err != nil || v.ID != "" {
		t.Fatalf("nil payload: %+v, %v", v, err)
	}
	cases := []struct {
		in   string
		kind error
	}{
		{`{"id":"x"`, serde.ErrTruncated},
		{``, serde.ErrTruncated},
		{`{"id":1}`, serde.ErrCorrupt},
		{`{"id":"x"} {}`, serde.ErrCorrupt},
		{`{"id":"x"}}`, serde.ErrCorrupt},
		{`nonsense`, serde.ErrCorrupt},
	}
	for _, c := range cases {
		_, err := s.Deserialize("t", []byte(c.in))
		if !errors.Is(err, c.kind) {
			t.Errorf("%q: got %v, want %v", c.in, err, c.kind)
		}
	}
	if v, err := s.Deserialize("t", []byte(" {\"id\":\"x\"}\n")); err != nil || v.ID != "x" {
		t.Fatalf("whitespace around value: %+v, %v", v, err)
	}
	_, err := serde.JSON[func()]().Serialize("t", func() {})
	var ee *serde.EncodeError
	if !errors.As(err, &ee) || ee.Format != "json" {
		t.Fatalf("unsupported type: got %v", err)
	}
}
