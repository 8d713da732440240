package query_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// pagingStore is one store of the paging test: its key type's encoder
// and the model of its content (serialized key -> value).
type pagingStore struct {
	name  string
	topic string
	// param renders a serialized key as the HTTP key text of the store.
	param func(kb []byte) string
	model map[string]string
	// prefixes are prefix= values (serialized) worth asking for.
	prefixes [][]byte
}

// pagingPage is one range answer as the test reads it.
type pagingPage struct {
	Entries []struct {
		KB    []byte          `json:"kb"`
		Value json.RawMessage `json:"value"`
	} `json:"entries"`
	Next string `json:"next"`
	More *bool  `json:"more"`
}

// pagingByteKeys returns random byte strings built from the bytes that
// matter to ordering and tokens (0x00, 0xff, '/', '.'), plus the keys that
// broke paging before: the empty key, keys that are prefixes of others,
// keys ending in 0x00 (the token's successor) and 0xff.
func pagingByteKeys(rng *rand.Rand, n int) [][]byte {
	fixed := []string{"", "\x00", "\x00\x00", "a", "a\x00", "a\x00\x00", "a\x01", "a\xff", "ab", "abc", "b", "\xff", "\xff\xff", "\xff\x00", "a//b", ".", "..", "a/b"}
	seen := map[string]bool{}
	var out [][]byte
	for _, k := range fixed {
		seen[k] = true
		out = append(out, []byte(k))
	}
	alphabet := []byte{0x00, 0x01, 'a', 'b', '/', '.', 0x7f, 0xfe, 0xff}
	for len(out) < n {
		k := make([]byte, rng.IntN(5))
		for i := range k {
			k[i] = alphabet[rng.IntN(len(alphabet))]
		}
		if !seen[string(k)] {
			seen[string(k)] = true
			out = append(out, k)
		}
	}
	return out
}

func pagingIntKeys(rng *rand.Rand, n int) [][]byte {
	fixed := []int32{0, 1, -1, 255, 256, -256, math.MinInt32, math.MaxInt32, 0x00ff00ff, -0x00ff0100}
	seen := map[int32]bool{}
	var out [][]byte
	add := func(v int32) {
		if !seen[v] {
			seen[v] = true
			out = append(out, binary.BigEndian.AppendUint32(nil, uint32(v)))
		}
	}
	for _, v := range fixed {
		add(v)
	}
	for len(out) < n {
		if rng.IntN(2) == 0 {
			add(int32(rng.IntN(600) - 300))
		} else {
			add(int32(rng.Uint32()))
		}
	}
	return out
}

// pagingTopology materializes three tables: string, []byte and int32
// keys.
func pagingTopology(t *testing.T, topics [3]string) *topology.Topology {
	t.Helper()
	b := topology.New()
	topology.Table(b, "str", topics[0], serde.String(), serde.String())
	topology.Table(b, "bin", topics[1], serde.Bytes(), serde.String())
	topology.Table(b, "int", topics[2], serde.Int32(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// TestQueryRangePagingModel is a property test of range paging over HTTP:
// for random key sets of string, []byte and int32 stores (with the empty
// key, keys that are prefixes of others, keys with 0x00 and 0xff bytes),
// paging with every page size from 1 to past the number of keys, with
// and without from/to/prefix bounds, returns every key of the range
// exactly once, in serialized-key order, each page at most limit keys,
// and the last page says there is no more. It runs on one instance, then
// gathered across three instances whose range limits differ (so that the
// gathering instance must not page past keys another instance did not
// return), asking a different instance for each page.
func TestQueryRangePagingModel(t *testing.T) {
	cleanupClient(t)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BROOK_PAGING_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = n
	}
	t.Logf("seed %d (BROOK_PAGING_SEED=%d reproduces)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	const parts = 4
	b := testutil.NewBroker(t)
	var topics [3]string
	for i, n := range []string{"str", "bin", "int"} {
		topics[i] = testutil.TopicName(t, n)
		b.CreateTopic(t, topics[i], parts, map[string]string{"cleanup.policy": "compact"})
	}
	text := func(kb []byte) string { return string(kb) }
	stores := []*pagingStore{
		{name: "str", topic: topics[0], param: text},
		{name: "bin", topic: topics[1], param: base64.StdEncoding.EncodeToString},
		{name: "int", topic: topics[2], param: func(kb []byte) string {
			return strconv.Itoa(int(int32(binary.BigEndian.Uint32(kb))))
		}},
	}
	keySets := [][][]byte{pagingByteKeys(rng, 36), pagingByteKeys(rng, 36), pagingIntKeys(rng, 30)}
	for i, st := range stores {
		st.model = map[string]string{}
		var msgs []*sarama.ProducerMessage
		for j, kb := range keySets[i] {
			v := fmt.Sprintf("v%d-%d", i, j)
			st.model[string(kb)] = v
			p, err := partition.ForKey(kb, parts)
			if err != nil {
				t.Fatal(err)
			}
			msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.ByteEncoder(bytes.Clone(kb)), Value: sarama.StringEncoder(v), Partition: p})
		}
		b.Produce(t, st.topic, msgs...)
		if st.name != "int" {
			st.prefixes = [][]byte{{}, []byte("a"), []byte("a\x00"), {0xff}, {'a', 0xff}, []byte("zz")}
		} else {
			st.prefixes = [][]byte{keySets[i][0], keySets[i][rng.IntN(len(keySets[i]))]}
		}
	}

	appID := testutil.TopicName(t, "app")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := func() topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t)}
	}
	insts := []*queryInstance{startQueryInstance(t, ctx, pagingTopology(t, topics), cfg())}
	waitAllKeys(t, insts, stores)
	t.Run("one-instance", func(t *testing.T) { checkPaging(t, rng, insts, stores) })

	// Two more instances, with smaller range limits than the first: a
	// page gathered by the first asks them for more keys than they give.
	insts = append(insts,
		startQueryInstance(t, ctx, pagingTopology(t, topics), cfg(), query.WithRangeLimits(2, 3)),
		startQueryInstance(t, ctx, pagingTopology(t, topics), cfg(), query.WithRangeLimits(5, 5)))
	eventually(t, 90*time.Second, func() error {
		for _, qi := range insts {
			ins, _, ok := qi.app.Instances()
			if !ok || len(ins) != 3 {
				return fmt.Errorf("%s sees %d instances", qi.endpoint, len(ins))
			}
			for _, in := range ins {
				if len(in.Tasks) == 0 {
					return fmt.Errorf("instance %s has no tasks", in.Endpoint)
				}
			}
		}
		return nil
	})
	waitAllKeys(t, insts, stores)
	t.Run("three-instances", func(t *testing.T) { checkPaging(t, rng, insts, stores) })
	t.Run("keys", func(t *testing.T) { checkKeyPaths(t, insts, stores) })

	cancel()
	for _, qi := range insts {
		if err := <-qi.done; err != nil {
			t.Fatal(err)
		}
	}
}

