package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// winSize is the width of the windows of windowCountTopology.
const winSize = time.Minute

// windowCountTopology counts the records of in per key and one-minute
// window of record time in the window store "win", and per key in the
// key-value store "totals"; it writes each new window count to out.
func windowCountTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	win := topology.WindowStore(b, "win", serde.String(), serde.Int64(), store.WindowOptions{Retention: 24 * time.Hour, Size: winSize})
	totals := topology.KeyValueStore(b, "totals", serde.String(), serde.Int64())
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	p := topology.ProcessFunc(b, "count", src, func(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
		w, err := win.From(ctx)
		if err != nil {
			return err
		}
		tot, err := totals.From(ctx)
		if err != nil {
			return err
		}
		start := r.Timestamp.Truncate(winSize)
		n, _, err := w.Fetch(r.Key, start)
		if err != nil {
			return err
		}
		n++
		if err := w.Put(r.Key, start, n); err != nil {
			return err
		}
		all, _, err := tot.Get(r.Key)
		if err != nil {
			return err
		}
		if err := tot.Put(r.Key, all+1); err != nil {
			return err
		}
		return ctx.Forward(processor.Revalue(r, n))
	}, topology.WithStores(win.Name(), totals.Name()))
	topology.Sink(b, "out", out, p, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// winData is the windows a test writes: keys key-000.. with windows
// minutes 0..windows-1 after t0, key i's window j counting (i+j)%3+1
// records.
type winData struct {
	t0      time.Time
	keys    int
	windows int
}

func newWinData(keys, windows int) winData {
	// Recent, so that a real broker's time retention of the changelog
	// keeps them.
	return winData{t0: time.Now().Add(-time.Hour).Truncate(winSize), keys: keys, windows: windows}
}

func (d winData) key(i int) string       { return fmt.Sprintf("key-%03d", i) }
func (d winData) start(j int) time.Time  { return d.t0.Add(time.Duration(j) * winSize) }
func (d winData) count(i, j int) int64   { return int64((i+j)%3 + 1) }
func (d winData) ms(t time.Time) string  { return fmt.Sprint(t.UnixMilli()) }
func (d winData) rfc(t time.Time) string { return url.QueryEscape(t.UTC().Format(time.RFC3339Nano)) }
func (d winData) last() time.Time        { return d.start(d.windows - 1) }
func (d winData) window(i, j int) winResult {
	return winResult{d.key(i), d.start(j).UnixMilli(), d.count(i, j)}
}

// records returns the input records, each key on its partition of
// partitions, and their number.
func (d winData) produce(t *testing.T, b *testutil.Broker, topic string, partitions int32) int {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < d.keys; i++ {
		for j := 0; j < d.windows; j++ {
			for c := int64(0); c < d.count(i, j); c++ {
				msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(d.key(i)), Value: sarama.StringEncoder("x"),
					Partition: partitionOf(d.key(i), partitions), Timestamp: d.start(j).Add(time.Duration(c) * time.Second)})
			}
		}
	}
	b.Produce(t, topic, msgs...)
	return len(msgs)
}

// all returns every window of keys [0, keys) with starts in windows
// [from, to], by key then start.
func (d winData) all(from, to int) []winResult {
	var out []winResult
	for i := 0; i < d.keys; i++ {
		for j := from; j <= to; j++ {
			out = append(out, d.window(i, j))
		}
	}
	return out
}

// winResult is one window as a test compares it.
type winResult struct {
	Key   string
	Start int64
	Value int64
}

// winEntry is one window of an HTTP answer.
type winEntry struct {
	Key     string `json:"key"`
	Start   string `json:"start"`
	End     string `json:"end"`
	StartMs int64  `json:"start_ms"`
	EndMs   *int64 `json:"end_ms"`
	Value   int64  `json:"value"`
	KB      []byte `json:"kb"`
}

type winAnswer struct {
	Store     string     `json:"store"`
	Key       string     `json:"key"`
	Entries   []winEntry `json:"entries"`
	Partition int32      `json:"partition"`
	Task      string     `json:"task"`
	Host      string     `json:"host"`
	Next      string     `json:"next"`
	More      *bool      `json:"more"`
}

