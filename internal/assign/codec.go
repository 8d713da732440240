package assign

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"
)

// Wire format of the two user-data payloads (see the package doc for where
// each travels). Both are sized by the member's own share of the tasks,
// never by the size of the group.
//
// Both start with a two-byte header: a kind byte ('S' for subscription
// data, 'T' for a member's assignment) and a format version (currently
// 3). After it: unsigned numbers are unsigned varints, signed ones
// (generation) zig-zag varints (encoding/binary's AppendUvarint and
// AppendVarint), and a string is its length followed by its UTF-8 bytes.
//
// A task set (ascending tasks) is written run by run, one run per
// sub-topology, with gaps instead of absolute numbers, so that a task
// costs about one byte per 128 partitions between it and the previous
// one of its sub-topology (two bytes up to 16,384):
//
//	runs       count of sub-topologies with tasks in the set
//	per run:   sub-topology id (the first run), or the gap to the
//	           previous run's id minus one;
//	           count of tasks (>= 1);
//	           first partition, then per task the gap to the previous
//	           partition minus one
//
// Subscription data ('S'), sent by every member in JoinGroup:
//
//	version 1:
//	endpoint   string
//	generation varint   generation of the assignment the owned tasks came from, -1 for none
//	owned      task set
//	owned sums one uvarint per owned task: its restored changelog offsets summed (0: none)
//	warm       task set: other tasks whose state the member holds (disjoint from owned)
//	warm sums  one uvarint (>= 1) per warm task
//	appended in version 2:
//	standby    task set: the standby tasks of the same assignment (disjoint from owned)
//	warm-up    task set: the warm-up tasks of the same assignment (disjoint from owned and standby)
//	appended in version 3:
//	pending    task set: the tasks withheld for the member in the same assignment
//	           (disjoint from owned, standby and warm-up)
//
// Assignment data ('T'), sent by the leader to each member in SyncGroup,
// beside sarama's list of the member's partitions (which names its active
// tasks, so they are not repeated here):
//
//	version 1:
//	generation varint
//	partitions count, then per sub-topology (ascending): id (the first),
//	           or the gap to the previous id minus one; partition count
//	standby    task set
//	appended in version 2:
//	warm-up    task set (disjoint from standby)
//	probing    uvarint: milliseconds after which a probing rebalance is
//	           wanted, 0 for none
//	appended in version 3:
//	pending    task set (disjoint from standby and warm-up)
//
// Compatibility rule: a later version only appends fields. A decoder that
// meets a higher version reads the fields it knows and ignores the rest,
// so a leader running an older brook still understands newer members and
// the other way round; a payload of an earlier version decodes with the
// later fields empty. Version 0, an unknown kind, or trailing bytes after a
// payload of a version this decoder knows are errors. brook's first
// format (kinds 'M' and 'A', which sent every member the whole
// assignment) is rejected the same way: its member is treated as new.
const (
	kindSubscription byte = 'S'
	kindAssignment   byte = 'T'
	formatVersion    byte = 3

	// Kinds of brook's first format.
	kindLegacyMember     byte = 'M'
	kindLegacyAssignment byte = 'A'
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
	// Warm holds, for each task whose state the member has locally, the
	// sum of the changelog offsets its stores are restored to: larger
	// means warmer. Only positive values are kept.
	Warm map[TaskID]int64
	// Standby are the tasks the member kept a standby copy of in
	// Generation (disjoint from Owned). The leader keeps standbys where
	// they were when it can. Format version 2; empty from older members.
	Standby []TaskID
	// Warmup are the tasks the member was warming up in Generation
	// (disjoint from Owned and Standby). The leader makes the member the
	// target of those tasks again, so that a warm-up finishes where it
	// started. Format version 2; empty from older members.
	Warmup []TaskID
	// Pending are the tasks that were withheld from the member in
	// Generation (MemberAssignment.Pending), disjoint from Owned, Standby
	// and Warmup. A pending task is a claim like an owned one: the leader
	// gives the task to the member again, which completes a move that had
	// to wait for the task's previous owner under the cooperative
	// protocol. Format version 3; empty from older members.
	Pending []TaskID
}

