package assign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Wire format of the two user-data payloads (see the package doc for where
// each travels).
//
// Both start with a two-byte header: a kind byte ('M' for member data,
// 'A' for an assignment) and a format version (currently 1). After it:
// unsigned counts and string lengths are unsigned varints, signed numbers
// (generation, group, partition, offset) are zig-zag varints
// (encoding/binary's AppendUvarint and AppendVarint), and a string is its
// length followed by its UTF-8 bytes.
//
// Member data, version 1:
//
//	endpoint   string
//	generation varint   generation of the assignment the owned tasks came from, -1 for none
//	owned      count, then per task: group, partition (ascending)
//	restored   count, then per task: group, partition,
//	           count, then per changelog: topic string, offset varint
//
// Assignment, version 1:
//
//	generation varint
//	self       uvarint  1 + index in hosts of the member it was made for, 0 if none
//	groups     count, then per sub-topology: group, partition count (ascending)
//	hosts      count, then per host: member id string, endpoint string,
//	           count, then per task: group, partition (ascending)
//
// Compatibility rule: a later version only appends fields. A decoder that
// meets a higher version reads the version-1 fields and ignores the rest,
// so a leader running an older brook still understands newer members and
// the other way round. Version 0, an unknown kind, or trailing bytes after
// a version-1 payload are errors.
const (
	kindMember     byte = 'M'
	kindAssignment byte = 'A'
	formatVersion  byte = 1
)

// ErrMalformed is wrapped by the decoders' errors for bytes that are not a
// payload of the expected kind.
var ErrMalformed = errors.New("assign: malformed user data")

// MemberData is what a member tells the group leader each time it joins,
// carried in its subscription's user data.
type MemberData struct {
	// Endpoint is the member's interactive-query address (host:port),
	// empty when it serves no queries.
	Endpoint string
	// Generation is the generation of the assignment that Owned comes
	// from, -1 when the member holds none. When two members claim a task,
	// the claim from the newer generation wins.
	Generation int32
	// Owned are the tasks the member was assigned in Generation.
	Owned []TaskID
	// Restored holds, for each task whose state the member has on local
	// disk, the changelog offsets its stores are restored to (changelog
	// topic -> next offset to restore). Larger totals mean warmer state.
	Restored map[TaskID]map[string]int64
}

// MarshalBinary encodes d in the version-1 member-data format. It never
// fails; the error is there to satisfy encoding.BinaryMarshaler.
func (d MemberData) MarshalBinary() ([]byte, error) {
	b := []byte{kindMember, formatVersion}
	b = appendString(b, d.Endpoint)
	b = binary.AppendVarint(b, int64(d.Generation))
	owned := slices.Clone(d.Owned)
	slices.SortFunc(owned, TaskID.Compare)
	owned = slices.Compact(owned)
	b = binary.AppendUvarint(b, uint64(len(owned)))
	for _, t := range owned {
		b = appendTask(b, t)
	}
	tasks := slices.SortedFunc(maps.Keys(d.Restored), TaskID.Compare)
	b = binary.AppendUvarint(b, uint64(len(tasks)))
	for _, t := range tasks {
		b = appendTask(b, t)
		offsets := d.Restored[t]
		topics := slices.Sorted(maps.Keys(offsets))
		b = binary.AppendUvarint(b, uint64(len(topics)))
		for _, topic := range topics {
			b = appendString(b, topic)
			b = binary.AppendVarint(b, offsets[topic])
		}
	}
	return b, nil
}

// DecodeMemberData decodes member data written by MarshalBinary of this or
// a later format version. It never panics; malformed input gives an error
// wrapping ErrMalformed.
func DecodeMemberData(data []byte) (MemberData, error) {
	r, err := newReader(data, kindMember)
	if err != nil {
		return MemberData{}, err
	}
	var d MemberData
	d.Endpoint = r.string()
	d.Generation = r.int32()
	n := r.count(2)
	for range n {
		t := r.task()
		if r.err == nil && len(d.Owned) > 0 && d.Owned[len(d.Owned)-1].Compare(t) >= 0 {
			r.fail("owned tasks not in ascending order at %s", t)
		}
		d.Owned = append(d.Owned, t)
	}
	n = r.count(3)
	if n > 0 {
		d.Restored = make(map[TaskID]map[string]int64, n)
	}
	for range n {
		t := r.task()
		if _, dup := d.Restored[t]; dup && r.err == nil {
			r.fail("restored offsets of task %s appear twice", t)
		}
		m := r.count(2)
		offsets := make(map[string]int64, m)
		for range m {
			topic := r.string()
			off := r.int64()
			if _, dup := offsets[topic]; dup && r.err == nil {
				r.fail("changelog %q of task %s appears twice", topic, t)
			}
			offsets[topic] = off
		}
		d.Restored[t] = offsets
	}
	if err := r.finish(); err != nil {
		return MemberData{}, err
	}
	return d, nil
}

// Host is one group member in an Assignment.
type Host struct {
	// MemberID is the member's id in the consumer group.
	MemberID string
	// Endpoint is its interactive-query address, empty if it has none.
	Endpoint string
	// Tasks are the tasks it runs, ascending.
	Tasks []TaskID
}

// Assignment is the whole assignment of one generation, as every member
// receives it: which member (and endpoint) runs which task.
type Assignment struct {
	// Generation is the consumer-group generation it belongs to.
	Generation int32
	// Self is the index in Hosts of the member that received it, -1 if
	// unknown.
	Self int
	// Partitions maps each assigned sub-topology to its partition count,
	// which is also its number of tasks. Route a key of that sub-topology
	// with partition.ForKey(key, Partitions[group]).
	Partitions map[int32]int32
	// Hosts are the members, ordered by member id. Members with no tasks
	// are listed too.
	Hosts []Host
}

// Owner returns the host running task t.
func (a Assignment) Owner(t TaskID) (Host, bool) {
	for _, h := range a.Hosts {
		if _, ok := slices.BinarySearchFunc(h.Tasks, t, TaskID.Compare); ok {
			return h, true
		}
	}
	return Host{}, false
}

// Local returns the tasks of the member that received the assignment.
func (a Assignment) Local() []TaskID {
	if a.Self < 0 || a.Self >= len(a.Hosts) {
		return nil
	}
	return slices.Clone(a.Hosts[a.Self].Tasks)
}

// clone returns a deep copy, so callers cannot change the strategy's copy.
func (a Assignment) clone() Assignment {
	c := Assignment{Generation: a.Generation, Self: a.Self, Partitions: maps.Clone(a.Partitions)}
	c.Hosts = make([]Host, len(a.Hosts))
	for i, h := range a.Hosts {
		c.Hosts[i] = Host{MemberID: h.MemberID, Endpoint: h.Endpoint, Tasks: slices.Clone(h.Tasks)}
	}
	return c
}

// MarshalBinary encodes a in the version-1 assignment format. Tasks are
// written in ascending order; a task listed under two hosts, or a Self out
// of range other than -1, is an error.
func (a Assignment) MarshalBinary() ([]byte, error) {
	if a.Self < -1 || a.Self >= len(a.Hosts) {
		return nil, fmt.Errorf("assign: Self %d is not an index of %d hosts", a.Self, len(a.Hosts))
	}
	b := []byte{kindAssignment, formatVersion}
	b = binary.AppendVarint(b, int64(a.Generation))
	b = binary.AppendUvarint(b, uint64(a.Self+1))
	groups := slices.Sorted(maps.Keys(a.Partitions))
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendVarint(b, int64(g))
		b = binary.AppendVarint(b, int64(a.Partitions[g]))
	}
	b = binary.AppendUvarint(b, uint64(len(a.Hosts)))
	seen := make(map[TaskID]string)
	for _, h := range a.Hosts {
		b = appendString(b, h.MemberID)
		b = appendString(b, h.Endpoint)
		tasks := slices.Clone(h.Tasks)
		slices.SortFunc(tasks, TaskID.Compare)
		b = binary.AppendUvarint(b, uint64(len(tasks)))
		for _, t := range tasks {
			if other, dup := seen[t]; dup {
				return nil, fmt.Errorf("assign: task %s is assigned to both %q and %q", t, other, h.MemberID)
			}
			seen[t] = h.MemberID
			b = appendTask(b, t)
		}
	}
	return b, nil
}