// check validates the shape of each entry (end = start + winSize, RFC
// 3339 times matching the milliseconds) and returns them as winResults.
func (a winAnswer) check(t *testing.T) []winResult {
	t.Helper()
	if a.More == nil || *a.More != (a.Next != "") {
		t.Fatalf("answer has more=%v next=%q", a.More, a.Next)
	}
	var out []winResult
	for _, e := range a.Entries {
		start, err := time.Parse(time.RFC3339Nano, e.Start)
		end, err2 := time.Parse(time.RFC3339Nano, e.End)
		if err != nil || err2 != nil || start.UnixMilli() != e.StartMs || e.EndMs == nil || *e.EndMs != e.StartMs+winSize.Milliseconds() ||
			end.UnixMilli() != *e.EndMs || string(e.KB) != e.Key || !strings.HasSuffix(e.Start, "Z") {
			t.Fatalf("bad window entry %+v", e)
		}
		out = append(out, winResult{e.Key, e.StartMs, e.Value})
	}
	return out
}

// getWindows GETs path and decodes a 200 answer; any other status is
// returned as an error.
func getWindows(t *testing.T, endpoint, path string) (winAnswer, answer, error) {
	t.Helper()
	a := httpGet(t, endpoint, path, nil)
	if a.status != http.StatusOK {
		return winAnswer{}, a, fmt.Errorf("%s via %s: %d %s", path, endpoint, a.status, a.body)
	}
	var wa winAnswer
	if err := json.Unmarshal(a.body, &wa); err != nil {
		t.Fatalf("%s: %v: %s", path, err, a.body)
	}
	return wa, a, nil
}

// pageWindows follows the continuation tokens of a window route from
// path (which has a query string) and returns every window of every page
// and the number of pages.
func pageWindows(t *testing.T, endpoint, path string) ([]winResult, int) {
	t.Helper()
	var got []winResult
	token := ""
	for pages := 1; ; pages++ {
		p := path
		if token != "" {
			p += "&token=" + url.QueryEscape(token)
		}
		wa, _, err := getWindows(t, endpoint, p)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, wa.check(t)...)
		if wa.Next == "" {
			return got, pages
		}
		token = wa.Next
		if pages > 1000 {
			t.Fatal("paging does not end")
		}
	}
}

// viewWindows returns a func that drains a FetchRange iterator of key.
func viewWindows(key string) func(it store.Iterator[time.Time, int64], err error) ([]winResult, error) {
	return func(it store.Iterator[time.Time, int64], err error) ([]winResult, error) {
		if err != nil {
			return nil, err
		}
		defer it.Close()
		var out []winResult
		for it.Next() {
			out = append(out, winResult{key, it.Key().UnixMilli(), it.Value()})
		}
		return out, it.Err()
	}
}