// sortedSet returns tasks sorted and de-duplicated, as a new slice (nil
// when empty).
func sortedSet(tasks []TaskID) []TaskID {
	if len(tasks) == 0 {
		return nil
	}
	out := slices.Clone(tasks)
	slices.SortFunc(out, TaskID.Compare)
	return slices.Compact(out)
}

// overlapAny returns a task that is in two of the sorted sets.
func overlapAny(sets ...[]TaskID) (TaskID, bool) {
	for i := range sets {
		for j := i + 1; j < len(sets); j++ {
			if t, ok := overlap(sets[i], sets[j]); ok {
				return t, true
			}
		}
	}
	return TaskID{}, false
}

// overlap returns a task that is in both sorted sets.
func overlap(a, b []TaskID) (TaskID, bool) {
	for _, t := range a {
		if _, ok := slices.BinarySearchFunc(b, t, TaskID.Compare); ok {
			return t, true
		}
	}
	return TaskID{}, false
}

// MarshalBinary encodes d in the version-3 subscription format. The task
// sets are sorted and de-duplicated, Warm entries that are not positive
// are left out; a negative task, or a task in more than one of Owned,
// Standby, Warmup and Pending, is an error.
func (d MemberData) MarshalBinary() ([]byte, error) {
	owned, standby, warmup, pending := sortedSet(d.Owned), sortedSet(d.Standby), sortedSet(d.Warmup), sortedSet(d.Pending)
	if t, ok := overlapAny(owned, standby, warmup, pending); ok {
		return nil, fmt.Errorf("assign: task %s is in two of a member's owned, standby, warm-up and pending tasks", t)
	}
	b := []byte{kindSubscription, formatVersion}
	b = appendString(b, d.Endpoint)
	b = binary.AppendVarint(b, int64(d.Generation))
	b, err := appendTaskSet(b, owned)
	if err != nil {
		return nil, err
	}
	for _, t := range owned {
		b = binary.AppendUvarint(b, uint64(max(d.Warm[t], 0)))
	}
	var warm []TaskID
	for t, w := range d.Warm {
		if _, own := slices.BinarySearchFunc(owned, t, TaskID.Compare); w > 0 && !own {
			warm = append(warm, t)
		}
	}
	slices.SortFunc(warm, TaskID.Compare)
	if b, err = appendTaskSet(b, warm); err != nil {
		return nil, err
	}
	for _, t := range warm {
		b = binary.AppendUvarint(b, uint64(d.Warm[t]))
	}
	if b, err = appendTaskSet(b, standby); err != nil {
		return nil, err
	}
	if b, err = appendTaskSet(b, warmup); err != nil {
		return nil, err
	}
	return appendTaskSet(b, pending)
}

// DecodeMemberData decodes subscription data written by MarshalBinary of
// this or a later format version. It never panics; malformed input gives
// an error wrapping ErrMalformed.
func DecodeMemberData(data []byte) (MemberData, error) {
	r, err := newReader(data, kindSubscription)
	if err != nil {
		return MemberData{}, err
	}
	var d MemberData
	d.Endpoint = r.string()
	d.Generation = r.int32()
	d.Owned = r.taskSet()
	for _, t := range d.Owned {
		if w := r.sum(); w > 0 {
			if d.Warm == nil {
				d.Warm = make(map[TaskID]int64)
			}
			d.Warm[t] = w
		}
	}
	warm := r.taskSet()
	for _, t := range warm {
		w := r.sum()
		if _, own := slices.BinarySearchFunc(d.Owned, t, TaskID.Compare); own && r.err == nil {
			r.fail("warm task %s is also owned", t)
		}
		if w <= 0 && r.err == nil {
			r.fail("warm task %s has sum %d", t, w)
		}
		if d.Warm == nil {
			d.Warm = make(map[TaskID]int64, len(warm))
		}
		d.Warm[t] = w
	}
	if r.version >= 2 {
		d.Standby = r.taskSet()
		d.Warmup = r.taskSet()
	}
	if r.version >= 3 {
		d.Pending = r.taskSet()
	}
	if t, ok := overlapAny(d.Owned, d.Standby, d.Warmup, d.Pending); ok && r.err == nil {
		r.fail("task %s is in two of owned, standby, warm-up and pending", t)
	}
	if err := r.finish(); err != nil {
		return MemberData{}, err
	}
	return d, nil
}

