package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
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

// queryInstance is one App with its query handler served on loopback.
type queryInstance struct {
	app      *topology.App
	endpoint string
	srv      *http.Server
	done     <-chan error
	served   chan struct{}
}

// startQueryInstance starts an App whose QueryEndpoint is a loopback
// listener serving its QueryHandler.
func startQueryInstance(t *testing.T, ctx context.Context, topo *topology.Topology, cfg topology.Config, opts ...query.Option) *queryInstance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.QueryEndpoint = ln.Addr().String()
	app, done := startApp(t, ctx, topo, cfg)
	qi := &queryInstance{app: app, endpoint: cfg.QueryEndpoint, done: done, served: make(chan struct{})}
	qi.srv = &http.Server{Handler: app.QueryHandler(opts...), ReadHeaderTimeout: 5 * time.Second}
	go func() { defer close(qi.served); _ = qi.srv.Serve(ln) }()
	t.Cleanup(qi.stop)
	return qi
}

func (qi *queryInstance) stop() {
	_ = qi.srv.Close()
	<-qi.served
	_ = qi.app.Close()
}

var testClient = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{}}

func partitionOf(key string, n int32) int32 {
	p, err := partition.ForKey([]byte(key), n)
	if err != nil {
		panic(err)
	}
	return p
}