// TestWindowQueryThreeInstances runs three instances of a windowed count
// and checks the window routes through every instance: a key's windows
// (forwarded to its owner, paged by start), every key's windows gathered
// from all instances and paged by key then start, time bounds as RFC 3339
// and epoch milliseconds, empty answers; and the typed views: Fetch and
// FetchRange routed by key, FetchAll over this instance, Metadata and
// Status.
func TestWindowQueryThreeInstances(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 6, nil)
	b.CreateTopic(t, out, 6, nil)
	d := newWinData(24, 5)
	n := d.produce(t, b, in, 6)

	appID := testutil.TopicName(t, "app")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var insts []*queryInstance
	for i := 0; i < 3; i++ {
		insts = append(insts, startQueryInstance(t, ctx, windowCountTopology(t, in, out), topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
		}))
	}
	b.WaitForRecords(t, out, n, false, 90*time.Second)

	// Every key's windows through every instance, bounds in both forms.
	hosts := map[string]int{}
	eventually(t, 60*time.Second, func() error {
		clear(hosts)
		for qi, inst := range insts {
			for i := 0; i < d.keys; i++ {
				from, to := d.rfc(d.t0), d.ms(d.last())
				if qi == 1 {
					from, to = d.ms(d.t0), d.rfc(d.last())
				}
				wa, a, err := getWindows(t, inst.endpoint, fmt.Sprintf("/stores/win/windows/%s?from=%s&to=%s", d.key(i), from, to))
				if err != nil {
					return err
				}
				if want := d.all(0, d.windows-1)[i*d.windows : (i+1)*d.windows]; !slices.Equal(wa.check(t), want) {
					return fmt.Errorf("%s via %s: %s; want %v", d.key(i), inst.endpoint, a.body, want)
				}
				if wa.Key != d.key(i) || wa.Host == "" || a.header.Get("X-Brook-Served-By") != wa.Host || wa.Task == "" || wa.Store != "win" {
					t.Fatalf("%s: answer %s (served by %s)", d.key(i), a.body, a.header.Get("X-Brook-Served-By"))
				}
				md := httpGet(t, inst.endpoint, "/stores/win/metadata?key="+d.key(i), nil)
				var m struct {
					Endpoint  string `json:"endpoint"`
					Partition int32  `json:"partition"`
				}
				if err := json.Unmarshal(md.body, &m); err != nil || md.status != http.StatusOK || m.Endpoint != wa.Host || m.Partition != wa.Partition {
					t.Fatalf("metadata %d %s; the windows were served by %s/%d", md.status, md.body, wa.Host, wa.Partition)
				}
				hosts[wa.Host]++
			}
		}
		return nil
	})
	if len(hosts) != 3 {
		t.Fatalf("windows served by %v; want all three instances", hosts)
	}

	// A key's windows, paged by start: limit 2 of 5 windows is 3 pages,
	// and the token carries on from the last start, whatever from says.
	got, pages := pageWindows(t, insts[0].endpoint, "/stores/win/windows/"+d.key(7)+"?limit=2")
	if want := d.all(0, d.windows-1)[7*d.windows : 8*d.windows]; !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("key paging: %d pages %v; want 3 pages %v", pages, got, want)
	}
	// A narrower range, to inclusive; an empty range; a key without
	// windows: 200 with no entries.
	got, _ = pageWindows(t, insts[1].endpoint, fmt.Sprintf("/stores/win/windows/%s?from=%s&to=%s", d.key(3), d.ms(d.start(1)), d.ms(d.start(2))))
	if want := []winResult{d.window(3, 1), d.window(3, 2)}; !slices.Equal(got, want) {
		t.Fatalf("key windows in [1, 2]: %v; want %v", got, want)
	}
	for _, p := range []string{
		fmt.Sprintf("/stores/win/windows/%s?from=%s", d.key(3), d.ms(d.last().Add(time.Millisecond))),
		fmt.Sprintf("/stores/win/windows/%s?from=%s&to=%s", d.key(3), d.ms(d.last()), d.ms(d.t0)),
		"/stores/win/windows/no-such-key",
		fmt.Sprintf("/stores/win/windows?from=%s", d.ms(d.last().Add(time.Millisecond))),
		fmt.Sprintf("/stores/win/windows?to=%s", d.ms(d.t0.Add(-time.Millisecond))),
		fmt.Sprintf("/stores/win/windows?from=%s&to=%s", d.ms(d.last()), d.ms(d.t0)),
	} {
		wa, a, err := getWindows(t, insts[2].endpoint, p)
		if err != nil {
			t.Fatal(err)
		}
		if len(wa.check(t)) != 0 || !strings.Contains(string(a.body), `"entries":[]`) {
			t.Fatalf("%s: %s; want no entries", p, a.body)
		}
	}

	// Every key's windows through one instance, gathered and paged by key
	// then start.
	got, pages = pageWindows(t, insts[2].endpoint, "/stores/win/windows?limit=7")
	if want := d.all(0, d.windows-1); !slices.Equal(got, want) || pages != (len(want)+6)/7 {
		t.Fatalf("all windows: %d pages of %d windows %v; want %d pages of %v", pages, len(got), got, (len(want)+6)/7, want)
	}
	got, _ = pageWindows(t, insts[0].endpoint, fmt.Sprintf("/stores/win/windows?from=%s&to=%s&limit=1000", d.rfc(d.start(1)), d.rfc(d.start(2))))
	if want := d.all(1, 2); !slices.Equal(got, want) {
		t.Fatalf("all windows in [1, 2]: %v; want %v", got, want)
	}
	// scope=local: one instance's own windows, together all of them once.
	var union []winResult
	for _, inst := range insts {
		local, _ := pageWindows(t, inst.endpoint, "/stores/win/windows?scope=local&limit=5")
		if len(local) == 0 || len(local) == d.keys*d.windows {
			t.Fatalf("%s holds %d of %d windows", inst.endpoint, len(local), d.keys*d.windows)
		}
		union = append(union, local...)
	}
	slices.SortFunc(union, func(a, b winResult) int {
		return strings.Compare(a.Key, b.Key)*2 + int(min(max(a.Start-b.Start, -1), 1))
	})
	if want := d.all(0, d.windows-1); !slices.Equal(union, want) {
		t.Fatalf("local windows together: %v; want %v", union, want)
	}

	// The typed views.
	var fromViews []winResult
	for _, inst := range insts {
		v, err := topology.QueryWindow[string, int64](inst.app, "win")
		if err != nil {
			t.Fatal(err)
		}
		if v.Name() != "win" || v.WindowSize() != winSize {
			t.Fatalf("view %s of size %v", v.Name(), v.WindowSize())
		}
		local := 0
		for i := 0; i < d.keys; i++ {
			key := d.key(i)
			got, err := viewWindows(key)(v.FetchRange(key, d.t0, d.last()))
			md, mdErr := v.Metadata(key)
			if mdErr != nil {
				t.Fatal(mdErr)
			}
			var nl *query.NotLocalError
			switch {
			case errors.As(err, &nl):
				if md.Local || nl.Endpoint != md.Endpoint || nl.Endpoint == inst.endpoint || nl.Partition != md.Partition || nl.Store != "win" {
					t.Fatalf("%s: %v; metadata %+v", key, err, md)
				}
				if _, _, err := v.Fetch(key, d.t0); !errors.As(err, &nl) {
					t.Fatalf("Fetch(%s) elsewhere: %v", key, err)
				}
				continue
			case err != nil:
				t.Fatal(err)
			}
			local++
			if !md.Local || md.Endpoint != inst.endpoint {
				t.Fatalf("%s read here; metadata %+v", key, md)
			}
			if want := d.all(0, d.windows-1)[i*d.windows : (i+1)*d.windows]; !slices.Equal(got, want) {
				t.Fatalf("FetchRange(%s) = %v; want %v", key, got, want)
			}
			if val, found, err := v.Fetch(key, d.start(2)); err != nil || !found || val != d.count(i, 2) {
				t.Fatalf("Fetch(%s, 2) = %d, %v, %v", key, val, found, err)
			}
			if _, found, err := v.Fetch(key, d.start(2).Add(time.Millisecond)); err != nil || found {
				t.Fatalf("Fetch(%s) of no window: %v, %v", key, found, err)
			}
		}
		if local == 0 {
			t.Fatalf("%s holds no keys", inst.endpoint)
		}
		it, err := v.FetchAll(d.t0, d.last())
		if err != nil {
			t.Fatal(err)
		}
		for it.Next() {
			fromViews = append(fromViews, winResult{it.Key().Key, it.Key().Start.UnixMilli(), it.Value()})
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
		st := v.Status()
		if st.Kind != "window" || st.WindowSizeMs != winSize.Milliseconds() || len(st.Tasks) != 2 || st.Tasks[0].State != "ready" || st.KeyFormat != "string" {
			t.Fatalf("status %+v", st)
		}
	}
	slices.SortFunc(fromViews, func(a, b winResult) int {
		return strings.Compare(a.Key, b.Key)*2 + int(min(max(a.Start-b.Start, -1), 1))
	})
	if want := d.all(0, d.windows-1); !slices.Equal(fromViews, want) {
		t.Fatalf("FetchAll of the views together: %v; want %v", fromViews, want)
	}

	// The store listing reports the kinds.
	a := httpGet(t, insts[1].endpoint, "/stores", nil)
	var ls struct {
		Stores []query.StoreStatus `json:"stores"`
	}
	if err := json.Unmarshal(a.body, &ls); err != nil || len(ls.Stores) != 2 ||
		ls.Stores[0].Store != "totals" || ls.Stores[0].Kind != "key-value" || ls.Stores[0].WindowSizeMs != 0 ||
		ls.Stores[1].Store != "win" || ls.Stores[1].Kind != "window" || ls.Stores[1].WindowSizeMs != 60000 {
		t.Fatalf("/stores: %d %s", a.status, a.body)
	}
	if a := httpGet(t, insts[1].endpoint, "/stores/win", nil); a.status != http.StatusOK || !strings.Contains(string(a.body), `"kind":"window","key_type":"string","value_type":"int64","key_format":"string","window_size_ms":60000`) {
		t.Fatalf("/stores/win: %d %s", a.status, a.body)
	}

	// An instance that cannot be reached: 502 for every key's windows.
	insts[2].srv.Close()
	<-insts[2].served
	if a := httpGet(t, insts[0].endpoint, "/stores/win/windows", nil); a.status != http.StatusBadGateway {
		t.Fatalf("all windows with an unreachable instance: %d %s", a.status, a.body)
	}
	cancel()
	for _, qi := range insts {
		if err := <-qi.done; err != nil {
			t.Fatal(err)
		}
	}
}

