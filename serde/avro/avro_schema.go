package avro

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// avroKind is the Avro type of a schema node.
type avroKind uint8

const (
	kNull avroKind = iota
	kBoolean
	kInt
	kLong
	kFloat
	kDouble
	kBytes
	kString
	kRecord
	kEnum
	kArray
	kMap
	kUnion
	kFixed
)

var kindNames = [...]string{"null", "boolean", "int", "long", "float", "double", "bytes", "string", "record", "enum", "array", "map", "union", "fixed"}

func (k avroKind) String() string { return kindNames[k] }

var primitiveKinds = map[string]avroKind{
	"null": kNull, "boolean": kBoolean, "int": kInt, "long": kLong, "float": kFloat,
	"double": kDouble, "bytes": kBytes, "string": kString,
}

// avroSchema is a parsed Avro schema. Named types are shared nodes, so a
// recursive schema is a cyclic graph.
type avroSchema struct {
	kind    avroKind
	logical string       // logical type name, "" for none
	lt      *logicalType // its definition, nil for none
	// decimal
	precision, scale int
	// named types (record, enum, fixed)
	name    string // full name
	aliases []string
	// record
	fields     []*avroField
	fieldIndex map[string]int
	// enum
	symbols     []string
	symbolIndex map[string]int
	enumDefault string
	hasEnumDef  bool
	// array items, map values
	items *avroSchema
	// union
	branches []*avroSchema
	// fixed
	size int
	// unionName is the branch name goavro uses for this type inside a union.
	unionName string
	// minBytes is the smallest encoding of a value (see computeMinSizes).
	minBytes int
	minDone  bool
	// hasCheck: a value of a logical type with a check (a decimal) is
	// reachable from this node.
	hasCheck bool
}

type avroField struct {
	name       string
	aliases    []string
	schema     *avroSchema
	hasDefault bool
	def        any // JSON-decoded default (numbers as json.Number)
}

// parseAvroSchema parses and validates an Avro schema in its JSON form.
func parseAvroSchema(text string) (*avroSchema, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("avro schema is not valid JSON: %w", err)
	}
	p := &schemaParser{named: map[string]*avroSchema{}}
	s, err := p.parse(raw, "")
	if err != nil {
		return nil, err
	}
	if err := p.checkDefaults(s, map[*avroSchema]bool{}); err != nil {
		return nil, err
	}
	computeMinSizes(s, map[*avroSchema]bool{})
	markChecks(s, map[*avroSchema]bool{})
	return s, nil
}

type schemaParser struct {
	named map[string]*avroSchema
}

func fullName(name, namespace, enclosing string) string {
	if strings.Contains(name, ".") {
		return name
	}
	if namespace == "" {
		namespace = enclosing
	}
	if namespace == "" {
		return name
	}
	return namespace + "." + name
}

func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

func validName(n string) bool {
	for _, part := range strings.Split(n, ".") {
		if part == "" {
			return false
		}
		for i, r := range part {
			ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (i > 0 && r >= '0' && r <= '9')
			if !ok {
				return false
			}
		}
	}
	return true
}

func (p *schemaParser) lookup(name, enclosing string) *avroSchema {
	if !strings.Contains(name, ".") && enclosing != "" {
		if s, ok := p.named[enclosing+"."+name]; ok {
			return s
		}
	}
	return p.named[name]
}

func (p *schemaParser) parse(raw any, ns string) (*avroSchema, error) {
	switch v := raw.(type) {
	case string:
		if k, ok := primitiveKinds[v]; ok {
			return &avroSchema{kind: k, unionName: v}, nil
		}
		if s := p.lookup(v, ns); s != nil {
			return s, nil
		}
		return nil, fmt.Errorf("avro schema: unknown type %q", v)
	case []any:
		u := &avroSchema{kind: kUnion, unionName: "union"}
		seen := map[string]bool{}
		for i, b := range v {
			bs, err := p.parse(b, ns)
			if err != nil {
				return nil, err
			}
			if bs.kind == kUnion {
				return nil, fmt.Errorf("avro schema: union branch %d is itself a union", i)
			}
			if seen[bs.unionName] {
				return nil, fmt.Errorf("avro schema: union has two branches of type %q", bs.unionName)
			}
			seen[bs.unionName] = true
			u.branches = append(u.branches, bs)
		}
		if len(u.branches) == 0 {
			return nil, fmt.Errorf("avro schema: empty union")
		}
		return u, nil
	case map[string]any:
		return p.parseObject(v, ns)
	default:
		return nil, fmt.Errorf("avro schema: unexpected JSON %T where a type was expected", raw)
	}
}