// MemberAssignment is one member's part of an assignment: what the leader
// sends it in SyncGroup.
type MemberAssignment struct {
	// Generation is the consumer-group generation it belongs to.
	Generation int32
	// Partitions maps each assigned sub-topology to its partition count,
	// which is also its number of tasks. Route a key of that sub-topology
	// with partition.ForKey(key, Partitions[group]).
	Partitions map[int32]int32
	// Tasks are the member's active tasks, ascending. They travel as
	// sarama's list of the member's partitions, not in the user data:
	// MarshalBinary ignores them, DecodeMemberAssignment leaves them
	// empty, and Strategy.Local fills them in from the partitions.
	Tasks []TaskID
	// Standby are the tasks the member keeps a standby copy of,
	// ascending: it restores their stores from their changelogs and
	// keeps them current, without processing (Config.Standbys).
	Standby []TaskID
	// Warmup are the tasks the member warms up, ascending: like Standby,
	// but the leader placed them because the member is meant to take the
	// task over once its lag is within Config.AcceptableRecoveryLag
	// (KIP-441). Format version 2; empty from an older leader.
	Warmup []TaskID
	// ProbingRebalance, when positive, says that a follow-up (probing)
	// rebalance is wanted this long after the assignment, to move tasks
	// whose warm-ups have caught up. The leader sets it on the members
	// that hold warm-ups (see the package doc for what the runtime does
	// with it). Format version 2 (milliseconds on the wire); 0 from an
	// older leader.
	ProbingRebalance time.Duration
	// Pending are tasks the leader planned on this member but withheld
	// for now, ascending: another member still owned them when the group
	// rebalanced (on the cooperative protocol members keep their
	// partitions meanwhile). That member gives them up and rejoins, and
	// in the follow-up rebalance the leader gives them to this member:
	// the member reports them in its next subscription
	// (MemberData.Pending), which the strategy does by itself. The
	// runtime need not do anything with them. Disjoint from Tasks,
	// Standby and Warmup. Format version 3; empty from an older leader.
	Pending []TaskID
}

// clone returns a deep copy.
func (a MemberAssignment) clone() MemberAssignment {
	return MemberAssignment{Generation: a.Generation, Partitions: maps.Clone(a.Partitions),
		Tasks: slices.Clone(a.Tasks), Standby: slices.Clone(a.Standby), Warmup: slices.Clone(a.Warmup),
		ProbingRebalance: a.ProbingRebalance, Pending: slices.Clone(a.Pending)}
}

// MarshalBinary encodes a in the version-3 assignment format (without
// Tasks, see there). A negative sub-topology, partition count, task or
// ProbingRebalance, or a task in two of Standby, Warmup and Pending, is an
// error.
// ProbingRebalance is rounded up to whole milliseconds.
func (a MemberAssignment) MarshalBinary() ([]byte, error) {
	b := []byte{kindAssignment, formatVersion}
	b = binary.AppendVarint(b, int64(a.Generation))
	groups := slices.Sorted(maps.Keys(a.Partitions))
	b = binary.AppendUvarint(b, uint64(len(groups)))
	prev := int32(-1)
	for _, g := range groups {
		n := a.Partitions[g]
		if g < 0 || n < 0 {
			return nil, fmt.Errorf("assign: sub-topology %d with %d partitions cannot be encoded", g, n)
		}
		b = binary.AppendUvarint(b, uint64(g-prev-1))
		b = binary.AppendUvarint(b, uint64(n))
		prev = g
	}
	standby, warmup, pending := sortedSet(a.Standby), sortedSet(a.Warmup), sortedSet(a.Pending)
	if t, ok := overlapAny(standby, warmup, pending); ok {
		return nil, fmt.Errorf("assign: task %s is in two of a member's standby, warm-up and pending tasks", t)
	}
	if a.ProbingRebalance < 0 {
		return nil, fmt.Errorf("assign: negative probing rebalance delay %v", a.ProbingRebalance)
	}
	b, err := appendTaskSet(b, standby)
	if err != nil {
		return nil, err
	}
	if b, err = appendTaskSet(b, warmup); err != nil {
		return nil, err
	}
	ms := (a.ProbingRebalance + time.Millisecond - 1) / time.Millisecond
	b = binary.AppendUvarint(b, uint64(ms))
	return appendTaskSet(b, pending)
}