// TestWindowQueryRebalance starts one instance, opens typed window
// iterators on it, and starts a second: the rebalance closes the tasks
// that move (under the cooperative protocol only those), which must
// invalidate the iterators over them (ErrIteratorInvalidated) rather than
// block or fail the close; an iterator over a task that stays reads on to
// its end. Then the two instances together serve every window.
func TestWindowQueryRebalance(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 4, nil)
	b.CreateTopic(t, out, 4, nil)
	d := newWinData(12, 4)
	n := d.produce(t, b, in, 4)
	appID := testutil.TopicName(t, "app")
	cfg := func() topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t)}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := startQueryInstance(t, ctx, windowCountTopology(t, in, out), cfg())
	b.WaitForRecords(t, out, n, false, 60*time.Second)

	// One instance holds everything.
	eventually(t, 30*time.Second, func() error {
		got, _ := pageWindowsErr(first.endpoint, "/stores/win/windows?limit=1000")
		if !slices.Equal(got, d.all(0, d.windows-1)) {
			return fmt.Errorf("one instance: %v", got)
		}
		return nil
	})
	view, err := topology.QueryWindow[string, int64](first.app, "win")
	if err != nil {
		t.Fatal(err)
	}
	all, err := view.FetchAll(d.t0, d.last())
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	one, err := view.FetchRange(d.key(0), d.t0, d.last())
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	if !all.Next() || !one.Next() {
		t.Fatalf("no first window: %v, %v", all.Err(), one.Err())
	}

	second := startQueryInstance(t, ctx, windowCountTopology(t, in, out), cfg())
	eventually(t, 60*time.Second, func() error {
		for _, qi := range []*queryInstance{first, second} {
			if a := httpGet(t, qi.endpoint, "/ready", nil); a.status != http.StatusOK {
				return fmt.Errorf("%s not ready: %s", qi.endpoint, a.body)
			}
		}
		got, err := pageWindowsErr(second.endpoint, "/stores/win/windows?limit=5")
		if err != nil {
			return err
		}
		if !slices.Equal(got, d.all(0, d.windows-1)) {
			return fmt.Errorf("two instances: %v", got)
		}
		return nil
	})
	for name, it := range map[string]interface {
		Next() bool
		Err() error
		Close() error
	}{"FetchAll": all, "FetchRange": one} {
		n := 0
		for it.Next() {
			n++
		}
		// FetchAll spans every task, and at least one moved; FetchRange
		// reads key 0's task, which may have stayed: then it reads its
		// remaining windows to the end.
		stayed := name == "FetchRange" && it.Err() == nil && n == d.windows-1
		if !stayed && !errors.Is(it.Err(), query.ErrIteratorInvalidated) {
			t.Fatalf("%s after a rebalance read %d more windows and ended with %v; want ErrIteratorInvalidated (or, for a task that stayed, all %d)", name, n, it.Err(), d.windows-1)
		}
		if err := it.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Each key's windows through either instance.
	for _, qi := range []*queryInstance{first, second} {
		for i := 0; i < d.keys; i++ {
			wa, _, err := getWindows(t, qi.endpoint, "/stores/win/windows/"+d.key(i))
			if err != nil {
				t.Fatal(err)
			}
			if got, want := wa.check(t), d.all(0, d.windows-1)[i*d.windows:(i+1)*d.windows]; !slices.Equal(got, want) {
				t.Fatalf("%s via %s: %v; want %v", d.key(i), qi.endpoint, got, want)
			}
		}
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

// pageWindowsErr is pageWindows returning errors, for eventually; it
// does not check the entries' shape.
func pageWindowsErr(endpoint, path string) ([]winResult, error) {
	var got []winResult
	token := ""
	for pages := 0; pages < 1000; pages++ {
		p := path
		if token != "" {
			p += "&token=" + url.QueryEscape(token)
		}
		a, err := httpGetErr(endpoint, p, nil)
		if err != nil {
			return nil, err
		}
		if a.status != http.StatusOK {
			return nil, fmt.Errorf("%s: %d %s", p, a.status, a.body)
		}
		var wa winAnswer
		if err := json.Unmarshal(a.body, &wa); err != nil {
			return nil, err
		}
		for _, e := range wa.Entries {
			got = append(got, winResult{e.Key, e.StartMs, e.Value})
		}
		if wa.Next == "" {
			return got, nil
		}
		token = wa.Next
	}
	return nil, errors.New("paging does not end")
}

// TestWindowQueryDuringRestore holds the restore of a window store's
// changelog and checks that its window routes answer 503 with
// Retry-After and the typed view *NotReadyError until it ends; then the
// restored windows are served.
func TestWindowQueryDuringRestore(t *testing.T) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "app")
	changelog := store.ChangelogTopic(appID, "win")
	b.CreateTopic(t, changelog, 2, map[string]string{"cleanup.policy": "compact,delete",
		"retention.ms": fmt.Sprint((24*time.Hour + topology.WindowChangelogExtraRetention).Milliseconds())})
	d := newWinData(10, 3)
	var msgs []*sarama.ProducerMessage
	for i := 0; i < d.keys; i++ {
		for j := 0; j < d.windows; j++ {
			v, _ := serde.Int64().Serialize(changelog, d.count(i, j))
			msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.ByteEncoder(store.EncodeWindowKey([]byte(d.key(i)), d.start(j).UnixMilli())),
				Value: sarama.ByteEncoder(v), Partition: partitionOf(d.key(i), 2), Timestamp: d.start(j)})
		}
	}
	b.Produce(t, changelog, msgs...)

	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	qi := startQueryInstance(t, ctx, windowCountTopology(t, in, out), topology.Config{
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
	for _, p := range []string{"/stores/win/windows/" + d.key(1), "/stores/win/windows"} {
		a := httpGet(t, qi.endpoint, p, nil)
		if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
			t.Fatalf("%s during restore: %d (Retry-After %q) %s", p, a.status, a.header.Get("Retry-After"), a.body)
		}
	}
	v, err := topology.QueryWindow[string, int64](qi.app, "win")
	if err != nil {
		t.Fatal(err)
	}
	var nr *query.NotReadyError
	if _, _, err := v.Fetch(d.key(1), d.t0); !errors.As(err, &nr) {
		t.Fatalf("Fetch during restore: %v; want *NotReadyError", err)
	}
	if _, err := v.FetchRange(d.key(1), d.t0, d.last()); !errors.As(err, &nr) {
		t.Fatalf("FetchRange during restore: %v; want *NotReadyError", err)
	}
	if _, err := v.FetchAll(d.t0, d.last()); !errors.As(err, &nr) || nr.Store != "win" {
		t.Fatalf("FetchAll during restore: %v; want *NotReadyError", err)
	}
	close(hold)
	eventually(t, 60*time.Second, func() error {
		got, err := pageWindowsErr(qi.endpoint, "/stores/win/windows?limit=4")
		if err != nil {
			return err
		}
		if want := d.all(0, d.windows-1); !slices.Equal(got, want) {
			t.Fatalf("restored windows %v; want %v", got, want)
		}
		return nil
	})
	got, err := viewWindows(d.key(4))(v.FetchRange(d.key(4), d.t0, d.last()))
	if want := d.all(0, d.windows-1)[4*d.windows : 5*d.windows]; err != nil || !slices.Equal(got, want) {
		t.Fatalf("FetchRange after the restore: %v, %v; want %v", got, err, want)
	}
	cancel()
	if err := <-qi.done; err != nil {
		t.Fatal(err)
	}
}

