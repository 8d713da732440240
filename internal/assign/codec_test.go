package assign

import (
	"bytes"
	"encoding/binary"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
)

func sampleMember() MemberData {
	return MemberData{
		Endpoint:   "counter-2.counter.svc.cluster.local:8080",
		Generation: 41,
		Owned:      []TaskID{{1, 0}, {0, 3}, {0, 1}},
		Restored: map[TaskID]map[string]int64{
			{0, 1}: {"app-counts-changelog": 1234, "app-seen-changelog": 7},
			{2, 9}: {"app-x-changelog": 0},
		},
	}
}

func sampleAssignment() Assignment {
	return Assignment{
		Generation: 7,
		Self:       1,
		Partitions: map[int32]int32{0: 6, 1: 2},
		Hosts: []Host{
			{MemberID: "brook-1-aaaa", Endpoint: "h1:8080", Tasks: []TaskID{{0, 0}, {0, 3}, {1, 1}}},
			{MemberID: "brook-2-bbbb", Endpoint: "h2:8080", Tasks: []TaskID{{0, 1}, {0, 4}}},
			{MemberID: "brook-3-cccc", Endpoint: "", Tasks: []TaskID{}},
			{MemberID: "brook-4-dddd", Endpoint: "h4:8080", Tasks: []TaskID{{0, 2}, {0, 5}, {1, 0}}},
		},
	}
}

func TestMemberDataRoundTrip(t *testing.T) {
	for _, d := range []MemberData{sampleMember(), {Generation: -1}, {Endpoint: "ü:1", Generation: 1 << 30}} {
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
		if !reflect.DeepEqual(got, want) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, want)
		}
	}
}

func TestAssignmentRoundTrip(t *testing.T) {
	a := sampleAssignment()
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAssignment(b)
	if err != nil {
		t.Fatal(err)
	}
	// A host without tasks decodes with nil tasks.
	a.Hosts[2].Tasks = nil
	if !reflect.DeepEqual(got, a) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, a)
	}
	if h, ok := got.Owner(TaskID{1, 0}); !ok || h.Endpoint != "h4:8080" {
		t.Errorf("Owner(1_0) = %+v, %v", h, ok)
	}
	if _, ok := got.Owner(TaskID{5, 0}); ok {
		t.Error("Owner of an unknown task")
	}
	if !slices.Equal(got.Local(), []TaskID{{0, 1}, {0, 4}}) {
		t.Errorf("Local = %v", got.Local())
	}
	// Size: strings plus about two bytes per task and a few per host.
	limit := 16
	for _, h := range a.Hosts {
		limit += len(h.MemberID) + len(h.Endpoint) + 3 + 2*len(h.Tasks)
	}
	if len(b) > limit {
		t.Errorf("encoded assignment is %d bytes, want at most %d", len(b), limit)
	}
}

func TestAssignmentMarshalRejectsInconsistency(t *testing.T) {
	a := sampleAssignment()
	a.Hosts[2].Tasks = []TaskID{{0, 0}}
	if _, err := a.MarshalBinary(); err == nil {
		t.Error("a task under two hosts was encoded")
	}
	a = sampleAssignment()
	a.Self = 4
	if _, err := a.MarshalBinary(); err == nil {
		t.Error("Self out of range was encoded")
	}
	a.Self = -1
	b, err := a.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeAssignment(b)
	if err != nil || got.Self != -1 || got.Local() != nil {
		t.Errorf("Self -1: %+v, %v", got, err)
	}
}

