package assign

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func sampleMember() MemberData {
	return MemberData{
		Endpoint:   "counter-2.counter.svc.cluster.local:8080",
		Generation: 41,
		Owned:      []TaskID{{1, 0}, {0, 3}, {0, 1}},
		Warm: map[TaskID]int64{
			{0, 1}:    1241,    // owned
			{2, 9}:    7,       // not owned
			{2, 4000}: 1 << 40, // not owned, far away
		},
		Standby: []TaskID{{2, 9}, {0, 2}},
		Warmup:  []TaskID{{2, 4000}},
		Pending: []TaskID{{0, 7}, {3, 1}},
	}
}

func sampleAssignment() MemberAssignment {
	return MemberAssignment{
		Generation: 7,
		Partitions: map[int32]int32{0: 6, 1: 2, 5: 20_000},
		Standby:    []TaskID{{5, 19_999}, {0, 4}, {0, 2}},
		Warmup:     []TaskID{{5, 3}, {0, 5}},
		// Rounded up to whole milliseconds on the wire.
		ProbingRebalance: time.Minute + time.Microsecond,
		Pending:          []TaskID{{5, 7}, {0, 0}},
	}
}

func TestMemberDataRoundTrip(t *testing.T) {
	withZeros := sampleMember()
	withZeros.Warm = maps.Clone(withZeros.Warm)
	withZeros.Warm[TaskID{0, 3}] = 0  // owned, no state
	withZeros.Warm[TaskID{3, 3}] = -4 // nonsense: dropped
	withZeros.Owned = append(withZeros.Owned, TaskID{0, 1})
	for _, d := range []MemberData{sampleMember(), withZeros, {Generation: -1}, {Endpoint: "ü:1", Generation: 1 << 30, Owned: []TaskID{{0, 0}}}} {
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMemberData(b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		want := d
		want.Owned = slices.Clone(d.Owned)
		slices.SortFunc(want.Owned, TaskID.Compare)
		want.Owned = slices.Compact(want.Owned)
		want.Warm = maps.Clone(d.Warm)
		maps.DeleteFunc(want.Warm, func(_ TaskID, w int64) bool { return w <= 0 })
		if len(want.Warm) == 0 {
			want.Warm = nil
		}
		want.Standby, want.Warmup, want.Pending = sortedSet(d.Standby), sortedSet(d.Warmup), sortedSet(d.Pending)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
	if _, err := (MemberData{Owned: []TaskID{{-1, 0}}}).MarshalBinary(); err == nil {
		t.Error("a negative task was encoded")
	}
	for _, d := range []MemberData{
		{Owned: []TaskID{{0, 1}}, Standby: []TaskID{{0, 1}}},
		{Owned: []TaskID{{0, 1}}, Warmup: []TaskID{{0, 1}}},
		{Standby: []TaskID{{0, 1}}, Warmup: []TaskID{{0, 1}}},
		{Owned: []TaskID{{0, 1}}, Pending: []TaskID{{0, 1}}},
		{Standby: []TaskID{{0, 1}}, Pending: []TaskID{{0, 1}}},
		{Warmup: []TaskID{{0, 1}}, Pending: []TaskID{{0, 1}}},
	} {
		if _, err := d.MarshalBinary(); err == nil {
			t.Errorf("%+v was encoded", d)
		}
	}
}

func TestMemberAssignmentRoundTrip(t *testing.T) {
	a := sampleAssignment()
	a.Tasks = []TaskID{{0, 0}} // travels as partitions, not here
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeMemberAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleAssignment()
	slices.SortFunc(want.Standby, TaskID.Compare)
	slices.SortFunc(want.Warmup, TaskID.Compare)
	slices.SortFunc(want.Pending, TaskID.Compare)
	want.ProbingRebalance = time.Minute + time.Millisecond
	if !reflect.DeepEqual(got, want) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
	}
	empty, err := MemberAssignment{Generation: 1}.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// Header, generation, no partitions, no standbys, no warm-ups, no
	// probing, no pending tasks.
	if len(empty) != 8 {
		t.Errorf("an empty assignment takes %d bytes: %x", len(empty), empty)
	}
	for _, bad := range []MemberAssignment{
		{Partitions: map[int32]int32{-1: 3}},
		{Standby: []TaskID{{0, 1}}, Warmup: []TaskID{{0, 1}}},
		{Standby: []TaskID{{0, 1}}, Pending: []TaskID{{0, 1}}},
		{Warmup: []TaskID{{0, 1}}, Pending: []TaskID{{0, 1}}},
		{ProbingRebalance: -time.Second},
	} {
		if _, err := bad.MarshalBinary(); err == nil {
			t.Errorf("%+v was encoded", bad)
		}
	}
}

// Version-1 payloads as brook wrote them before standbys and warm-ups
// (sampleMember and sampleAssignment of that version, encoded by it).
const (
	v1Member     = "530128636f756e7465722d322e636f756e7465722e7376632e636c75737465722e6c6f63616c3a38303830520200020101000100d909000001020209961f07808080808020"
	v1Assignment = "54010e030006000203a09c01020002020104019f9c01"
)

// TestDecodesVersion1: payloads of format version 1 (an older brook
// during a rolling upgrade) still decode, with the version-2 fields empty.
func TestDecodesVersion1(t *testing.T) {
	mb, _ := hex.DecodeString(v1Member)
	d, err := DecodeMemberData(mb)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleMember()
	want.Owned = sortedSet(want.Owned)
	want.Standby, want.Warmup, want.Pending = nil, nil, nil
	if !reflect.DeepEqual(d, want) {
		t.Errorf("version-1 member data:\n got %+v\nwant %+v", d, want)
	}
	ab, _ := hex.DecodeString(v1Assignment)
	a, err := DecodeMemberAssignment(ab)
	if err != nil {
		t.Fatal(err)
	}
	wantA := MemberAssignment{Generation: 7, Partitions: map[int32]int32{0: 6, 1: 2, 5: 20_000},
		Standby: []TaskID{{0, 2}, {0, 4}, {5, 19_999}}}
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("version-1 assignment:\n got %+v\nwant %+v", a, wantA)
	}
	// A version-1 payload with the version-2 fields appended is not a
	// valid version-1 payload.
	for name, b := range map[string][]byte{"member": append(slices.Clone(mb), 0, 0), "assignment": append(slices.Clone(ab), 0, 0, 0)} {
		var err error
		if name == "member" {
			_, err = DecodeMemberData(b)
		} else {
			_, err = DecodeMemberAssignment(b)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s v1 with trailing bytes: err = %v", name, err)
		}
	}
}