func strAttr(m map[string]any, key string) (string, error) {
	v, ok := m[key]
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("avro schema: attribute %q must be a string, got %T", key, v)
	}
	return s, nil
}

func intAttr(m map[string]any, key string) (int, bool, error) {
	v, ok := m[key]
	if !ok {
		return 0, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return 0, false, fmt.Errorf("avro schema: attribute %q must be a number, got %T", key, v)
	}
	i, err := n.Int64()
	if err != nil || i < 0 || i > 1<<30 {
		return 0, false, fmt.Errorf("avro schema: attribute %q must be a small non-negative integer, got %s", key, n)
	}
	return int(i), true, nil
}

func stringList(m map[string]any, key string) ([]string, error) {
	v, ok := m[key]
	if !ok {
		return nil, nil
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("avro schema: attribute %q must be an array", key)
	}
	out := make([]string, len(arr))
	for i, a := range arr {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("avro schema: attribute %q must hold strings", key)
		}
		out[i] = s
	}
	return out, nil
}

func (p *schemaParser) define(m map[string]any, ns string, s *avroSchema) (string, error) {
	name, err := strAttr(m, "name")
	if err != nil {
		return "", err
	}
	space, err := strAttr(m, "namespace")
	if err != nil {
		return "", err
	}
	if name == "" || !validName(name) {
		return "", fmt.Errorf("avro schema: invalid or missing name %q", name)
	}
	full := fullName(name, space, ns)
	if _, ok := primitiveKinds[full]; ok {
		return "", fmt.Errorf("avro schema: named type may not be called %q", full)
	}
	if _, dup := p.named[full]; dup {
		return "", fmt.Errorf("avro schema: type %q defined twice", full)
	}
	aliases, err := stringList(m, "aliases")
	if err != nil {
		return "", err
	}
	for _, a := range aliases {
		s.aliases = append(s.aliases, fullName(a, "", namespaceOf(full)))
	}
	s.name, s.unionName = full, full
	p.named[full] = s
	return namespaceOf(full), nil
}