func cleanupClient(t *testing.T) {
	t.Cleanup(func() { testClient.Transport.(*http.Transport).CloseIdleConnections() })
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func httpGet(t *testing.T, endpoint, path string, header map[string]string) answer {
	t.Helper()
	a, err := httpGetErr(endpoint, path, header)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// httpGetErr is httpGet for goroutines other than the test's.
func httpGetErr(endpoint, path string, header map[string]string) (answer, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+endpoint+path, nil)
	if err != nil {
		return answer{}, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("GET %s%s: %w", endpoint, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	return answer{resp.StatusCode, resp.Header, body}, nil
}

type keyAnswer struct {
	Key       string          `json:"key"`
	Value     json.RawMessage `json:"value"`
	Partition int32           `json:"partition"`
	Host      string          `json:"host"`
}

type rangeAnswer struct {
	Entries []struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"entries"`
	Next string `json:"next"`
}

// eventually retries f until it returns nil or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestQueryThreeInstances runs three instances of a counting app and
// checks that every key is served with the right count by every
// instance's handler (forwarded to its owner when needed), that a range
// through one instance returns the union of all instances' keys page by
// page, and the typed local view and metadata.
func TestQueryThreeInstances(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 6, nil)
	b.CreateTopic(t, out, 6, nil)
	const keys, perKey = 60, 5
	produceKeysTB(t, b, in, 6, keys, perKey)

	appID := testutil.TopicName(t, "app")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var insts []*queryInstance
	for i := 0; i < 3; i++ {
		insts = append(insts, startQueryInstance(t, ctx, countTopology(t, in, out), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
		}))
	}
	waitCounts(t, b, out, keys, perKey, 90*time.Second)

	// Every key through every instance.
	eventually(t, 60*time.Second, func() error {
		for _, qi := range insts {
			for k := 0; k < keys; k++ {
				key := fmt.Sprintf("key-%03d", k)
				a := httpGet(t, qi.endpoint, "/stores/counts/keys/"+key, nil)
				if a.status != http.StatusOK {
					return fmt.Errorf("%s via %s: %d %s", key, qi.endpoint, a.status, a.body)
				}
				var ka keyAnswer
				if err := json.Unmarshal(a.body, &ka); err != nil {
					t.Fatalf("%s: %v", a.body, err)
				}
				if ka.Key != key || string(ka.Value) != fmt.Sprint(perKey) {
					return fmt.Errorf("%s via %s: got %s", key, qi.endpoint, a.body)
				}
				if a.header.Get("X-Brook-Served-By") != ka.Host {
					t.Fatalf("served-by header %q, answer host %q", a.header.Get("X-Brook-Served-By"), ka.Host)
				}
			}
		}
		return nil
	})

	// Each instance hosts some of the keys, and answers for the others
	// come from their owners.
	hosts := map[string]int{}
	for k := 0; k < keys; k++ {
		a := httpGet(t, insts[0].endpoint, fmt.Sprintf("/stores/counts/keys/key-%03d", k), nil)
		var ka keyAnswer
		_ = json.Unmarshal(a.body, &ka)
		hosts[ka.Host]++
		md := httpGet(t, insts[1].endpoint, fmt.Sprintf("/stores/counts/metadata?key=key-%03d", k), nil)
		var m struct {
			Endpoint  string `json:"endpoint"`
			Partition int32  `json:"partition"`
		}
		if err := json.Unmarshal(md.body, &m); err != nil || md.status != http.StatusOK {
			t.Fatalf("metadata: %d %s", md.status, md.body)
		}
		if m.Endpoint != ka.Host || m.Partition != ka.Partition {
			t.Fatalf("metadata says %s/%d, the key was served by %s/%d", m.Endpoint, m.Partition, ka.Host, ka.Partition)
		}
	}
	if len(hosts) != 3 {
		t.Fatalf("keys served by %v; want all three instances", hosts)
	}

	// A range through one instance, paged, is the union of all.
	var got []string
	token := ""
	pages := 0
	for {
		q := url.Values{"limit": {"7"}}
		if token != "" {
			q.Set("token", token)
		}
		a := httpGet(t, insts[2].endpoint, "/stores/counts/range?"+q.Encode(), nil)
		if a.status != http.StatusOK {
			t.Fatalf("range: %d %s", a.status, a.body)
		}
		var ra rangeAnswer
		if err := json.Unmarshal(a.body, &ra); err != nil {
			t.Fatal(err)
		}
		for _, e := range ra.Entries {
			if string(e.Value) != fmt.Sprint(perKey) {
				t.Fatalf("range: %s = %s", e.Key, e.Value)
			}
			got = append(got, e.Key)
		}
		pages++
		if ra.Next == "" {
			break
		}
		token = ra.Next
		if pages > keys {
			t.Fatal("range does not end")
		}
	}
	var want []string
	for k := 0; k < keys; k++ {
		want = append(want, fmt.Sprintf("key-%03d", k))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("range pages gave %d keys %v; want %d keys in order", len(got), got, len(want))
	}
	if pages != (keys+6)/7 {
		t.Fatalf("%d pages of 7 for %d keys", pages, keys)
	}
	a := httpGet(t, insts[0].endpoint, "/stores/counts/range?prefix=key-01", nil)
	var ra rangeAnswer
	_ = json.Unmarshal(a.body, &ra)
	if a.status != http.StatusOK || len(ra.Entries) != 10 || ra.Entries[0].Key != "key-010" || ra.Next != "" {
		t.Fatalf("prefix: %d %s", a.status, a.body)
	}
	a = httpGet(t, insts[1].endpoint, "/stores/counts/range?from=key-005&to=key-015", nil)
	ra = rangeAnswer{}
	_ = json.Unmarshal(a.body, &ra)
	if a.status != http.StatusOK || len(ra.Entries) != 10 || ra.Entries[0].Key != "key-005" || ra.Entries[9].Key != "key-014" {
		t.Fatalf("from/to: %d %s", a.status, a.body)
	}

	// The typed local views together hold every key once; Get of a key
	// elsewhere names its owner.
	seen := map[string]int64{}
	for _, qi := range insts {
		v, err := topology.QueryKeyValue[string, int64](qi.app, "counts")
		if err != nil {
			t.Fatal(err)
		}
		it, err := v.All()
		if err != nil {
			t.Fatal(err)
		}
		var last string
		for it.Next() {
			if it.Key() <= last {
				t.Fatalf("local All out of order: %q after %q", it.Key(), last)
			}
			last = it.Key()
			if _, dup := seen[it.Key()]; dup {
				t.Fatalf("key %s on two instances", it.Key())
			}
			seen[it.Key()] = it.Value()
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		it.Close()
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%03d", k)
			val, found, err := v.Get(key)
			var nl *query.NotLocalError
			switch {
			case errors.As(err, &nl):
				if nl.Endpoint == qi.endpoint || nl.Endpoint == "" {
					t.Fatalf("NotLocalError names %q", nl.Endpoint)
				}
			case err != nil:
				t.Fatal(err)
			case !found || val != perKey:
				t.Fatalf("Get(%s) = %d, %v", key, val, found)
			}
		}
		md, err := v.Metadata("key-007")
		if err != nil || md.Task == "" || md.Endpoint == "" || md.Local != (md.Endpoint == qi.endpoint) {
			t.Fatalf("Metadata: %+v, %v", md, err)
		}
		ins, _, ok := qi.app.Instances()
		if !ok || len(ins) != 3 {
			t.Fatalf("Instances: %+v", ins)
		}
		self := 0
		for _, in := range ins {
			if in.Self {
				self++
				if in.Endpoint != qi.endpoint || len(in.Tasks) != 2 {
					t.Fatalf("self instance %+v", in)
				}
			}
		}
		if self != 1 {
			t.Fatalf("Instances marks %d as self", self)
		}
		st := v.Status()
		if len(st.Tasks) != 2 || st.Tasks[0].State != "ready" || st.KeyFormat != "string" {
			t.Fatalf("status %+v", st)
		}
	}
	if len(seen) != keys {
		t.Fatalf("local views hold %d keys; want %d", len(seen), keys)
	}
	if _, err := topology.QueryKeyValue[string, string](insts[0].app, "counts"); err == nil {
		t.Fatal("QueryKeyValue with the wrong value type succeeded")
	}

	a = httpGet(t, insts[0].endpoint, "/instances", nil)
	var ins struct {
		Instances []struct {
			Endpoint string   `json:"endpoint"`
			Tasks    []string `json:"tasks"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(a.body, &ins); err != nil || len(ins.Instances) != 3 {
		t.Fatalf("instances: %d %s", a.status, a.body)
	}
	for _, p := range []string{"/health", "/ready", "/stores", "/stores/counts"} {
		if a := httpGet(t, insts[1].endpoint, p, nil); a.status != http.StatusOK {
			t.Fatalf("%s: %d %s", p, a.status, a.body)
		}
	}
	// Freshness: every task has read its source partition to the end.
	eventually(t, 30*time.Second, func() error {
		for _, qi := range insts {
			v, _ := topology.QueryKeyValue[string, int64](qi.app, "counts")
			for _, ts := range v.Status().Tasks {
				if len(ts.Lag) != 1 || ts.Lag[0].Topic != in || ts.Lag[0].Lag != 0 || ts.Lag[0].End == 0 {
					return fmt.Errorf("task %s lag %+v", ts.Task, ts.Lag)
				}
			}
		}
		return nil
	})

	// An owner that cannot be reached: 502 for its keys and for ranges,
	// while keys of reachable owners are still served.
	insts[2].srv.Close()
	<-insts[2].served
	var unreachable, reachable int
	for k := 0; k < keys; k++ {
		key := fmt.Sprintf("key-%03d", k)
		md := httpGet(t, insts[0].endpoint, "/stores/counts/metadata?key="+key, nil)
		var m struct {
			Endpoint string `json:"endpoint"`
		}
		_ = json.Unmarshal(md.body, &m)
		a := httpGet(t, insts[0].endpoint, "/stores/counts/keys/"+key, nil)
		switch {
		case m.Endpoint == insts[2].endpoint && a.status == http.StatusBadGateway:
			unreachable++
		case m.Endpoint != insts[2].endpoint && a.status == http.StatusOK:
			reachable++
		default:
			t.Fatalf("%s held by %s: %d %s", key, m.Endpoint, a.status, a.body)
		}
	}
	if unreachable == 0 || reachable == 0 {
		t.Fatalf("%d keys unreachable, %d reachable", unreachable, reachable)
	}
	if a := httpGet(t, insts[0].endpoint, "/stores/counts/range", nil); a.status != http.StatusBadGateway {
		t.Fatalf("range with an unreachable instance: %d %s", a.status, a.body)
	}
	cancel()
	for _, qi := range insts {
		if err := <-qi.done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueryDuringRestore holds a restore and checks that queries get 503
// with Retry-After (HTTP) and *NotReadyError (typed view) until it ends.
func TestQueryDuringRestore(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "app")
	changelog := store.ChangelogTopic(appID, "counts")
	b.CreateTopic(t, changelog, 2, map[string]string{"cleanup.policy": "compact"})
	var msgs []*sarama.ProducerMessage
	for k := 0; k < 40; k++ {
		v, _ := serde.Int64().Serialize(changelog, int64(k))
		key := fmt.Sprintf("key-%03d", k)
		msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(v), Partition: partitionOf(key, 2)})
	}
	b.Produce(t, changelog, msgs...)

	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	qi := startQueryInstance(t, ctx, countTopology(t, in, out), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t),
		RestoreListener: func(p store.RestoreProgress) {
			once.Do(func() {
				close(held)
				select {
				case <-hold:
				case <-ctx.Done():
				}
			})
		},
	})
	select {
	case <-held:
	case <-time.After(60 * time.Second):
		t.Fatal("restore did not start")
	}
	for _, p := range []string{"/stores/counts/keys/key-001", "/stores/counts/range", "/ready"} {
		a := httpGet(t, qi.endpoint, p, nil)
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s during restore: %d (Retry-After %q) %s", p, a.status, a.header.Get("Retry-After"), a.body)
		}
	}
	if a := httpGet(t, qi.endpoint, "/health", nil); a.status != http.StatusOK {
		t.Fatalf("/health during restore: %d %s", a.status, a.body)
	}
	a := httpGet(t, qi.endpoint, "/stores/counts/keys/key-002", nil)
	var body struct {
		Restoring []query.RestoreStatus `json:"restoring"`
	}
	if err := json.Unmarshal(a.body, &body); err != nil || len(body.Restoring) == 0 ||
		body.Restoring[0].Store != "counts" || body.Restoring[0].Total == 0 {
		t.Fatalf("503 during restore does not report the restore: %s", a.body)
	}
	v, err := topology.QueryKeyValue[string, int64](qi.app, "counts")
	if err != nil {
		t.Fatal(err)
	}
	var nr *query.NotReadyError
	if _, _, err := v.Get("key-001"); !errors.As(err, &nr) {
		t.Fatalf("Get during restore: %v; want *NotReadyError", err)
	}
	if _, err := v.All(); !errors.As(err, &nr) {
		t.Fatalf("All during restore: %v; want *NotReadyError", err)
	}
	close(hold)
	eventually(t, 60*time.Second, func() error {
		for k := 0; k < 40; k++ {
			a := httpGet(t, qi.endpoint, fmt.Sprintf("/stores/counts/keys/key-%03d", k), nil)
			if a.status != http.StatusOK {
				return fmt.Errorf("key-%03d: %d %s", k, a.status, a.body)
			}
			var ka keyAnswer
			_ = json.Unmarshal(a.body, &ka)
			if string(ka.Value) != fmt.Sprint(k) {
				t.Fatalf("key-%03d restored as %s", k, ka.Value)
			}
		}
		return nil
	})
	if a := httpGet(t, qi.endpoint, "/stores/counts/keys/nope", nil); a.status != http.StatusNotFound {
		t.Fatalf("absent key: %d %s", a.status, a.body)
	}
	cancel()
	if err := <-qi.done; err != nil {
		t.Fatal(err)
	}
}

