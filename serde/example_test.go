package serde_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/brookstream/brook/serde"
)

func ExampleInt32() {
	s := serde.Int32()
	b, _ := s.Serialize("counts", 258)
	fmt.Printf("% x\n", b)
	v, _ := s.Deserialize("counts", b)
	fmt.Println(v)
	_, err := s.Deserialize("counts", []byte{1, 2})
	fmt.Println(errors.Is(err, serde.ErrTruncated))
	// Output:
	// 00 00 01 02
	// 258
	// true
}

func ExampleInt64() {
	b, _ := serde.Int64().Serialize("totals", -1)
	fmt.Printf("% x\n", b)
	// Output: ff ff ff ff ff ff ff ff
}

func ExampleFloat64() {
	s := serde.Float64()
	b, _ := s.Serialize("prices", 1.5)
	fmt.Printf("% x\n", b)
	v, _ := s.Deserialize("prices", b)
	fmt.Println(v)
	// Output:
	// 3f f8 00 00 00 00 00 00
	// 1.5
}

func ExampleString() {
	s := serde.String()
	b, _ := s.Serialize("names", "brook")
	v, _ := s.Deserialize("names", b)
	fmt.Printf("%q %q\n", b, v)
	// Output: "brook" "brook"
}

func ExampleBytes() {
	b, _ := serde.Bytes().Serialize("raw", []byte{0xca, 0xfe})
	fmt.Printf("% x\n", b)
	// Output: ca fe
}

func ExampleJSON() {
	type Payment struct {
		ID     string `json:"id"`
		Cents  int64  `json:"cents"`
		Settle bool   `json:"settle,omitempty"`
	}
	s := serde.JSON[Payment]()
	b, _ := s.Serialize("payments", Payment{ID: "p-1", Cents: 1999})
	fmt.Println(string(b))
	p, _ := s.Deserialize("payments", []byte(`{"id":"p-2","cents":5}`))
	fmt.Printf("%+v\n", p)
	_, err := s.Deserialize("payments", []byte(`{"id":`))
	fmt.Println(errors.Is(err, serde.ErrTruncated))
	// Output:
	// {"id":"p-1","cents":1999}
	// {ID:p-2 Cents:5 Settle:false}
	// true
}

// The runtime checks every serde that implements Preflighter before it
// joins its consumer group; applications can do the same on their own.
func ExamplePreflighter() {
	check := func(ctx context.Context, s any, topic string) error {
		if p, ok := s.(serde.Preflighter); ok {
			return p.Preflight(ctx, topic)
		}
		return nil // primitives and JSON need no check
	}
	fmt.Println(check(context.Background(), serde.String(), "payments"))
	// Output: <nil>
}
