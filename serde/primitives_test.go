package serde_test

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/brookstream/brook/serde"
)

func TestInt32MatchesJavaIntegerSerializer(t *testing.T) {
	cases := []struct {
		v    int32
		want []byte
	}{
		{0, []byte{0, 0, 0, 0}},
		{1, []byte{0, 0, 0, 1}},
		{-1, []byte{0xff, 0xff, 0xff, 0xff}},
		{256, []byte{0, 0, 1, 0}},
		{math.MaxInt32, []byte{0x7f, 0xff, 0xff, 0xff}},
		{math.MinInt32, []byte{0x80, 0, 0, 0}},
	}
	s := serde.Int32()
	for _, c := range cases {
		got, err := s.Serialize("t", c.v)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("Serialize(%d) = %x, %v; want %x", c.v, got, err, c.want)
		}
		back, err := s.Deserialize("t", got)
		if err != nil || back != c.v {
			t.Fatalf("Deserialize(%x) = %d, %v; want %d", got, back, err, c.v)
		}
	}
}

func TestInt64MatchesJavaLongSerializer(t *testing.T) {
	cases := []struct {
		v    int64
		want []byte
	}{
		{0, []byte{0, 0, 0, 0, 0, 0, 0, 0}},
		{-2, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}},
		{0x0102030405060708, []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		{math.MinInt64, []byte{0x80, 0, 0, 0, 0, 0, 0, 0}},
	}
	s := serde.Int64()
	for _, c := range cases {
		got, err := s.Serialize("t", c.v)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("Serialize(%d) = %x, %v; want %x", c.v, got, err, c.want)
		}
		back, err := s.Deserialize("t", got)
		if err != nil || back != c.v {
			t.Fatalf("Deserialize(%x) = %d, %v; want %d", got, back, err, c.v)
		}
	}
}

func TestFloat64MatchesJavaDoubleSerializer(t *testing.T) {
	cases := []struct {
		v    float64
		want []byte
	}{
		{1.0, []byte{0x3f, 0xf0, 0, 0, 0, 0, 0, 0}},
		{-2.5, []byte{0xc0, 0x04, 0, 0, 0, 0, 0, 0}},
		{math.Inf(1), []byte{0x7f, 0xf0, 0, 0, 0, 0, 0, 0}},
		// Java's doubleToLongBits collapses every NaN to the canonical one.
		{math.Float64frombits(0x7ff0000000000123), []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 0}},
	}
	s := serde.Float64()
	for _, c := range cases {
		got, err := s.Serialize("t", c.v)
		if err != nil || !bytes.Equal(got, c.want) {
			t.Fatalf("Serialize(%v) = %x, %v; want %x", c.v, got, err, c.want)
		}
	}
	back, err := s.Deserialize("t", []byte{0x40, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18})
	if err != nil || back != math.Pi {
		t.Fatalf("Deserialize(pi) = %v, %v", back, err)
	}
}

func TestFixedWidthLengthErrors(t *testing.T) {
	i32 := serde.Int32()
	if v, err := i32.Deserialize("t", nil); err != nil || v != 0 {
		t.Fatalf("nil payload: got %d, %v; want 0, nil", v, err)
	}
	_, err := i32.Deserialize("t", []byte{1, 2, 3})
	if !errors.Is(err, serde.ErrTruncated) {
		t.Fatalf("3 bytes: got %v, want ErrTruncated", err)
	}
	_, err = i32.Deserialize("t", []byte{})
	if !errors.Is(err, serde.ErrTruncated) {
		t.Fatalf("empty non-nil: got %v, want ErrTruncated", err)
	}
	_, err = serde.Int64().Deserialize("orders", []byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	var de *serde.DecodeError
	if !errors.As(err, &de) || !errors.Is(err, serde.ErrCorrupt) || de.Topic != "orders" || de.Format != "int64" {
		t.Fatalf("9 bytes: got %#v", err)
	}
	if _, err := serde.Float64().Deserialize("t", []byte{1}); !errors.Is(err, serde.ErrTruncated) {
		t.Fatalf("float64 1 byte: got %v", err)
	}
}

func TestStringAndBytes(t *testing.T) {
	s := serde.String()
	b, err := s.Serialize("t", "")
	if err != nil || b == nil || len(b) != 0 {
		t.Fatalf("empty string must encode to empty non-nil bytes, got %#v, %v", b, err)
	}
	b, _ = s.Serialize("t", "héllo")
	if !bytes.Equal(b, []byte("héllo")) {
		t.Fatalf("got %x", b)
	}
	if v, err := s.Deserialize("t", []byte{0xff, 'a'}); err != nil || v != "\xffa" {
		t.Fatalf("invalid UTF-8 must round-trip as is, got %q, %v", v, err)
	}
	bs := serde.Bytes()
	if out, _ := bs.Serialize("t", nil); out != nil {
		t.Fatalf("nil bytes must stay nil (tombstone), got %#v", out)
	}
	if out, _ := bs.Deserialize("t", []byte{1, 2}); !bytes.Equal(out, []byte{1, 2}) {
		t.Fatalf("got %x", out)
	}
}