// TestWindowQueryWhileProcessing reads a window store through the
// handler and the typed view while its task keeps writing it, at least
// once and exactly once (whose reads go through the overlay of
// uncommitted writes); run it with -race. Every read succeeds and no
// window's count goes down.
func TestWindowQueryWhileProcessing(t *testing.T) {
	for name, g := range map[string]topology.Guarantee{"at-least-once": topology.AtLeastOnce, "exactly-once": topology.ExactlyOnce} {
		t.Run(name, func(t *testing.T) {
			cleanupClient(t)
			b := testutil.NewBroker(t)
			in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
			b.CreateTopic(t, in, 2, nil)
			b.CreateTopic(t, out, 2, nil)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			qi := startQueryInstance(t, ctx, windowCountTopology(t, in, out), topology.Config{
				ApplicationID: testutil.TopicName(t, "app"), Brokers: b.Addrs(), StateDir: t.TempDir(),
				CommitInterval: 100 * time.Millisecond, Logger: testLogger(t), Guarantee: g,
			})
			d := newWinData(8, 3)
			const rounds = 30
			produce := func(r int) {
				var msgs []*sarama.ProducerMessage
				for i := 0; i < d.keys; i++ {
					msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(d.key(i)), Value: sarama.StringEncoder("x"),
						Partition: partitionOf(d.key(i), 2), Timestamp: d.start(r % d.windows).Add(time.Duration(r) * time.Millisecond)})
				}
				b.Produce(t, in, msgs...)
			}
			for r := 0; r < d.windows; r++ {
				produce(r)
			}
			view, err := topology.QueryWindow[string, int64](qi.app, "win")
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, 60*time.Second, func() error {
				got, err := pageWindowsErr(qi.endpoint, "/stores/win/windows?limit=1000")
				if err != nil || len(got) != d.keys*d.windows {
					return fmt.Errorf("%d windows, %v", len(got), err)
				}
				return nil
			})

			stop := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			nondecreasing := func(last map[winResult]int64, w winResult) error {
				k := winResult{Key: w.Key, Start: w.Start}
				if w.Value < last[k] {
					return fmt.Errorf("%s@%d went from %d to %d", w.Key, w.Start, last[k], w.Value)
				}
				last[k] = w.Value
				return nil
			}
			wg.Add(2)
			go func() { // HTTP reader
				defer wg.Done()
				last := map[winResult]int64{}
				for {
					select {
					case <-stop:
						return
					default:
					}
					got, err := pageWindowsErr(qi.endpoint, "/stores/win/windows?limit=7")
					if err == nil && len(got) != d.keys*d.windows {
						err = fmt.Errorf("%d windows while processing", len(got))
					}
					for _, w := range got {
						if err == nil {
							err = nondecreasing(last, w)
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
			go func() { // typed reader: FetchRange and FetchAll
				defer wg.Done()
				last := map[winResult]int64{}
				for {
					select {
					case <-stop:
						return
					default:
					}
					got, err := viewWindows(d.key(3))(view.FetchRange(d.key(3), d.t0, d.last()))
					if err == nil && len(got) != d.windows {
						err = fmt.Errorf("FetchRange while processing: %v", got)
					}
					it, ferr := view.FetchAll(d.t0, d.last())
					if err == nil {
						err = ferr
					}
					if ferr == nil {
						n := 0
						for it.Next() {
							n++
							if err == nil {
								err = nondecreasing(last, winResult{it.Key().Key, it.Key().Start.UnixMilli(), it.Value()})
							}
						}
						it.Close()
						if err == nil && (it.Err() != nil || n != d.keys*d.windows) {
							err = fmt.Errorf("FetchAll while processing: %d windows, %v", n, it.Err())
						}
					}
					if err != nil {
						errs <- err
						return
					}
				}
			}()
			for r := d.windows; r < rounds; r++ {
				produce(r)
			}
			b.WaitForRecords(t, out, rounds*d.keys, g == topology.ExactlyOnce, 60*time.Second)
			close(stop)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			for i := 0; i < d.keys; i++ {
				for j := 0; j < d.windows; j++ {
					if n, found, err := view.Fetch(d.key(i), d.start(j)); err != nil || !found || n != int64(rounds/d.windows) {
						// Say whether the input holds the window's records
						// once each (then brook counted one twice) and what
						// the committed output carried for it.
						var inputs []int64
						for _, m := range b.ConsumeAll(t, in) {
							if string(m.Key) == d.key(i) && !m.Timestamp.Before(d.start(j)) && m.Timestamp.Before(d.start(j).Add(winSize)) {
								inputs = append(inputs, m.Offset)
							}
						}
						var outputs []string
						for _, m := range b.ConsumeAllCommitted(t, out) {
							if string(m.Key) == d.key(i) && !m.Timestamp.Before(d.start(j)) && m.Timestamp.Before(d.start(j).Add(winSize)) {
								outputs = append(outputs, fmt.Sprintf("%x@%d", m.Value, m.Offset))
							}
						}
						t.Fatalf("%s window %d = %d, %v, %v; want %d (input records of the window at offsets %v; committed outputs %v)",
							d.key(i), j, n, found, err, rounds/d.windows, inputs, outputs)
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
