package integration_test

import (
	"context"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"math/big"
	"testing"

	"github.com/brookstream/brook/testutil"
)

const (
	amountV1 = `{"type":"record","name":"Txn","namespace":"brook.it","fields":[
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":12,"scale":2}}]}`
	// v2 widens the decimal; the registry calls it compatible (it ignores
	// logical types), so old data must read with its value kept.
	amountV2 = `{"type":"record","name":"Txn","namespace":"brook.it","fields":[
  {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":14,"scale":4}}]}`
)

type Amount struct {
	Amount *big.Rat `avro:"amount"`
}

func TestRegistryDecimalScaleChange(t *testing.T) {
	base := testutil.RegistryURL(t)
	reg := newTestRegistry(t, base)
	topic := testutil.TopicName(t, "decimal")
	v1, _ := avro.NewAvro[Amount](reg, amountV1)
	old, err := v1.Serialize(topic, Amount{Amount: big.NewRat(1234, 100)})
	if err != nil {
		t.Fatal(err)
	}
	// Never rounded: 12.345 at scale 2 is an error naming the field.
	_, err = v1.Serialize(topic, Amount{Amount: big.NewRat(12345, 1000)})
	var de *avro.DecimalError
	if !errors.As(err, &de) || de.Path != "Txn.amount" || de.Value != "12.345" || de.Scale != 2 {
		t.Fatalf("12.345 at scale 2: %v", err)
	}
	v2s, _ := avro.NewAvro[Amount](reg, amountV2)
	if err := v2s.Preflight(context.Background(), topic); err != nil {
		t.Fatalf("the registry refuses the wider decimal: %v", err)
	}
	if _, err := v2s.Serialize(topic, Amount{Amount: big.NewRat(1, 1)}); err != nil {
		t.Fatal(err)
	}
	v2g, _ := avro.NewAvro[map[string]any](reg, amountV2)
	want := big.NewRat(1234, 100)
	if got, err := v2s.Deserialize(topic, old); err != nil || got.Amount.Cmp(want) != 0 {
		t.Fatalf("12.34 written at scale 2, read at scale 4 (struct): %v, %v", got.Amount, err)
	}
	if got, err := v2g.Deserialize(topic, old); err != nil || got["amount"].(*big.Rat).Cmp(want) != 0 {
		t.Fatalf("12.34 written at scale 2, read at scale 4 (generic): %v, %v", got, err)
	}
	// A v1 app writing with the latest schema (v2) converts the value.
	latest, _ := avro.NewAvro[Amount](newTestRegistry(t, base), amountV1, avro.UseLatest())
	b, err := latest.Serialize(topic, Amount{Amount: big.NewRat(-1, 100)})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v2s.Deserialize(topic, b); err != nil || got.Amount.Cmp(big.NewRat(-1, 100)) != 0 {
		t.Fatalf("-0.01 written by a use-latest v1 app: %v, %v", got.Amount, err)
	}
	// v2 data that does not fit v1 fails for that record, naming the field.
	wide, err := v2s.Serialize(topic, Amount{Amount: big.NewRat(10001, 10000)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v1.Deserialize(topic, wide)
	if !errors.Is(err, avro.ErrSchemaMismatch) || !errors.As(err, &de) || de.Path != "Txn.amount" || de.Value != "1.0001" {
		t.Fatalf("1.0001 read at scale 2: %v", err)
	}
}
