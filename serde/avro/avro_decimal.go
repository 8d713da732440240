package avro

import (
	"fmt"
	"math/big"
)

// Avro decimals are never rounded. Every path that writes a decimal (the
// compiled struct encoder, brook's native writer for generic values,
// schema resolution, defaults, JSON rendering) checks the value
// with decimalBytes or checkLogical first, and every path that reads one
// checks the precision, so the struct and generic paths accept the same
// values, write the same bytes and report the same *DecimalError.

// DecimalError says an Avro decimal value does not fit its schema: it has
// more digits after the decimal point than the scale, more digits in all
// than the precision, more bytes than a fixed holds, or is a nil *big.Rat.
// brook never rounds a decimal; it reports this error instead, the same on
// the struct and generic paths, when encoding and when decoding.
type DecimalError struct {
	// Path locates the value in the schema ("Txn.amount", "Txn.legs[]",
	// "Txn.fees{}"); "" for a schema default, whose error names the field.
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
	at := ""
	if e.Path != "" {
		at = e.Path + ": "
	}
	if e.Value == "" {
		return fmt.Sprintf("serde: avro: %snil *big.Rat for decimal(%d,%d)", at, e.Precision, e.Scale)
	}
	return fmt.Sprintf("serde: avro: %sdecimal %s does not fit decimal(%d,%d): %s", at, e.Value, e.Precision, e.Scale, e.Reason)
}

func decimalErr(s *avroSchema, path string, r *big.Rat, reason string) *DecimalError {
	e := &DecimalError{Path: path, Precision: s.precision, Scale: s.scale, Reason: reason}
	if r != nil {
		e.Value = decimalText(r)
	}
	return e
}

var (
	bigOne = big.NewInt(1)
	// pow10s holds 10^0 .. 10^76, enough for every usual precision.
	pow10s = func() []*big.Int {
		p := make([]*big.Int, 77)
		p[0] = big.NewInt(1)
		for i := 1; i < len(p); i++ {
			p[i] = new(big.Int).Mul(p[i-1], big.NewInt(10))
		}
		return p
	}()
)

// pow10 returns 10^n (n >= 0). The result must not be modified.
func pow10(n int) *big.Int {
	if n < len(pow10s) {
		return pow10s[n]
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// moreDigits reports whether |u| has more than p decimal digits.
func moreDigits(u *big.Int, p int) bool {
	if (u.BitLen()+2)/3 <= p { // |u| < 2^(3p) = 8^p < 10^p
		return false
	}
	return u.CmpAbs(pow10(p)) >= 0
}

// decimalUnscaled returns r·10^scale when that is an integer of at most
// precision digits, and otherwise a *DecimalError saying why.
func decimalUnscaled(s *avroSchema, r *big.Rat, path string) (*big.Int, error) {
	u := new(big.Int).Mul(r.Num(), pow10(s.scale))
	if !r.IsInt() {
		var rem big.Int
		if u.QuoRem(u, r.Denom(), &rem); rem.Sign() != 0 {
			reason := fmt.Sprintf("more than %d digits after the decimal point; brook never rounds", s.scale)
			if s.scale == 0 {
				reason = "not a whole number; brook never rounds"
			}
			return nil, decimalErr(s, path, r, reason)
		}
	}
	if moreDigits(u, s.precision) {
		return nil, decimalErr(s, path, r, fmt.Sprintf("more than %d digits in all", s.precision))
	}
	return u, nil
}

// twosComplement returns the shortest big-endian two's complement of u.
func twosComplement(u *big.Int) []byte {
	switch u.Sign() {
	case 0:
		return []byte{0}
	case 1:
		b := u.Bytes()
		if b[0]&0x80 != 0 {
			b = append([]byte{0}, b...)
		}
		return b
	}
	// -u-1 >= 0 fits n bytes with a clear top bit; its complement is u.
	m := new(big.Int).Neg(u)
	m.Sub(m, bigOne)
	b := m.FillBytes(make([]byte, m.BitLen()/8+1))
	for i := range b {
		b[i] ^= 0xff
	}
	return b
}

// decimalBytes returns the unscaled value of r as Avro stores it for s:
// the shortest two's complement for bytes, sign-extended to the size for
// fixed. A value that does not fit is a *DecimalError; nothing is rounded.
func decimalBytes(s *avroSchema, r *big.Rat, path string) ([]byte, error) {
	if r == nil {
		return nil, decimalErr(s, path, nil, "")
	}
	u, err := decimalUnscaled(s, r, path)
	if err != nil {
		return nil, err
	}
	b := twosComplement(u)
	if s.kind != kFixed {
		return b, nil
	}
	if len(b) > s.size {
		return nil, decimalErr(s, path, r, fmt.Sprintf("its unscaled value needs %d bytes, fixed %s has %d", len(b), s.name, s.size))
	}
	if len(b) == s.size {
		return b, nil
	}
	out := make([]byte, s.size)
	if u.Sign() < 0 {
		for i := range out {
			out[i] = 0xff
		}
	}
	copy(out[s.size-len(b):], b)
	return out, nil
}

// unscaledFromBytes reads a big-endian two's-complement integer.
func unscaledFromBytes(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(bigOne, uint(len(b))*8))
	}
	return n
}

// decimalFromBytes decodes a two's-complement unscaled value without
// checking it; checkLogical does that.
func decimalFromBytes(b []byte, scale int) *big.Rat {
	return new(big.Rat).SetFrac(unscaledFromBytes(b), pow10(scale))
}

// Longest rendering of a value in a DecimalError, and the largest
// numerator or denominator rendered digit by digit.
const (
	maxDecimalText = 100
	maxDecimalBits = 1 << 12
)

// decimalText renders r exactly: in the fewest decimal digits when it has
// a finite decimal expansion, else as a fraction; shortened in the middle
// when long.
func decimalText(r *big.Rat) string {
	if r.Num().BitLen() > maxDecimalBits || r.Denom().BitLen() > maxDecimalBits {
		return fmt.Sprintf("(a %d-bit numerator over a %d-bit denominator)", r.Num().BitLen(), r.Denom().BitLen())
	}
	var s string
	if r.IsInt() {
		s = r.Num().String()
	} else if d, ok := fractionDigits(r.Denom()); ok {
		s = r.FloatString(d)
	} else {
		s = r.RatString()
	}
	if len(s) > maxDecimalText {
		s = fmt.Sprintf("%s…(%d characters)…%s", s[:40], len(s), s[len(s)-40:])
	}
	return s
}

// fractionDigits returns the number of digits after the point of a
// fraction in lowest terms with denominator d, if that is finite (d is a
// product of 2s and 5s).
func fractionDigits(d *big.Int) (int, bool) {
	twos := int(d.TrailingZeroBits())
	rest := new(big.Int).Rsh(d, uint(twos))
	five := big.NewInt(5)
	fives := 0
	var q, m big.Int
	for rest.Cmp(bigOne) > 0 {
		if q.QuoRem(rest, five, &m); m.Sign() != 0 {
			return 0, false
		}
		rest.Set(&q)
		fives++
	}
	return max(twos, fives), true
}