// maxProbingMillis is the largest probing delay a time.Duration holds.
const maxProbingMillis = math.MaxInt64 / int64(time.Millisecond)

// DecodeMemberAssignment decodes assignment data written by MarshalBinary
// of this or a later format version. It never panics; malformed input
// gives an error wrapping ErrMalformed.
func DecodeMemberAssignment(data []byte) (MemberAssignment, error) {
	r, err := newReader(data, kindAssignment)
	if err != nil {
		return MemberAssignment{}, err
	}
	var a MemberAssignment
	a.Generation = r.int32()
	n := r.count(2)
	if n > 0 {
		a.Partitions = make(map[int32]int32, n)
	}
	g := int32(-1)
	for range n {
		g = r.next(g)
		p := r.uvarint()
		if r.err == nil && p > math.MaxInt32 {
			r.fail("partition count %d of sub-topology %d does not fit in 32 bits", p, g)
		}
		a.Partitions[g] = int32(p)
	}
	a.Standby = r.taskSet()
	if r.version >= 2 {
		a.Warmup = r.taskSet()
		if t, ok := overlap(a.Standby, a.Warmup); ok && r.err == nil {
			r.fail("task %s is both a standby and a warm-up", t)
		}
		ms := r.uvarint()
		if r.err == nil && ms > uint64(maxProbingMillis) {
			r.fail("probing rebalance delay of %d ms does not fit a duration", ms)
		}
		a.ProbingRebalance = time.Duration(ms) * time.Millisecond
	}
	if r.version >= 3 {
		a.Pending = r.taskSet()
		if t, ok := overlapAny(a.Standby, a.Warmup, a.Pending); ok && r.err == nil {
			r.fail("task %s is in two of standby, warm-up and pending", t)
		}
	}
	if err := r.finish(); err != nil {
		return MemberAssignment{}, err
	}
	return a, nil
}

// Host is one group member in an Assignment.
type Host struct {
	// MemberID is the member's id in the consumer group.
	MemberID string
	// Endpoint is its interactive-query address, empty if it has none (or
	// runs a brook whose subscription data cannot be read).
	Endpoint string
	// Tasks are the tasks it runs, ascending.
	Tasks []TaskID
	// Standby are the tasks it keeps a standby copy of, ascending.
	Standby []TaskID
	// Warmup are the tasks it warms up, ascending (see
	// MemberAssignment.Warmup).
	Warmup []TaskID
}

// Assignment is the whole assignment of one generation: which member (and
// endpoint) runs which task, and which members keep standby and warm-up
// copies of it. No member receives it from the leader; the
// strategy assembles it on demand from the group coordinator's
// description of the group (see Strategy.Routing).
type Assignment struct {
	// Generation is the consumer-group generation it belongs to.
	Generation int32
	// Self is the index in Hosts of this member, -1 if unknown.
	Self int
	// Partitions maps each assigned sub-topology to its partition count,
	// which is also its number of tasks. Route a key of that sub-topology
	// with partition.ForKey(key, Partitions[group]).
	Partitions map[int32]int32
	// Hosts are the members, ordered by member id. Members with no tasks
	// are listed too.
	Hosts []Host

	// owners indexes Hosts by task (nil: Owner searches); standbys and
	// warmups likewise for the copies (nil: Standbys and Warmups search).
	owners            map[TaskID]int
	standbys, warmups map[TaskID][]int
}

// Owner returns the host running task t.
func (a Assignment) Owner(t TaskID) (Host, bool) {
	if a.owners != nil {
		i, ok := a.owners[t]
		if !ok {
			return Host{}, false
		}
		return a.Hosts[i], true
	}
	for _, h := range a.Hosts {
		if _, ok := slices.BinarySearchFunc(h.Tasks, t, TaskID.Compare); ok {
			return h, true
		}
	}
	return Host{}, false
}

