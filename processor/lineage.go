package processor

import (
	"strconv"
	"strings"
)

// Lineage headers: where an output record comes from. With
// topology.Config.LineageHeaders (testutil.WithLineageHeaders in the
// TestDriver) every record a sink writes carries them, naming the input
// record whose processing produced it; every dead-letter record carries
// them always, naming the record that failed (DeadLetterRecord). Values
// are UTF-8 text, numbers in decimal.
//
// The headers name the immediate cause only: a record read from a
// repartition topic (or from another brook application's output) has
// lineage headers of its own, and an output replaces them with its own
// (a record never carries two sets), so an audit follows the chain one
// hop at a time: output → the input record the headers name → that
// record's own headers → … back to the first topic.
const (
	// HeaderLineageTopic, HeaderLineagePartition and HeaderLineageOffset
	// locate the input record being processed when the output was
	// produced. They are absent when the output was produced by a
	// punctuator (no input record is being processed then).
	HeaderLineageTopic     = "brook.lineage.topic"
	HeaderLineagePartition = "brook.lineage.partition"
	HeaderLineageOffset    = "brook.lineage.offset"
	// HeaderLineageApplicationID is the application id of the application
	// that wrote the record.
	HeaderLineageApplicationID = "brook.lineage.application-id"
	// HeaderLineageNode is the topology node that wrote the record: the
	// sink, or for a dead-letter record the node where processing failed.
	HeaderLineageNode = "brook.lineage.node"
)

// lineagePrefix starts every lineage header's key.
const lineagePrefix = "brook.lineage."

// Lineage is what the lineage headers say about a record.
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

// AppendTo returns h followed by l's lineage headers, without any lineage
// headers h already had (a record read from another brook output carries
// that output's lineage, which l replaces). h itself is never modified:
// the result is a new slice whenever something is removed or added.
func (l Lineage) AppendTo(h Headers) Headers {
	out := make(Headers, 0, len(h)+5)
	for _, hd := range h {
		if !strings.HasPrefix(hd.Key, lineagePrefix) {
			out = append(out, hd)
		}
	}
	if l.Offset >= 0 {
		out = append(out,
			Header{Key: HeaderLineageTopic, Value: []byte(l.Topic)},
			Header{Key: HeaderLineagePartition, Value: strconv.AppendInt(nil, int64(l.Partition), 10)},
			Header{Key: HeaderLineageOffset, Value: strconv.AppendInt(nil, l.Offset, 10)},
		)
	}
	return append(out,
		Header{Key: HeaderLineageApplicationID, Value: []byte(l.ApplicationID)},
		Header{Key: HeaderLineageNode, Value: []byte(l.Node)},
	)
}

// LineageOf reads the lineage headers of a record (the last value of each
// key wins, as for Headers.Get). ok is false when h has no application-id
// lineage header, i.e. the record was not written with lineage headers.
// A partition or offset that is not a decimal number makes ok false too.
func LineageOf(h Headers) (l Lineage, ok bool) {
	app, ok := h.Get(HeaderLineageApplicationID)
	if !ok {
		return Lineage{}, false
	}
	l.ApplicationID = string(app)
	if v, ok := h.Get(HeaderLineageNode); ok {
		l.Node = string(v)
	}
	l.Offset = -1
	off, hasOff := h.Get(HeaderLineageOffset)
	if !hasOff {
		return l, true
	}
	o, err := strconv.ParseInt(string(off), 10, 64)
	if err != nil {
		return Lineage{}, false
	}
	p, _ := h.Get(HeaderLineagePartition)
	pn, err := strconv.ParseInt(string(p), 10, 32)
	if err != nil {
		return Lineage{}, false
	}
	t, _ := h.Get(HeaderLineageTopic)
	l.Topic, l.Partition, l.Offset = string(t), int32(pn), o
	return l, true
}