// Version-2 payloads as brook wrote them before pending tasks
// (sampleMember and sampleAssignment without Pending, encoded by it).
const (
	v2Member     = "530228636f756e7465722d322e636f756e7465722e7376632e636c75737465722e6c6f63616c3a38303830520200020101000100d909000001020209961f0780808080802002000102010109010201a01f"
	v2Assignment = "54020e030006000203a09c01020002020104019f9c0102000105040103e1d403"
)

// TestDecodesVersion2: payloads of format version 2 (a brook without
// cooperative planning) still decode, with no pending tasks.
func TestDecodesVersion2(t *testing.T) {
	mb, _ := hex.DecodeString(v2Member)
	d, err := DecodeMemberData(mb)
	if err != nil {
		t.Fatal(err)
	}
	want := sampleMember()
	want.Owned, want.Standby, want.Warmup, want.Pending = sortedSet(want.Owned), sortedSet(want.Standby), sortedSet(want.Warmup), nil
	if !reflect.DeepEqual(d, want) {
		t.Errorf("version-2 member data:\n got %+v\nwant %+v", d, want)
	}
	ab, _ := hex.DecodeString(v2Assignment)
	a, err := DecodeMemberAssignment(ab)
	if err != nil {
		t.Fatal(err)
	}
	wantA := sampleAssignment()
	wantA.Standby, wantA.Warmup, wantA.Pending = sortedSet(wantA.Standby), sortedSet(wantA.Warmup), nil
	wantA.ProbingRebalance = time.Minute + time.Millisecond
	if !reflect.DeepEqual(a, wantA) {
		t.Errorf("version-2 assignment:\n got %+v\nwant %+v", a, wantA)
	}
}

