package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// strSerde and u64Serde are minimal test serdes (the serde package owns the
// real ones).
type strSerde struct{}

func (strSerde) Serialize(_ string, v string) ([]byte, error) { return []byte(v), nil }
func (strSerde) Deserialize(_ string, b []byte) (string, error) {
	return string(b), nil
}

type u64Serde struct{}

func (u64Serde) Serialize(_ string, v uint64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, v), nil
}
func (u64Serde) Deserialize(_ string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("u64: need 8 bytes, got %d", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// nullableSerde serializes "" as nil (a Kafka null).
type nullableSerde struct{ strSerde }

func (nullableSerde) Serialize(_ string, v string) ([]byte, error) {
	if v == "" {
		return nil, nil
	}
	return []byte(v), nil
}

// recorder is a ChangelogWriter that keeps what it was sent.
type recorder struct {
	mu   sync.Mutex
	recs []logRec
	fail error
}

type logRec struct {
	topic     string
	partition int32
	key       string
	value     []byte
}

func (r *recorder) SendChangelog(topic string, partition int32, key, value []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	var v []byte
	if value != nil {
		v = append([]byte{}, value...)
	}
	r.recs = append(r.recs, logRec{topic, partition, string(key), v})
	return nil
}

func TestKeyValueStoreTyped(t *testing.T) {
	e := NewMemoryEngine()
	defer mustClose(t, e)
	s := NewKeyValueStore[uint64, string]("counts", e, u64Serde{}, strSerde{})
	if s.Name() != "counts" {
		t.Fatalf("Name = %q", s.Name())
	}
	for _, k := range []uint64{300, 2, 1 << 40, 7} {
		if err := s.Put(k, fmt.Sprint("v", k)); err != nil {
			t.Fatal(err)
		}
	}
	v, found, err := s.Get(7)
	if err != nil || !found || v != "v7" {
		t.Fatalf("Get(7) = %q %v %v", v, found, err)
	}
	if _, found, _ := s.Get(8); found {
		t.Fatal("Get(8) found")
	}
	// Big-endian keys keep numeric order.
	assertTyped(t, func() (Iterator[uint64, string], error) { return s.All() }, []uint64{2, 7, 300, 1 << 40})
	assertTyped(t, func() (Iterator[uint64, string], error) { return s.Range(3, 1<<40) }, []uint64{7, 300})
	assertTyped(t, func() (Iterator[uint64, string], error) { return s.ReverseRange(0, 301) }, []uint64{300, 7, 2})

	existing, found, err := s.PutIfAbsent(7, "other")
	if err != nil || !found || existing != "v7" {
		t.Fatalf("PutIfAbsent(present) = %q %v %v", existing, found, err)
	}
	if _, found, err := s.PutIfAbsent(8, "v8"); err != nil || found {
		t.Fatalf("PutIfAbsent(absent) = %v %v", found, err)
	}
	if v, _, _ := s.Get(8); v != "v8" {
		t.Fatalf("after PutIfAbsent: %q", v)
	}
	if err := s.Delete(2); err != nil {
		t.Fatal(err)
	}
	if n, err := s.ApproximateCount(); err != nil || n != 4 {
		t.Fatalf("ApproximateCount = %d %v, want 4", n, err)
	}
}

func TestKeyValueStorePrefix(t *testing.T) {
	e := NewMemoryEngine()
	defer mustClose(t, e)
	s := NewKeyValueStore[string, string]("p", e, strSerde{}, strSerde{})
	for _, k := range []string{"card:1", "card:2", "cards", "card", "cust:1", "car"} {
		if err := s.Put(k, k); err != nil {
			t.Fatal(err)
		}
	}
	it, err := s.Prefix("card:")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for it.Next() {
		got = append(got, it.Key())
	}
	mustCloseIter(t, it)
	if fmt.Sprint(got) != "[card:1 card:2]" {
		t.Fatalf("Prefix(card:) = %q", got)
	}
	if got := PrefixEnd([]byte{'a', 0xff, 0xff}); string(got) != "b" {
		t.Fatalf("PrefixEnd = %q", got)
	}
	if got := PrefixEnd([]byte{0xff}); got != nil {
		t.Fatalf("PrefixEnd(ff) = %q, want nil", got)
	}
}

func TestKeyValueStoreChangelog(t *testing.T) {
	e := NewMemoryEngine()
	defer mustClose(t, e)
	rec := &recorder{}
	topic := ChangelogTopic("app", "dedup")
	if topic != "app-dedup-changelog" {
		t.Fatalf("ChangelogTopic = %q", topic)
	}
	s := NewKeyValueStore[string, string]("dedup", e, strSerde{}, nullableSerde{}, WithChangelog(topic, 3, rec))
	if err := s.Put("a", "1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutIfAbsent("a", "2"); err != nil { // present: no write
		t.Fatal(err)
	}
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Put("b", ""); err != nil { // nil bytes: a tombstone
		t.Fatal(err)
	}
	want := []logRec{{topic, 3, "a", []byte("1")}, {topic, 3, "a", nil}, {topic, 3, "b", nil}}
	if fmt.Sprint(rec.recs) != fmt.Sprint(want) || rec.recs[1].value != nil || rec.recs[2].value != nil {
		t.Fatalf("changelog = %v, want %v", rec.recs, want)
	}
	rec.fail = errors.New("producer down")
	if err := s.Put("c", "1"); !errors.Is(err, rec.fail) {
		t.Fatalf("Put with failing changelog = %v", err)
	}
}

func TestKeyValueStoreDecodeError(t *testing.T) {
	e := NewMemoryEngine()
	defer mustClose(t, e)
	mustPut(t, e, "short", "x")
	s := NewKeyValueStore[uint64, string]("bad", e, u64Serde{}, strSerde{})
	it, err := s.All()
	if err != nil {
		t.Fatal(err)
	}
	if it.Next() {
		t.Fatal("Next succeeded on an undecodable key")
	}
	if it.Err() == nil {
		t.Fatal("no error for undecodable key")
	}
	mustCloseIter(t, it)
}

func assertTyped(t *testing.T, open func() (Iterator[uint64, string], error), want []uint64) {
	t.Helper()
	it, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer mustCloseIter(t, it)
	var got []uint64
	for it.Next() {
		if it.Value() != fmt.Sprint("v", it.Key()) {
			t.Fatalf("value of %d = %q", it.Key(), it.Value())
		}
		got = append(got, it.Key())
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("keys = %v, want %v", got, want)
	}
}