// DecodeAssignment decodes an assignment written by MarshalBinary of this
// or a later format version. It never panics; malformed input gives an
// error wrapping ErrMalformed.
func DecodeAssignment(data []byte) (Assignment, error) {
	r, err := newReader(data, kindAssignment)
	if err != nil {
		return Assignment{}, err
	}
	var a Assignment
	a.Generation = r.int32()
	self := r.uvarint()
	n := r.count(2)
	if n > 0 {
		a.Partitions = make(map[int32]int32, n)
	}
	prev := int32(-1)
	for range n {
		g := r.int32()
		p := r.int32()
		if r.err == nil && (g < 0 || p < 0) {
			r.fail("negative group %d or partition count %d", g, p)
		}
		if r.err == nil && g <= prev {
			r.fail("sub-topologies not in ascending order at %d", g)
		}
		prev = g
		a.Partitions[g] = p
	}
	n = r.count(3)
	seen := make(map[TaskID]bool)
	for range n {
		h := Host{MemberID: r.string(), Endpoint: r.string()}
		m := r.count(2)
		for range m {
			t := r.task()
			if r.err == nil && seen[t] {
				r.fail("task %s is assigned twice", t)
			}
			if r.err == nil && len(h.Tasks) > 0 && h.Tasks[len(h.Tasks)-1].Compare(t) >= 0 {
				r.fail("tasks of %q not in ascending order at %s", h.MemberID, t)
			}
			seen[t] = true
			h.Tasks = append(h.Tasks, t)
		}
		a.Hosts = append(a.Hosts, h)
	}
	if r.err == nil && self > uint64(len(a.Hosts)) {
		r.fail("self index %d beyond %d hosts", self, len(a.Hosts))
	}
	a.Self = int(self) - 1
	if err := r.finish(); err != nil {
		return Assignment{}, err
	}
	return a, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendTask(b []byte, t TaskID) []byte {
	b = binary.AppendVarint(b, int64(t.Group))
	return binary.AppendVarint(b, int64(t.Partition))
}

// reader decodes one payload. The first error sticks; later reads return
// zero values, so decoding code can check once at the end.
type reader struct {
	buf     []byte
	version byte
	err     error
}

func newReader(data []byte, kind byte) (*reader, error) {
	if len(data) < 2 {
		return nil, fmt.Errorf("%w: %d bytes, too short for a header", ErrMalformed, len(data))
	}
	if data[0] != kind {
		return nil, fmt.Errorf("%w: kind byte %#x, want %q", ErrMalformed, data[0], kind)
	}
	if data[1] == 0 {
		return nil, fmt.Errorf("%w: format version 0", ErrMalformed)
	}
	return &reader{buf: data[2:], version: data[1]}, nil
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 || (n > 1 && r.buf[n-1] == 0) {
		// A zero last byte is an over-long encoding: rejecting it keeps
		// every payload's encoding unique.
		r.fail("bad unsigned varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) int64() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.buf)
	if n <= 0 || (n > 1 && r.buf[n-1] == 0) {
		r.fail("bad varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) int32() int32 {
	v := r.int64()
	if v < math.MinInt32 || v > math.MaxInt32 {
		r.fail("value %d does not fit in 32 bits", v)
		return 0
	}
	return int32(v)
}

// count reads an element count and checks that the remaining bytes can
// hold that many elements of at least minSize bytes, so corrupt input
// cannot make the decoder allocate without bound.
func (r *reader) count(minSize int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64(len(r.buf)/minSize) {
		r.fail("count %d exceeds the %d bytes left", v, len(r.buf))
		return 0
	}
	return int(v)
}

func (r *reader) string() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.buf)) {
		r.fail("string of %d bytes exceeds the %d bytes left", n, len(r.buf))
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

func (r *reader) task() TaskID {
	t := TaskID{Group: r.int32(), Partition: r.int32()}
	if r.err == nil && (t.Group < 0 || t.Partition < 0) {
		r.fail("negative task %s", t)
	}
	return t
}

func (r *reader) finish() error {
	if r.err != nil {
		return r.err
	}
	if r.version == formatVersion && len(r.buf) > 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.buf))
	}
	return nil
}