// TestPayloadSizesFollowTheShare: the payloads grow with the member's own
// tasks, not with the partition numbers' magnitude or anything else: a
// task costs at most 2 bytes in a task set while its sub-topology has
// fewer than 16,384 partitions, and a member's assignment data does not
// depend on its tasks at all.
func TestPayloadSizesFollowTheShare(t *testing.T) {
	// 20 tasks of a sub-topology of 20,000 partitions, 1,000 apart (the
	// share of one of 1,000 members), plus 20 of another.
	var tasks []TaskID
	for i := range int32(20) {
		tasks = append(tasks, TaskID{0, 37 + i*1000}, TaskID{3, 11 + i*997})
	}
	slices.SortFunc(tasks, TaskID.Compare)
	b, err := appendTaskSet(nil, tasks)
	if err != nil {
		t.Fatal(err)
	}
	if max := 1 + 2*2 + 2*len(tasks); len(b) > max {
		t.Errorf("40 tasks take %d bytes, want at most %d", len(b), max)
	}
	d := MemberData{Endpoint: strings.Repeat("e", 50), Generation: 1234, Owned: tasks, Warm: map[TaskID]int64{}}
	for _, task := range tasks {
		d.Warm[task] = 300_000_000 // 5 bytes as a varint
	}
	for i := range int32(40) {
		d.Warm[TaskID{0, 5 + i*500}] = 100_000_000
	}
	md, _ := d.MarshalBinary()
	// header 2, endpoint 51, generation 2, owned 85, sums 200, warm 85,
	// sums 200, empty standby, warm-up and pending sets.
	if len(md) > 2+51+2+(1+2*2+2*40)+40*5+(1+2+2*40)+40*5+1+1+1 {
		t.Errorf("member data of 40 owned and 40 warm tasks takes %d bytes", len(md))
	}
	a := MemberAssignment{Generation: 1234, Partitions: map[int32]int32{0: 20_000, 3: 20_000}}
	ab, _ := a.MarshalBinary()
	a.Tasks = tasks
	ab2, _ := a.MarshalBinary()
	// header 2, generation 2, partitions 1+2*(1+3), empty standby and
	// warm-up sets, no probing, empty pending set.
	if len(ab) != len(ab2) || len(ab) > 2+2+1+2*(1+3)+1+1+1+1 {
		t.Errorf("assignment data takes %d bytes (%d with tasks)", len(ab), len(ab2))
	}
}