// TestForwardCompatible: a later format version that appends fields is
// read by this decoder; the same bytes under version 1 are rejected.
func TestForwardCompatible(t *testing.T) {
	m, _ := sampleMember().MarshalBinary()
	a, _ := sampleAssignment().MarshalBinary()
	for name, b := range map[string][]byte{"member": m, "assignment": a} {
		future := append(slices.Clone(b), 0x05, 'n', 'e', 'w', 0x01)
		future[1] = 2
		var err error
		if name == "member" {
			var d MemberData
			d, err = DecodeMemberData(future)
			if err == nil && d.Endpoint != sampleMember().Endpoint {
				t.Errorf("member v2 read as %+v", d)
			}
		} else {
			var d Assignment
			d, err = DecodeAssignment(future)
			if err == nil && len(d.Hosts) != 4 {
				t.Errorf("assignment v2 read as %+v", d)
			}
		}
		if err != nil {
			t.Errorf("%s v2: %v", name, err)
		}
		future[1] = 1
		if name == "member" {
			_, err = DecodeMemberData(future)
		} else {
			_, err = DecodeAssignment(future)
		}
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s v1 with trailing bytes: err = %v", name, err)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	m, _ := sampleMember().MarshalBinary()
	a, _ := sampleAssignment().MarshalBinary()
	cases := map[string][]byte{
		"empty":                nil,
		"one byte":             {kindMember},
		"version 0":            {kindMember, 0},
		"assignment as member": a,
		"truncated":            m[:len(m)-3],
		"huge count":           binary.AppendUvarint([]byte{kindMember, 1, 0, 0}, 1<<40),
		"huge string":          binary.AppendUvarint([]byte{kindMember, 1}, 1<<40),
		"generation overflow":  binary.AppendVarint([]byte{kindMember, 1, 0}, 1<<40),
		"negative task":        binary.AppendVarint(binary.AppendUvarint([]byte{kindMember, 1, 0, 1}, 1), -3),
	}
	for name, b := range cases {
		if _, err := DecodeMemberData(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// Duplicated task under two hosts.
	dup := []byte{kindAssignment, 1}
	dup = binary.AppendVarint(dup, 1)
	dup = binary.AppendUvarint(dup, 0)
	dup = binary.AppendUvarint(dup, 0)
	dup = binary.AppendUvarint(dup, 2)
	for _, id := range []string{"a", "b"} {
		dup = appendString(dup, id)
		dup = appendString(dup, "")
		dup = binary.AppendUvarint(dup, 1)
		dup = appendTask(dup, TaskID{0, 0})
	}
	if _, err := DecodeAssignment(dup); !errors.Is(err, ErrMalformed) {
		t.Errorf("duplicate task: err = %v", err)
	}
	if _, err := DecodeAssignment(m); !errors.Is(err, ErrMalformed) {
		t.Errorf("member data as assignment: err = %v", err)
	}
}

func FuzzDecodeMemberData(f *testing.F) {
	m, _ := sampleMember().MarshalBinary()
	f.Add(m)
	f.Add([]byte{kindMember, 1, 0, 1, 0, 0})
	f.Add([]byte{kindMember, 2})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeMemberData(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		d2, err := DecodeMemberData(b)
		if err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", d, err)
		}
		if d.Endpoint != d2.Endpoint || d.Generation != d2.Generation || !slices.Equal(d.Owned, d2.Owned) ||
			!maps.EqualFunc(d.Restored, d2.Restored, maps.Equal) {
			t.Fatalf("re-decode differs: %+v vs %+v", d, d2)
		}
	})
}

func FuzzDecodeAssignment(f *testing.F) {
	a, _ := sampleAssignment().MarshalBinary()
	f.Add(a)
	f.Add([]byte{kindAssignment, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := DecodeAssignment(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		_ = d.Local()
		for _, h := range d.Hosts {
			for _, task := range h.Tasks {
				if o, ok := d.Owner(task); !ok || o.MemberID != h.MemberID {
					t.Fatalf("Owner(%s) = %+v, want %q", task, o, h.MemberID)
				}
			}
		}
		b, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded assignment does not encode: %v", err)
		}
		if data[1] == formatVersion && !bytes.Equal(b, data) {
			t.Fatalf("version-1 encoding is not canonical:\n in %x\nout %x", data, b)
		}
	})
}
