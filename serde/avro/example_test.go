package avro_test

import (
	"errors"
	"fmt"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/serde/avro"
)

func ExampleAvroCodec() {
	type Payment struct {
		ID     string  `avro:"id"`
		Cents  int64   `avro:"cents"`
		Memo   *string `avro:"memo"`
		Status string  `avro:"status"`
	}
	codec, err := avro.NewAvroCodec[Payment](`{"type":"record","name":"Payment","fields":[
	  {"name":"id","type":"string"},
	  {"name":"cents","type":"long"},
	  {"name":"memo","type":["null","string"],"default":null},
	  {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}}]}`)
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := codec.Marshal(nil, Payment{ID: "p-1", Cents: 1999, Status: "PAID"})
	fmt.Printf("% x\n", b)
	p, _ := codec.Unmarshal(b)
	fmt.Printf("%s %d %v %s\n", p.ID, p.Cents, p.Memo, p.Status)
	_, err = codec.Unmarshal(b[:3])
	fmt.Println(errors.Is(err, serde.ErrTruncated))
	// Output:
	// 06 70 2d 31 9e 1f 00 02
	// p-1 1999 <nil> PAID
	// true
}
