package serde

import "fmt"

// DecimalError says an Avro decimal value does not fit its schema: it has
// more digits after the decimal point than the scale, more digits in all
// than the precision, more bytes than a fixed holds, or is a nil *big.Rat.
// brook never rounds a decimal; it reports this error instead, the same on
// the struct and generic paths, when encoding and when decoding.
type DecimalError struct {
	// Path locates the value in the schema ("Txn.amount", "Txn.legs[]",
	// "Txn.fees{}").
	Path string
	// Value is the value exactly, in the fewest digits ("12.345",
	// "-0.005"), or as a fraction when it has no finite decimal expansion
	// ("1/3"); very long values are shortened in the middle. It is ""
	// for a nil *big.Rat.
	Value string
	// Precision and Scale are the schema's.
	Precision, Scale int
	// Reason says what does not fit.
	Reason string
}

// Error implements error.
func (e *DecimalError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("serde: avro: %s: nil *big.Rat for decimal(%d,%d)", e.Path, e.Precision, e.Scale)
	}
	return fmt.Sprintf("serde: avro: %s: decimal %s does not fit decimal(%d,%d): %s", e.Path, e.Value, e.Precision, e.Scale, e.Reason)
}