// waitAllKeys waits until the instances together hold every key of
// every store (read through their typed local views, which do not page)
// and each of them is ready.
func waitAllKeys(t *testing.T, insts []*queryInstance, stores []*pagingStore) {
	t.Helper()
	eventually(t, 90*time.Second, func() error {
		for _, qi := range insts {
			if a, err := httpGetErr(qi.endpoint, "/ready", nil); err != nil || a.status != http.StatusOK {
				return fmt.Errorf("%s not ready: %v %s", qi.endpoint, err, a.body)
			}
		}
		for _, st := range stores {
			total := 0
			for _, qi := range insts {
				var n int
				var err error
				switch st.name {
				case "str":
					n, err = countLocal[string](qi.app, st.name)
				case "bin":
					n, err = countLocal[[]byte](qi.app, st.name)
				default:
					n, err = countLocal[int32](qi.app, st.name)
				}
				if err != nil {
					return err
				}
				total += n
			}
			if total != len(st.model) {
				return fmt.Errorf("store %s: the instances hold %d of %d keys", st.name, total, len(st.model))
			}
		}
		return nil
	})
}

func countLocal[K any](app *topology.App, name string) (int, error) {
	v, err := topology.QueryKeyValue[K, string](app, name)
	if err != nil {
		return 0, err
	}
	it, err := v.All()
	if err != nil {
		return 0, err
	}
	defer it.Close()
	n := 0
	for it.Next() {
		n++
	}
	return n, it.Err()
}

// pagingBounds is one set of range parameters and its interval in the
// model: keys in [lo, hi) (nil: unbounded).
type pagingBounds struct {
	query  url.Values
	lo, hi []byte
}

func (pb pagingBounds) want(st *pagingStore) []string {
	var out []string
	for k := range st.model {
		kb := []byte(k)
		if pb.lo != nil && bytes.Compare(kb, pb.lo) < 0 || pb.hi != nil && bytes.Compare(kb, pb.hi) >= 0 {
			continue
		}
		out = append(out, k)
	}
	slices.Sort(out) // Go strings compare as bytes
	return out
}

func pagingBoundSets(rng *rand.Rand, st *pagingStore) []pagingBounds {
	keys := make([][]byte, 0, len(st.model))
	for k := range st.model {
		keys = append(keys, []byte(k))
	}
	slices.SortFunc(keys, bytes.Compare)
	pick := func() []byte { return keys[rng.IntN(len(keys))] }
	out := []pagingBounds{{query: url.Values{}}}
	for range 3 {
		a, b := pick(), pick()
		if bytes.Compare(a, b) > 0 {
			a, b = b, a
		}
		out = append(out,
			pagingBounds{query: url.Values{"from": {st.param(a)}, "to": {st.param(b)}}, lo: a, hi: b},
			pagingBounds{query: url.Values{"from": {st.param(a)}}, lo: a},
			pagingBounds{query: url.Values{"to": {st.param(b)}}, hi: b})
	}
	if st.name != "int" {
		// The empty key as a bound: from= includes it, to= is empty.
		out = append(out,
			pagingBounds{query: url.Values{"from": {""}}, lo: []byte{}},
			pagingBounds{query: url.Values{"to": {""}}, hi: []byte{}},
			pagingBounds{query: url.Values{"from": {""}, "to": {st.param([]byte("a"))}}, lo: []byte{}, hi: []byte("a")})
	}
	for _, p := range st.prefixes {
		pb := pagingBounds{query: url.Values{"prefix": {st.param(p)}}}
		if len(p) > 0 {
			pb.lo, pb.hi = p, store.PrefixEnd(p)
		}
		out = append(out, pb)
	}
	return out
}