// Standbys returns the hosts that keep a standby copy of task t, in
// Hosts' order (none when the task has no standbys). A query may read a
// standby's stores when the runtime allows it, stating the standby's lag.
func (a Assignment) Standbys(t TaskID) []Host {
	return a.copies(t, a.standbys, func(h Host) []TaskID { return h.Standby })
}

// Warmups returns the hosts that warm up task t, in Hosts' order: members
// that will run it once caught up (at most one in an assignment brook's
// leader makes).
func (a Assignment) Warmups(t TaskID) []Host {
	return a.copies(t, a.warmups, func(h Host) []TaskID { return h.Warmup })
}

func (a Assignment) copies(t TaskID, index map[TaskID][]int, of func(Host) []TaskID) []Host {
	var out []Host
	if index != nil {
		for _, i := range index[t] {
			out = append(out, a.Hosts[i])
		}
		return out
	}
	for _, h := range a.Hosts {
		if _, ok := slices.BinarySearchFunc(of(h), t, TaskID.Compare); ok {
			out = append(out, h)
		}
	}
	return out
}

// Local returns the tasks of this member.
func (a Assignment) Local() []TaskID {
	if a.Self < 0 || a.Self >= len(a.Hosts) {
		return nil
	}
	return slices.Clone(a.Hosts[a.Self].Tasks)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendTaskSet appends tasks, which must be ascending and distinct, as a
// task set.
func appendTaskSet(b []byte, tasks []TaskID) ([]byte, error) {
	runs := 0
	for i, t := range tasks {
		if t.Group < 0 || t.Partition < 0 {
			return nil, fmt.Errorf("assign: negative task %s cannot be encoded", t)
		}
		if i > 0 && tasks[i-1].Compare(t) >= 0 {
			return nil, fmt.Errorf("assign: task set not ascending at %s", t)
		}
		if i == 0 || tasks[i-1].Group != t.Group {
			runs++
		}
	}
	b = binary.AppendUvarint(b, uint64(runs))
	prevGroup := int32(-1)
	for i := 0; i < len(tasks); {
		j := i
		for j < len(tasks) && tasks[j].Group == tasks[i].Group {
			j++
		}
		b = binary.AppendUvarint(b, uint64(tasks[i].Group-prevGroup-1))
		b = binary.AppendUvarint(b, uint64(j-i))
		prevPart := int32(-1)
		for _, t := range tasks[i:j] {
			b = binary.AppendUvarint(b, uint64(t.Partition-prevPart-1))
			prevPart = t.Partition
		}
		prevGroup = tasks[i].Group
		i = j
	}
	return b, nil
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
		if data[0] == kindLegacyMember || data[0] == kindLegacyAssignment {
			return nil, fmt.Errorf("%w: kind byte %q of an older brook's format, want %q", ErrMalformed, data[0], kind)
		}
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

// sum reads a warmth sum: an unsigned varint that fits in an int64.
func (r *reader) sum() int64 {
	v := r.uvarint()
	if v > math.MaxInt64 {
		r.fail("sum %d does not fit in 63 bits", v)
		return 0
	}
	return int64(v)
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

// taskSet reads a task set (ascending by construction).
func (r *reader) taskSet() []TaskID {
	runs := r.count(3)
	var out []TaskID
	g := int32(-1)
	for range runs {
		g = r.next(g)
		n := r.count(1)
		if r.err == nil && n == 0 {
			r.fail("empty run of sub-topology %d", g)
		}
		p := int32(-1)
		for range n {
			p = r.next(p)
			if r.err != nil {
				return nil
			}
			out = append(out, TaskID{Group: g, Partition: p})
		}
	}
	return out
}

// next reads a gap and returns the number after prev that it encodes:
// prev + gap + 1, which must fit in an int32.
func (r *reader) next(prev int32) int32 {
	gap := r.uvarint()
	if limit := math.MaxInt32 - int64(prev) - 1; r.err == nil && (limit < 0 || gap > uint64(limit)) {
		r.fail("gap %d after %d does not fit in 32 bits", gap, prev)
	}
	if r.err != nil {
		return 0
	}
	return prev + int32(gap) + 1
}

func (r *reader) finish() error {
	if r.err != nil {
		return r.err
	}
	if r.version <= formatVersion && len(r.buf) > 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.buf))
	}
	return nil
}