// TestQueryHandlerInputs checks the 4xx answers and the bearer token on an
// App that has not started (every store answer is then 503).
func TestQueryHandlerInputs(t *testing.T) {
	topo := countTopology(t, "in", "out")
	app, err := topology.NewApp(topo, topology.Config{ApplicationID: "q", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h := app.QueryHandler(query.WithBearerToken("s3cret"))
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	for _, c := range []struct {
		path   string
		header map[string]string
		want   int
	}{
		{"/stores", nil, 401},
		{"/stores", map[string]string{"Authorization": "Bearer nope"}, 401},
		{"/stores", auth, 200},
		{"/health", nil, 200},
		{"/ready", nil, 503},
		{"/caught-up", nil, 503}, // not running: no end offsets to compare with
		{"/caught-up?wait=soon", nil, 400},
		{"/caught-up?wait=-1s", nil, 400},
		{"/stores/nope/keys/a", auth, 404},
		{"/stores/counts/keys/a", auth, 503},
		{"/stores/counts/range?limit=x", auth, 400},
		{"/stores/counts/range?limit=-1", auth, 400},
		{"/stores/counts/range?token=%%%", auth, 400},
		{"/stores/counts/range?prefix=a&from=b", auth, 400},
		{"/stores/counts/range?scope=global", auth, 400},
		{"/stores/counts/range", auth, 503},
		{"/stores/counts/metadata", auth, 400},
		{"/stores/counts/metadata?key=a", auth, 503},
		{"/stores/counts/keys/a", map[string]string{"Authorization": "Bearer s3cret", "X-Brook-Hops": "x"}, 400},
		{"/instances", auth, 503},
		{"/" + strings.Repeat("a", 20000), auth, 414},
	} {
		req, err := http.NewRequest(http.MethodGet, "http://x"+c.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: %d %s; want %d", c.path, rec.Code, rec.Body.String(), c.want)
		}
		if c.want == 503 && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", c.path)
		}
	}
}

// TestQueryIteratorInvalidatedByRebalance keeps an iterator of a local
// view open while a second instance joins: the rebalance closes the
// first instance's tasks, which must close the iterator (Err is
// ErrIteratorInvalidated) instead of failing to close the stores; the
// instance then reopens its stores and keeps serving.
func TestQueryIteratorInvalidatedByRebalance(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 4, nil)
	b.CreateTopic(t, out, 4, nil)
	const keys = 40
	produceKeysTB(t, b, in, 4, keys, 1)
	appID := testutil.TopicName(t, "app")
	cfg := func() topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := startQueryInstance(t, ctx, countTopology(t, in, out), cfg())
	waitCounts(t, b, out, keys, 1, 60*time.Second)
	view, err := topology.QueryKeyValue[string, int64](first.app, "counts")
	if err != nil {
		t.Fatal(err)
	}
	var it store.Iterator[string, int64]
	eventually(t, 30*time.Second, func() error {
		var err error
		it, err = view.All()
		return err
	})
	defer it.Close()
	if !it.Next() {
		t.Fatalf("no first key: %v", it.Err())
	}

	second := startQueryInstance(t, ctx, countTopology(t, in, out), cfg())
	// The rebalance closes the first instance's tasks; then both serve.
	eventually(t, 60*time.Second, func() error {
		for _, qi := range []*queryInstance{first, second} {
			if a := httpGet(t, qi.endpoint, "/ready", nil); a.status != http.StatusOK {
				return fmt.Errorf("%s not ready: %s", qi.endpoint, a.body)
			}
		}
		a := httpGet(t, second.endpoint, "/stores/counts/range?limit=1000", nil)
		var ra rangeAnswer
		_ = json.Unmarshal(a.body, &ra)
		if a.status != http.StatusOK || len(ra.Entries) != keys {
			return fmt.Errorf("range: %d, %d entries", a.status, len(ra.Entries))
		}
		return nil
	})
	n := 0
	for it.Next() {
		n++
	}
	if !errors.Is(it.Err(), query.ErrIteratorInvalidated) {
		t.Fatalf("after a rebalance, the iterator read %d more keys and ended with %v; want ErrIteratorInvalidated", n, it.Err())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-first.done:
		t.Fatalf("first instance stopped: %v", err)
	default:
	}
	cancel()
	for _, qi := range []*queryInstance{first, second} {
		if err := <-qi.done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestQueryWhileProcessing reads a store through the handler and the
// typed view while its task keeps writing it, for both engines and under
// exactly-once (run it with -race): counts read for a key never go down,
// and every read succeeds.
func TestQueryWhileProcessing(t *testing.T) {
	for _, tc := range []struct {
		name      string
		inMemory  bool
		guarantee topology.Guarantee
	}{
		{"leveldb", false, topology.AtLeastOnce},
		{"memory", true, topology.AtLeastOnce},
		// Exactly-once reads go through the overlay of uncommitted writes.
		{"leveldb-exactly-once", false, topology.ExactlyOnce},
	} {
		inMemory := tc.inMemory
		t.Run(tc.name, func(t *testing.T) {
			cleanupClient(t)
			b := testutil.NewBroker(t)
			in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
			b.CreateTopic(t, in, 2, nil)
			b.CreateTopic(t, out, 2, nil)
			var opts []topology.StoreOption
			if inMemory {
				opts = append(opts, topology.InMemory())
			}
			bld := topology.New()
			src := topology.Source(bld, "in", in, serde.String(), serde.String())
			topology.KeyValueStore(bld, "counts", serde.String(), serde.Int64(), opts...)
			counts := topology.Process(bld, "count", src, newCounter, topology.WithStores("counts"))
			topology.Sink(bld, "out", out, counts, serde.String(), serde.Int64())
			topo, err := bld.Build()
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			qi := startQueryInstance(t, ctx, topo, topology.Config{
				ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(),
				CommitInterval: 100 * time.Millisecond, Logger: testLogger(t), Guarantee: tc.guarantee,
			})
			const keys, rounds = 10, 30
			produceKeysTB(t, b, in, 2, keys, 1)
			view, err := topology.QueryKeyValue[string, int64](qi.app, "counts")
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, func() error {
				n, err := view.ApproximateCount()
				if err != nil || n < keys {
					return fmt.Errorf("%d keys, %v", n, err)
				}
				return nil
			})

			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 3)
			wg.Add(2)
			go func() { // HTTP reader: counts never go down
				defer wg.Done()
				last := map[string]int64{}
				for {
					select {
					case <-stop:
						return
					default:
					}
					a, err := httpGetErr(qi.endpoint, "/stores/counts/range?limit=100", nil)
					if err != nil {
						errs <- err
						return
					}
					var ra rangeAnswer
					if a.status != http.StatusOK || json.Unmarshal(a.body, &ra) != nil || len(ra.Entries) != keys {
						errs <- fmt.Errorf("range while processing: %d %s", a.status, a.body)
						return
					}
					for _, e := range ra.Entries {
						var n int64
						_ = json.Unmarshal(e.Value, &n)
						if n < last[e.Key] {
							errs <- fmt.Errorf("%s went from %d to %d", e.Key, last[e.Key], n)
							return
						}
						last[e.Key] = n
					}
				}
			}()
			go func() { // typed reader: Get and All
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					if _, found, err := view.Get("key-003"); err != nil || !found {
						errs <- fmt.Errorf("Get while processing: %v, found %v", err, found)
						return
					}
					it, err := view.All()
					if err != nil {
						errs <- err
						return
					}
					n := 0
					for it.Next() {
						n++
					}
					it.Close()
					if it.Err() != nil || n != keys {
						errs <- fmt.Errorf("All while processing: %d keys, %v", n, it.Err())
						return
					}
				}
			}()
			for r := 1; r < rounds; r++ {
				produceKeysTB(t, b, in, 2, keys, 1)
			}
			waitCounts(t, b, out, keys, rounds, 60*time.Second)
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Under exactly-once a query sees a write once its transaction
			// has committed (and waitCounts reads uncommitted output).
			for k := 0; k < keys; k++ {
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					v, found, err := view.Get(fmt.Sprintf("key-%03d", k))
					if err == nil && found && v == rounds {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("key-%03d = %d, %v, %v; want %d", k, v, found, err, rounds)
					}
				}
			}
			cancel()
			if err := <-qi.done; err != nil {
				t.Fatal(err)
			}
		})
	}
}
