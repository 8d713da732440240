package processor

import (
	"bytes"
	"strconv"
	"strings"
)

// HeaderLineage is the lineage header: where an output record comes from.
// With topology.Config.LineageHeaders (testutil.WithLineageHeaders in the
// TestDriver) every record a sink writes carries it, naming the input
// record whose processing produced it; every dead-letter record carries it
// always, naming the record that failed (DeadLetterRecord).
//
// Its value is one line of UTF-8 text with three fields separated by '|':
//
//	<topic>/<partition>/<offset>|<node>|<application-id>
//
// for example "payments/3/1234567|enriched-sink|payments-enricher". The
// first field locates the input record being processed when the output
// was produced (partition and offset in decimal); it is empty when a
// punctuator produced the record, as no input record is being processed
// then. The node is the sink that wrote the record, or for a dead-letter
// record the node where processing failed. In the node and the
// application id, '%' and '|' are written as "%25" and "%7C" (topic names
// cannot hold either). Readers must ignore fields after the third: later
// versions may append some. Lineage and LineageOf write and read it.
//
// One header rather than one per field: on small records the header bytes
// dominate what the producer encodes and the broker writes (five headers
// with descriptive keys were about 175 bytes per record), see
// docs/BENCHMARKS.md "Metrics and lineage headers (#17)".
//
// The header names the immediate cause only: a record read from a
// repartition topic (or from another brook application's output) has a
// lineage header of its own, and an output replaces it with its own (a
// record never carries two), so an audit follows the chain one hop at a
// time: output → the input record the header names → that record's own
// header → … back to the first topic.
const HeaderLineage = "brook.lineage"

// Lineage is what the lineage header says about a record.
type Lineage struct {
	// ApplicationID is the application that wrote the record.
	ApplicationID string
	// Node is the topology node that wrote it.
	Node string
	// Topic, Partition and Offset locate the input record whose
	// processing produced it. Offset is -1 (and Topic "") when a
	// punctuator produced it.
	Topic     string
	Partition int32
	Offset    int64
}

// AppendTo returns h followed by l's lineage header, without any lineage
// header h already had (a record read from another brook output carries
// that output's lineage, which l replaces). h itself is never modified:
// the result is a new slice.
func (l Lineage) AppendTo(h Headers) Headers {
	out := make(Headers, 0, len(h)+1)
	for _, hd := range h {
		if hd.Key != HeaderLineage {
			out = append(out, hd)
		}
	}
	return append(out, Header{Key: HeaderLineage, Value: l.Value()})
}

// Value returns the lineage header's value for l (see HeaderLineage).
func (l Lineage) Value() []byte {
	b := make([]byte, 0, len(l.Topic)+len(l.Node)+len(l.ApplicationID)+32)
	b = l.AppendSource(b)
	b = append(b, '|')
	b = AppendLineageField(b, l.Node)
	b = append(b, '|')
	return AppendLineageField(b, l.ApplicationID)
}

// AppendSource appends the first field of the lineage header's value to
// b: "<topic>/<partition>/<offset>", or nothing when l.Offset < 0.
func (l Lineage) AppendSource(b []byte) []byte {
	if l.Offset < 0 {
		return b
	}
	b = append(b, l.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(l.Partition), 10)
	b = append(b, '/')
	return strconv.AppendInt(b, l.Offset, 10)
}

// AppendLineageField appends s to b as a node or application id field of
// the lineage header's value: '%' and '|' become "%25" and "%7C".
func AppendLineageField(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '%':
			b = append(b, "%25"...)
		case '|':
			b = append(b, "%7C"...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// LineageOf reads the lineage header of a record (the last one wins, as
// for Headers.Get). ok is false when h has no lineage header or its value
// is malformed (fewer than three fields, a source that is not
// topic/partition/offset with decimal numbers, or a bad escape).
func LineageOf(h Headers) (l Lineage, ok bool) {
	v, found := h.Get(HeaderLineage)
	if !found {
		return Lineage{}, false
	}
	return ParseLineage(v)
}

// ParseLineage reads a lineage header's value (see HeaderLineage).
func ParseLineage(v []byte) (l Lineage, ok bool) {
	src, rest, ok1 := bytes.Cut(v, []byte{'|'})
	node, rest, ok2 := bytes.Cut(rest, []byte{'|'})
	if !ok1 || !ok2 {
		return Lineage{}, false
	}
	app, _, _ := bytes.Cut(rest, []byte{'|'}) // later fields are ignored
	var okN, okA bool
	if l.Node, okN = unescapeLineage(node); !okN {
		return Lineage{}, false
	}
	if l.ApplicationID, okA = unescapeLineage(app); !okA {
		return Lineage{}, false
	}
	l.Offset = -1
	if len(src) == 0 {
		return l, true
	}
	i := bytes.LastIndexByte(src, '/')
	if i < 0 {
		return Lineage{}, false
	}
	off, err := strconv.ParseInt(string(src[i+1:]), 10, 64)
	if err != nil || off < 0 {
		return Lineage{}, false
	}
	j := bytes.LastIndexByte(src[:i], '/')
	if j <= 0 {
		return Lineage{}, false
	}
	p, err := strconv.ParseInt(string(src[j+1:i]), 10, 32)
	if err != nil || p < 0 {
		return Lineage{}, false
	}
	l.Topic, l.Partition, l.Offset = string(src[:j]), int32(p), off
	return l, true
}

func unescapeLineage(b []byte) (string, bool) {
	if bytes.IndexByte(b, '%') < 0 {
		return string(b), true
	}
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		if b[i] != '%' {
			sb.WriteByte(b[i])
			continue
		}
		switch {
		case i+2 < len(b) && b[i+1] == '2' && b[i+2] == '5':
			sb.WriteByte('%')
		case i+2 < len(b) && b[i+1] == '7' && (b[i+2] == 'C' || b[i+2] == 'c'):
			sb.WriteByte('|')
		default:
			return "", false
		}
		i += 2
	}
	return sb.String(), true
}