// TestForwardCompatible: a later format version that appends fields is
// read by this decoder; the same bytes under version 1 are rejected.
func TestForwardCompatible(t *testing.T) {
	m, _ := sampleMember().MarshalBinary()
	a, _ := sampleAssignment().MarshalBinary()
	for name, b := range map[string][]byte{"member": m, "assignment": a} {
		future := append(slices.Clone(b), 0x05, 'n', 'e', 'w', 0x01)
		future[1] = formatVersion + 1
		var err error
		if name == "member" {
			var d MemberData
			d, err = DecodeMemberData(future)
			if err == nil && (d.Endpoint != sampleMember().Endpoint || len(d.Warm) != 3 || len(d.Standby) != 2 || len(d.Warmup) != 1 || len(d.Pending) != 2) {
				t.Errorf("member v%d read as %+v", formatVersion+1, d)
			}
		} else {
			var d MemberAssignment
			d, err = DecodeMemberAssignment(future)
			if err == nil && (len(d.Partitions) != 3 || len(d.Standby) != 3 || len(d.Warmup) != 2 || d.ProbingRebalance != time.Minute+time.Millisecond || len(d.Pending) != 2) {
				t.Errorf("assignment v%d read as %+v", formatVersion+1, d)
			}
		}
		if err != nil {
			t.Errorf("%s v%d: %v", name, formatVersion+1, err)
		}
		future[1] = formatVersion
		if name == "member" {
			_, err = DecodeMemberData(future)
		} else {
			_, err = DecodeMemberAssignment(future)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s v%d with trailing bytes: err = %v", name, formatVersion, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	m, _ := sampleMember().MarshalBinary()
	a, _ := sampleAssignment().MarshalBinary()
	head := func(b ...byte) []byte { return append([]byte{kindSubscription, 1}, b...) }
	// A member with endpoint "", generation 0, no owned tasks, then the
	// given warm task set.
	warm := func(b ...byte) []byte { return head(append([]byte{0, 0, 0}, b...)...) }
	cases := map[string][]byte{
		"empty":                nil,
		"one byte":             {kindSubscription},
		"version 0":            {kindSubscription, 0},
		"assignment as member": a,
		"truncated":            m[:len(m)-3],
		"huge count":           binary.AppendUvarint(head(0, 0), 1<<40),
		"huge string":          binary.AppendUvarint(head(), 1<<40),
		"generation overflow":  binary.AppendVarint(head(0), 1<<40),
		"empty run":            head(0, 0, 1, 0, 0, 0),
		"group overflow":       binary.AppendUvarint(head(0, 0, 1), 1<<31),
		"partition overflow":   append(binary.AppendUvarint(head(0, 0, 1, 0, 2), 1<<31-1), 0, 0, 0),
		"warm also owned":      head(0, 0, 1, 0, 1, 4, 9, 1, 0, 1, 4, 9),
		"warm sum zero":        warm(1, 0, 1, 4, 0),
		"sum overflow":         binary.AppendUvarint(warm(1, 0, 1, 4), 1<<63),
		"over-long varint":     head(0x80, 0x00, 0, 0, 0),
		"legacy member":        {kindLegacyMember, 1, 0, 1, 0, 0},
		// Version 2: owned {0_4}, then standby and warm-up sets.
		"standby also owned":   {kindSubscription, 2, 0, 0, 1, 0, 1, 4, 0, 0, 1, 0, 1, 4, 0},
		"warm-up also owned":   {kindSubscription, 2, 0, 0, 1, 0, 1, 4, 0, 0, 0, 1, 0, 1, 4},
		"warm-up also standby": {kindSubscription, 2, 0, 0, 0, 0, 1, 0, 1, 4, 1, 0, 1, 4},
		"v2 truncated":         {kindSubscription, 2, 0, 0, 0, 0, 0},
		// Version 3: owned {0_4}, no standbys, no warm-ups, pending {0_4}.
		"pending also owned":   {kindSubscription, 3, 0, 0, 1, 0, 1, 4, 0, 0, 0, 0, 1, 0, 1, 4},
		"pending also standby": {kindSubscription, 3, 0, 0, 0, 0, 1, 0, 1, 4, 0, 1, 0, 1, 4},
		"v3 without pending":   {kindSubscription, 3, 0, 0, 0, 0, 0, 0},
	}
	for name, b := range cases {
		if _, err := DecodeMemberData(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	_, err := DecodeMemberData(cases["legacy member"])
	if !strings.Contains(err.Error(), "older brook") {
		t.Errorf("a first-format member's data: %v", err)
	}
	for name, b := range map[string][]byte{
		"member data as assignment": m,
		"legacy assignment":         {kindLegacyAssignment, 1, 2, 0, 0, 0},
		"partition count overflow":  binary.AppendUvarint([]byte{kindAssignment, 1, 2, 1, 0}, 1<<31),
		"truncated":                 a[:len(a)-1],
		"v2 without warm-ups":       {kindAssignment, 2, 2, 0, 0},
		"warm-up also standby":      {kindAssignment, 2, 2, 0, 1, 0, 1, 4, 1, 0, 1, 4, 0},
		"probing overflow":          binary.AppendUvarint([]byte{kindAssignment, 2, 2, 0, 0, 0}, 1<<62),
		"v3 without pending":        {kindAssignment, 3, 2, 0, 0, 0, 0},
		"pending also standby":      {kindAssignment, 3, 2, 0, 1, 0, 1, 4, 0, 0, 1, 0, 1, 4},
		"pending also warm-up":      {kindAssignment, 3, 2, 0, 0, 1, 0, 1, 4, 0, 1, 0, 1, 4},
	} {
		if _, err := DecodeMemberAssignment(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzDecodeMemberData(f *testing.F) {
	m, _ := sampleMember().MarshalBinary()
	f.Add(m)
	f.Add([]byte{kindSubscription, 1, 0, 1, 0, 0})
	f.Add([]byte{kindSubscription, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeMemberData(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes re-encodes to something that decodes the same,
		// and version-1 bytes re-encode to themselves.
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := DecodeMemberData(b)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", d, err)
		}
		if !reflect.DeepEqual(d, d2) {
			t.Fatalf("re-decode differs: %+v vs %+v", d, d2)
		}
		if data[1] == formatVersion && !bytes.Equal(b, data) {
			t.Fatalf("current version's encoding is not canonical:\n in %x\nout %x", data, b)
		}
	})
}

func FuzzDecodeMemberAssignment(f *testing.F) {
	a, _ := sampleAssignment().MarshalBinary()
	f.Add(a)
	f.Add([]byte{kindAssignment, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeMemberAssignment(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded assignment does not encode: %v", err)
		}
		if data[1] == formatVersion && !bytes.Equal(b, data) {
			t.Fatalf("current version's encoding is not canonical:\n in %x\nout %x", data, b)
		}
	})
}
