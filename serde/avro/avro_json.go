package avro

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// ValueJSON implements [serde.JSONValuer]: v as plain JSON shaped by the schema.
// Records become objects with the schema's field names in schema order;
// a union value is rendered as its branch's value (null for null); bytes
// and fixed are base64 strings; decimals are JSON numbers with the
// schema's scale; timestamps and dates are RFC 3339 strings; time-of-day
// values are Go duration strings; NaN and infinities are strings.
func (a *Avro[T]) ValueJSON(v T) ([]byte, error) { return a.codec.ValueJSON(v) }

// ValueJSON renders v as JSON; see [Avro.ValueJSON].
func (c *AvroCodec[T]) ValueJSON(v T) ([]byte, error) {
	n, err := c.native(v)
	if err != nil {
		return nil, fmt.Errorf("serde: avro to JSON: %w", err)
	}
	// Decimals print at the schema's scale, which must hold them exactly.
	if err := checkLogical(c.schema, n, shortName(c.schema), 0); err != nil {
		return nil, fmt.Errorf("serde: avro to JSON: %w", err)
	}
	var b bytes.Buffer
	if err := writeAvroJSON(&b, c.schema, n, 0); err != nil {
		return nil, fmt.Errorf("serde: avro to JSON: %w", err)
	}
	return b.Bytes(), nil
}

func writeAvroJSON(b *bytes.Buffer, s *avroSchema, n any, depth int) error {
	if depth > maxAvroDepth {
		return fmt.Errorf("value nested deeper than %d", maxAvroDepth)
	}
	switch s.kind {
	case kRecord:
		m, ok := n.(map[string]any)
		if !ok {
			return plainJSON(b, n)
		}
		b.WriteByte('{')
		for i, f := range s.fields {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(f.name)
			b.Write(k)
			b.WriteByte(':')
			if err := writeAvroJSON(b, f.schema, m[f.name], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	case kUnion:
		if n == nil {
			b.WriteString("null")
			return nil
		}
		if m, ok := n.(map[string]any); ok && len(m) == 1 {
			for name, v := range m {
				for _, br := range s.branches {
					if br.unionName == name || br.name == name {
						return writeAvroJSON(b, br, v, depth+1)
					}
				}
			}
		}
		return plainJSON(b, n)
	case kArray:
		items, ok := n.([]any)
		if !ok {
			return plainJSON(b, n)
		}
		b.WriteByte('[')
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			if err := writeAvroJSON(b, s.items, it, depth+1); err != nil {
				return err
			}
		}
		b.WriteByte(']')
		return nil
	case kMap:
		m, ok := n.(map[string]any)
		if !ok {
			return plainJSON(b, n)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			kj, _ := json.Marshal(k)
			b.Write(kj)
			b.WriteByte(':')
			if err := writeAvroJSON(b, s.items, m[k], depth+1); err != nil {
				return err
			}
		}
		b.WriteByte('}')
		return nil
	}
	if s.lt != nil && s.lt.json != nil {
		if lit, ok := s.lt.json(s, n); ok {
			b.WriteString(lit)
			return nil
		}
	}
	switch v := n.(type) {
	case float64:
		return writeFloat(b, v, 64)
	case float32:
		return writeFloat(b, float64(v), 32)
	}
	return plainJSON(b, n)
}

func writeFloat(b *bytes.Buffer, f float64, bits int) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return plainJSON(b, strconv.FormatFloat(f, 'g', -1, bits))
	}
	b.WriteString(strconv.FormatFloat(f, 'g', -1, bits))
	return nil
}

func plainJSON(b *bytes.Buffer, v any) error {
	out, err := json.Marshal(v)
	if err != nil {
		return err
	}
	b.Write(out)
	return nil
}

// CheckAvroResolution reports whether data written with the writer schema
// can be read with the reader schema under Avro's resolution rules (the
// rules Deserialize applies): nil if it can, a *ResolutionError saying
// where and why if not, another error for a schema that does not parse.
// A registry's BACKWARD check is CheckAvroResolution(new, old); FORWARD is
// CheckAvroResolution(old, new).
func CheckAvroResolution(reader, writer string) error {
	r, err := parseAvroSchema(reader)
	if err != nil {
		return fmt.Errorf("serde: reader schema: %w", err)
	}
	w, err := parseAvroSchema(writer)
	if err != nil {
		return fmt.Errorf("serde: writer schema: %w", err)
	}
	_, err = buildResolver(w, r)
	return err
}