// checkPaging pages through every bound set of every store with page
// sizes from 1 to past the model's size, asking the instances in turn.
func checkPaging(t *testing.T, rng *rand.Rand, insts []*queryInstance, stores []*pagingStore) {
	ask := 0
	for _, st := range stores {
		for _, pb := range pagingBoundSets(rng, st) {
			want := pb.want(st)
			sizes := []int{1, 2, 3, len(want), len(want) + 1, 1 + rng.IntN(len(st.model)+1)}
			if len(pb.query) == 0 || pb.query.Has("from") && pb.query.Has("to") {
				sizes = sizes[:0]
				for n := 1; n <= len(want)+1; n++ {
					sizes = append(sizes, n)
				}
			}
			for _, limit := range sizes {
				if limit < 1 {
					continue
				}
				var got []string
				var last *bool
				token := ""
				for page := 0; ; page++ {
					if page > len(want)+1 {
						t.Fatalf("%s %v limit %d: paging does not end (got %d of %d keys)", st.name, pb.query, limit, len(got), len(want))
					}
					q := url.Values{}
					for k, v := range pb.query {
						q[k] = v
					}
					q.Set("limit", strconv.Itoa(limit))
					if token != "" {
						q.Set("token", token)
					}
					qi := insts[ask%len(insts)]
					ask++
					a := httpGet(t, qi.endpoint, "/stores/"+st.name+"/range?"+q.Encode(), nil)
					if a.status != http.StatusOK {
						t.Fatalf("%s via %s ?%s: %d %s", st.name, qi.endpoint, q.Encode(), a.status, a.body)
					}
					var pg pagingPage
					if err := json.Unmarshal(a.body, &pg); err != nil {
						t.Fatalf("%s: %v", a.body, err)
					}
					if len(pg.Entries) > limit {
						t.Fatalf("%s ?%s: %d entries, over the limit", st.name, q.Encode(), len(pg.Entries))
					}
					last = pg.More
					if pg.More != nil && *pg.More != (pg.Next != "") {
						t.Fatalf("%s ?%s: more %v with next %q: %s", st.name, q.Encode(), pg.More, pg.Next, a.body)
					}
					if pg.Next != "" && len(pg.Entries) == 0 {
						t.Fatalf("%s ?%s: an empty page that is not the last", st.name, q.Encode())
					}
					for _, e := range pg.Entries {
						var v string
						if err := json.Unmarshal(e.Value, &v); err != nil || v != st.model[string(e.KB)] {
							t.Fatalf("%s: key %q has value %s, want %q", st.name, e.KB, e.Value, st.model[string(e.KB)])
						}
						got = append(got, string(e.KB))
					}
					if pg.Next == "" {
						break
					}
					token = pg.Next
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s %v limit %d: paged %d keys %q; want %d keys %q", st.name, pb.query, limit, len(got), got, len(want), want)
				}
				if last == nil || *last {
					t.Fatalf("%s %v limit %d: the last page does not say \"more\": false", st.name, pb.query, limit)
				}
			}
		}
	}
}

// checkKeyPaths gets every key of every store through every instance by
// its path: escaped, and for the string keys "a//b", "." and ".." also
// literally. The path is a key, not a path to clean: a redirect to a
// cleaned path would answer for another key.
func checkKeyPaths(t *testing.T, insts []*queryInstance, stores []*pagingStore) {
	get := func(qi *queryInstance, st *pagingStore, path, kb string) {
		t.Helper()
		a := httpGet(t, qi.endpoint, path, nil)
		var ka struct {
			Value json.RawMessage `json:"value"`
		}
		var v string
		if a.status != http.StatusOK || json.Unmarshal(a.body, &ka) != nil || json.Unmarshal(ka.Value, &v) != nil || v != st.model[kb] {
			t.Fatalf("GET %s via %s: %d %s; want value %q", path, qi.endpoint, a.status, a.body, st.model[kb])
		}
	}
	for _, qi := range insts {
		for _, st := range stores {
			for kb := range st.model {
				get(qi, st, "/stores/"+st.name+"/keys/"+url.PathEscape(st.param([]byte(kb))), kb)
			}
		}
		for _, k := range []string{"a//b", ".", "..", "a/b", ""} {
			get(qi, stores[0], "/stores/str/keys/"+k, k)
		}
	}
}