func (p *schemaParser) parseObject(m map[string]any, ns string) (*avroSchema, error) {
	t, ok := m["type"]
	if !ok {
		return nil, fmt.Errorf("avro schema: object without \"type\"")
	}
	typeName, isString := t.(string)
	if !isString {
		// {"type": {...}} or {"type": [...]}: the attributes wrap another type.
		return p.parse(t, ns)
	}
	logical, err := strAttr(m, "logicalType")
	if err != nil {
		return nil, err
	}
	if k, ok := primitiveKinds[typeName]; ok {
		s := &avroSchema{kind: k, unionName: typeName}
		applyLogical(s, logical, m)
		return s, nil
	}
	switch typeName {
	case "record", "error":
		s := &avroSchema{kind: kRecord, fieldIndex: map[string]int{}}
		inner, err := p.define(m, ns, s)
		if err != nil {
			return nil, err
		}
		rawFields, ok := m["fields"].([]any)
		if !ok {
			return nil, fmt.Errorf("avro schema: record %q needs a \"fields\" array", s.name)
		}
		for i, rf := range rawFields {
			fm, ok := rf.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("avro schema: record %q field %d is not an object", s.name, i)
			}
			fname, err := strAttr(fm, "name")
			if err != nil {
				return nil, err
			}
			if fname == "" || !validName(fname) || strings.Contains(fname, ".") {
				return nil, fmt.Errorf("avro schema: record %q field %d has invalid name %q", s.name, i, fname)
			}
			if _, dup := s.fieldIndex[fname]; dup {
				return nil, fmt.Errorf("avro schema: record %q has two fields named %q", s.name, fname)
			}
			ft, ok := fm["type"]
			if !ok {
				return nil, fmt.Errorf("avro schema: record %q field %q has no type", s.name, fname)
			}
			fs, err := p.parse(ft, inner)
			if err != nil {
				return nil, fmt.Errorf("record %q field %q: %w", s.name, fname, err)
			}
			f := &avroField{name: fname, schema: fs}
			f.def, f.hasDefault = fm["default"]
			if f.aliases, err = stringList(fm, "aliases"); err != nil {
				return nil, err
			}
			s.fieldIndex[fname] = len(s.fields)
			s.fields = append(s.fields, f)
		}
		return s, nil
	case "enum":
		s := &avroSchema{kind: kEnum, symbolIndex: map[string]int{}}
		if _, err := p.define(m, ns, s); err != nil {
			return nil, err
		}
		syms, err := stringList(m, "symbols")
		if err != nil {
			return nil, err
		}
		if len(syms) == 0 {
			return nil, fmt.Errorf("avro schema: enum %q needs symbols", s.name)
		}
		for i, sym := range syms {
			if !validName(sym) || strings.Contains(sym, ".") {
				return nil, fmt.Errorf("avro schema: enum %q has invalid symbol %q", s.name, sym)
			}
			if _, dup := s.symbolIndex[sym]; dup {
				return nil, fmt.Errorf("avro schema: enum %q repeats symbol %q", s.name, sym)
			}
			s.symbolIndex[sym] = i
		}
		s.symbols = syms
		if d, ok := m["default"]; ok {
			ds, isStr := d.(string)
			if _, known := s.symbolIndex[ds]; !isStr || !known {
				return nil, fmt.Errorf("avro schema: enum %q default %v is not one of its symbols", s.name, d)
			}
			s.enumDefault, s.hasEnumDef = ds, true
		}
		return s, nil
	case "fixed":
		s := &avroSchema{kind: kFixed}
		if _, err := p.define(m, ns, s); err != nil {
			return nil, err
		}
		size, ok, err := intAttr(m, "size")
		if err != nil || !ok {
			return nil, fmt.Errorf("avro schema: fixed %q needs a size", s.name)
		}
		s.size = size
		applyLogical(s, logical, m)
		return s, nil
	case "array", "map":
		key := "items"
		s := &avroSchema{kind: kArray, unionName: "array"}
		if typeName == "map" {
			key, s.kind, s.unionName = "values", kMap, "map"
		}
		it, ok := m[key]
		if !ok {
			return nil, fmt.Errorf("avro schema: %s needs %q", typeName, key)
		}
		items, err := p.parse(it, ns)
		if err != nil {
			return nil, err
		}
		s.items = items
		return s, nil
	default:
		if s := p.lookup(typeName, ns); s != nil {
			return s, nil
		}
		return nil, fmt.Errorf("avro schema: unknown type %q", typeName)
	}
}

// checkDefaults validates every field default against its field's schema.
func (p *schemaParser) checkDefaults(s *avroSchema, seen map[*avroSchema]bool) error {
	if seen[s] {
		return nil
	}
	seen[s] = true
	switch s.kind {
	case kRecord:
		for _, f := range s.fields {
			if f.hasDefault {
				if _, err := defaultToNative(f.schema, f.def); err != nil {
					return fmt.Errorf("avro schema: record %q field %q: invalid default: %w", s.name, f.name, err)
				}
			}
			if err := p.checkDefaults(f.schema, seen); err != nil {
				return err
			}
		}
	case kArray, kMap:
		return p.checkDefaults(s.items, seen)
	case kUnion:
		for _, b := range s.branches {
			if err := p.checkDefaults(b, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// goavroSchemaText returns the schema text to hand to goavro. It is the
// user's text, except that decimals without an explicit scale get
// "scale": 0, which goavro needs to build more than one decimal codec.
func goavroSchemaText(text string) (string, error) {
	if !strings.Contains(text, "decimal") {
		return text, nil
	}
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		return "", err
	}
	changed := addDecimalScale(raw)
	if !changed {
		return text, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(raw); err != nil {
		return "", err
	}
	return strings.TrimSpace(buf.String()), nil
}

func addDecimalScale(raw any) bool {
	changed := false
	switch v := raw.(type) {
	case map[string]any:
		if v["logicalType"] == ltDecimal {
			if _, ok := v["scale"]; !ok {
				v["scale"] = json.Number("0")
				changed = true
			}
		}
		for _, c := range v {
			changed = addDecimalScale(c) || changed
		}
	case []any:
		for _, c := range v {
			changed = addDecimalScale(c) || changed
		}
	}
	return changed
}
