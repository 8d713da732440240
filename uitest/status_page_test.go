package uitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The page's viewport, and so the screenshot's size.
const pageW, pageH = 1280, 900

const token = "ui-test-token"

// chromium returns the Chromium binary to drive: $CHROMIUM when set,
// else Debian's /usr/bin/chromium (or chromium on the PATH). Without one
// the test skips, and fails under CI=true (CI must run it).
func chromium(t *testing.T) string {
	t.Helper()
	candidates := []string{"/usr/bin/chromium", "chromium"}
	if c := os.Getenv("CHROMIUM"); c != "" {
		candidates = []string{c}
	}
	for _, p := range candidates {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	why := fmt.Sprintf("Chromium is not installed (looked for %v; apt-get install chromium, or set CHROMIUM to its binary; scripts/test installs it)", candidates)
	if testutil.InCI() {
		t.Fatal(why + ": CI must run the browser test")
	}
	t.Skip(why)
	return ""
}

// gate holds the first record whose key starts with "late-" until it
// opens, so that the lag behind it stays put while the page is read.
type gate struct {
	once    sync.Once
	entered chan struct{}
	open    chan struct{}
	opened  sync.Once
}

func newGate() *gate { return &gate{entered: make(chan struct{}), open: make(chan struct{})} }

func (g *gate) release() { g.opened.Do(func() { close(g.open) }) }

// pageProc counts records per key ("counts", LevelDB) and keeps each
// key's latest value ("latest", in memory; both logged). It logs a
// warning with an action for the key "warn-me".
type pageProc struct {
	g      *gate
	counts store.KeyValueStore[string, int64]
	latest store.KeyValueStore[string, string]
}

func (p *pageProc) Init(ctx processor.Context[string, int64]) (err error) {
	if p.counts, err = processor.KeyValueStore[string, int64](ctx, "counts"); err != nil {
		return err
	}
	p.latest, err = processor.KeyValueStore[string, string](ctx, "latest")
	return err
}

func (p *pageProc) Process(ctx processor.Context[string, int64], r processor.Record[string, string]) error {
	if r.Key == "warn-me" {
		ctx.Logger().Warn("brook uitest: a warning for the page", "action", "nothing: the browser test logs it on purpose", "key", r.Key)
	}
	if strings.HasPrefix(r.Key, "late-") {
		p.g.once.Do(func() { close(p.g.entered) })
		<-p.g.open
	}
	n, _, err := p.counts.Get(r.Key)
	if err != nil {
		return err
	}
	if err := p.counts.Put(r.Key, n+1); err != nil {
		return err
	}
	if err := p.latest.Put(r.Key, r.Value); err != nil {
		return err
	}
	return ctx.Forward(processor.Revalue(r, n+1))
}

func (p *pageProc) Close() error { return nil }

func pageTopology(t *testing.T, in, out string, g *gate) *topology.Topology {
	t.Helper()
	b := topology.New()
	src := topology.Source(b, "in", in, serde.String(), serde.String())
	topology.KeyValueStore(b, "counts", serde.String(), serde.Int64())
	topology.KeyValueStore(b, "latest", serde.String(), serde.String(), topology.InMemory())
	counts := topology.Process(b, "count", src, func() processor.Processor[string, string, string, int64] { return &pageProc{g: g} },
		topology.WithStores("counts", "latest"))
	topology.Sink(b, "out", out, counts, serde.String(), serde.Int64())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func produce(t *testing.T, b *testutil.Broker, topic string, keys ...string) {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for _, k := range keys {
		p, err := partition.ForKey([]byte(k), 2)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(k), Value: sarama.StringEncoder("value of " + k), Partition: p})
	}
	b.Produce(t, topic, msgs...)
}

// eventually retries f until it returns nil, failing the test with its
// last error after timeout.
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

// caughtUp says why s is not running with every partition processed and
// committed to its end.
func caughtUp(s query.Status) error {
	if s.State != "running" || len(s.Partitions) != 2 {
		return fmt.Errorf("state %s, %d partitions", s.State, len(s.Partitions))
	}
	for _, p := range s.Partitions {
		if p.Lag != 0 || p.Committed != p.End || p.End == 0 {
			return fmt.Errorf("partition %+v not caught up", p)
		}
	}
	return nil
}

var client = &http.Client{Timeout: 20 * time.Second}

// getStatus fetches GET /status with the token.
func getStatus(endpoint string) (query.Status, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+endpoint+"/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return query.Status{}, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return query.Status{}, fmt.Errorf("GET /status: %d %s", resp.StatusCode, body)
	}
	var s query.Status
	return s, json.Unmarshal(body, &s)
}

// shown is what the page shows, read from its DOM (readPage): every
// number as the text of its cell, so that the check covers rendering.
type shown struct {
	State      string   `json:"state"`
	Snapshot   string   `json:"snapshot"`
	TaskCount  string   `json:"taskCount"`
	TotalLag   string   `json:"totalLag"`
	Instances  []string `json:"instances"`
	Tasks      []string `json:"tasks"`
	Partitions []string `json:"partitions"`
	Restores   []string `json:"restores"`
	Stores     []string `json:"stores"`
	Warnings   []string `json:"warnings"`
	Topology   []string `json:"topology"`
}

// readPage is the script that reads shown from the page.
const readPage = `(() => {
  const rows = (id) => [...document.querySelectorAll("#" + id + " tbody tr")];
  const f = (tr, name) => { const e = tr.querySelector('[data-field="' + name + '"]'); return e ? e.textContent.trim() : "?"; };
  const d = (tr, name) => { const e = tr.querySelector('[data-field="' + name + '"]'); return e && e.dataset.value ? e.dataset.value : "?"; };
  return {
    state: document.getElementById("app-state").textContent,
    snapshot: document.body.dataset.snapshot || "",
    taskCount: document.getElementById("task-count").textContent,
    totalLag: document.getElementById("total-lag").textContent,
    instances: rows("instances").map((tr) => [tr.dataset.endpoint, tr.dataset.self, f(tr, "tasks")].join(" ")),
    tasks: rows("tasks").map((tr) => [tr.dataset.task, f(tr, "state"), "lag", f(tr, "lag"), "restored", f(tr, "restored_records")].join(" ")),
    partitions: rows("lag").map((tr) => [tr.dataset.task, tr.dataset.topic, tr.dataset.partition, "committed", f(tr, "committed"),
      "position", f(tr, "position"), "end", f(tr, "end"), "lag", f(tr, "lag")].join(" ")),
    restores: rows("restores").map((tr) => [tr.dataset.task, tr.dataset.store, tr.dataset.partition, "done", tr.dataset.done,
      f(tr, "restored"), "of", f(tr, "total")].join(" ")),
    stores: rows("stores").map((tr) => [tr.dataset.task, tr.dataset.store, "keys", f(tr, "keys"), "bytes", d(tr, "bytes_on_disk")].join(" ")),
    warnings: rows("warnings").map((tr) => [tr.dataset.level, tr.children[2].textContent, "action:", f(tr, "action")].join(" ")),
    topology: [...document.querySelectorAll("#topology g.item")].map((e) => e.dataset.kind + " " + e.dataset.name).sort(),
  };
})()`

// expected is what the page must show for s, in shown's terms.
func expected(s query.Status) shown {
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	e := shown{State: s.State, Snapshot: s.Time.Format(time.RFC3339Nano), TaskCount: strconv.Itoa(len(s.Tasks))}
	total := int64(0)
	for _, i := range s.Instances {
		tasks := strings.Join(i.Tasks, ", ")
		if tasks == "" {
			tasks = "–"
		}
		e.Instances = append(e.Instances, fmt.Sprintf("%s %t %s", i.Endpoint, i.Self, tasks))
	}
	for _, ts := range s.Tasks {
		e.Tasks = append(e.Tasks, fmt.Sprintf("%s %s lag %d restored %d", ts.Task, ts.State, ts.Lag, ts.RestoredRecords))
	}
	for _, p := range s.Partitions {
		committed := n(p.Committed)
		if p.Committed < 0 {
			committed = "–"
		}
		e.Partitions = append(e.Partitions, fmt.Sprintf("%s %s %d committed %s position %d end %d lag %d", p.Task, p.Topic, p.Partition, committed, p.Position, p.End, p.Lag))
		total += p.Lag
	}
	e.TotalLag = n(total)
	for _, r := range s.Restores {
		e.Restores = append(e.Restores, fmt.Sprintf("%s %s %d done %t %d of %d", r.Task, r.Store, r.Partition, r.Done, r.Restored, r.Total))
	}
	for _, z := range s.Stores {
		keys, bytes := "–", "?"
		if z.Keys != nil {
			keys = n(*z.Keys)
		}
		if z.BytesOnDisk != nil {
			bytes = n(*z.BytesOnDisk)
		}
		e.Stores = append(e.Stores, fmt.Sprintf("%s %s keys %s bytes %s", z.Task, z.Store, keys, bytes))
	}
	for i := len(s.RecentWarnings) - 1; i >= 0; i-- { // the page lists the newest first
		w := s.RecentWarnings[i]
		action := w.Action
		if action == "" {
			action = "–"
		}
		e.Warnings = append(e.Warnings, fmt.Sprintf("%s %s action: %s", w.Level, w.Message, action))
	}
	return e
}

// TestStatusPage runs an App, restores it on a second instance, holds
// it behind a known lag, loads its status page in headless Chromium and
// checks that what the page shows is what GET /status says, that the key
// lookup shows the store's value, and that the page asked nothing of any
// host but the App's; it saves a screenshot.
func TestStatusPage(t *testing.T) {
	chrome := chromium(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	appID := testutil.TopicName(t, "status-page")
	var keys []string
	for k := 0; k < 40; k++ {
		keys = append(keys, fmt.Sprintf("key-%02d", k))
	}
	produce(t, b, in, keys...)
	produce(t, b, in, "key-07", "key-07") // key-07 counts 3

	g := newGate()
	defer g.release()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The first instance processes everything, then stops: the second
	// one, on a fresh state folder, restores both stores.
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), CommitInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	first, err := topology.NewApp(pageTopology(t, in, out, g), cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	eventually(t, 60*time.Second, func() error { return caughtUp(first.Status(ctx)) })
	first.Close()
	if err := <-done; err != nil {
		t.Fatalf("first instance: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.StateDir = t.TempDir()
	cfg.QueryEndpoint = ln.Addr().String()
	app, err := topology.NewApp(pageTopology(t, in, out, g), cfg)
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- app.Run(ctx) }()
	srv := &http.Server{Handler: app.QueryHandler(query.WithBearerToken(token)), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer func() {
		g.release()
		srv.Close()
		app.Close()
		if err := <-done; err != nil {
			t.Errorf("second instance: %v", err)
		}
	}()
	endpoint := cfg.QueryEndpoint
	eventually(t, 60*time.Second, func() error {
		s, err := getStatus(endpoint)
		if err != nil {
			return err
		}
		return caughtUp(s)
	})

	// A warning, then records the task stops at: 9 of them wait.
	produce(t, b, in, "warn-me")
	eventually(t, 30*time.Second, func() error {
		s, err := getStatus(endpoint)
		if err != nil {
			return err
		}
		if len(s.RecentWarnings) == 0 {
			return fmt.Errorf("no warning yet")
		}
		return nil
	})
	var late []string
	for k := 0; k < 10; k++ {
		late = append(late, fmt.Sprintf("late-%02d", k))
	}
	produce(t, b, in, late...)
	select {
	case <-g.entered:
	case <-time.After(60 * time.Second):
		t.Fatal("the late records were not processed")
	}
	// The late records in the log: ten, unless the test's producer wrote
	// one twice on a retry (it is not idempotent).
	lateInLog := int64(0)
	for _, m := range b.ConsumeAll(t, in) {
		if strings.HasPrefix(string(m.Key), "late-") {
			lateInLog++
		}
	}
	wantLag := strconv.FormatInt(lateInLog, 10)
	var s query.Status
	eventually(t, 30*time.Second, func() (err error) {
		if s, err = getStatus(endpoint); err != nil {
			return err
		}
		lag := int64(0)
		for _, p := range s.Partitions {
			lag += p.Lag
		}
		if lag != lateInLog {
			return fmt.Errorf("lag %d, want %d (the late records, the one being processed included)", lag, lateInLog)
		}
		return nil
	})
	for _, ts := range s.Tasks {
		if ts.RestoredRecords == 0 {
			t.Fatalf("task %s restored nothing: %+v", ts.Task, s.Tasks)
		}
	}

	// The browser: a fresh profile, no sandbox (root), a fixed viewport;
	// every request the page makes is recorded.
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chrome), chromedp.Headless, chromedp.NoSandbox, chromedp.WindowSize(pageW, pageH),
		chromedp.Flag("disable-gpu", true), chromedp.Flag("no-first-run", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-extensions", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("user-data-dir", t.TempDir()))
	defer cancelAlloc()
	var mu sync.Mutex
	var requests []string
	tab, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok && e.Request != nil {
			mu.Lock()
			requests = append(requests, e.Request.URL)
			mu.Unlock()
		}
	}))
	defer cancelTab()
	if err := chromedp.Do(tab, chromedp.EmulateViewport(pageW, pageH)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	step := func(what string, timeout time.Duration, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(tab, timeout)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, pageState(tab))
		}
	}
	pageURL := "http://" + endpoint + "/status/ui"
	step("load the page and give it the token", 30*time.Second,
		chromedp.Navigate(pageURL),
		chromedp.WaitVisible(chromedp.ID("token-form")),
		chromedp.SendKeys(chromedp.ID("token-input"), token),
		chromedp.Click(chromedp.ID("token-submit")),
		chromedp.WaitVisible(chromedp.CSS(`body[data-loaded="true"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#topology svg`)))

	// What the page shows must be what /status says. The page refreshes
	// every second: read both until they agree, and see it refresh.
	var page shown
	var want shown
	firstSnapshot := ""
	eventually(t, 30*time.Second, func() error {
		raw, err := chromedp.Run(tab, chromedp.Evaluate[[]byte](readPage))
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &page); err != nil {
			return err
		}
		st, err := getStatus(endpoint)
		if err != nil {
			return err
		}
		if firstSnapshot == "" {
			firstSnapshot = page.Snapshot
		}
		want = expected(st)
		page.Snapshot, want.Snapshot = "", "" // taken at different moments
		page.Topology = nil
		if !reflect.DeepEqual(page, want) {
			got, _ := json.MarshalIndent(page, "", " ")
			exp, _ := json.MarshalIndent(want, "", " ")
			return fmt.Errorf("the page shows\n%s\n/status says\n%s", got, exp)
		}
		return nil
	})
	if page.TotalLag != wantLag || page.TaskCount != "2" || len(page.Restores) != 4 || len(page.Stores) != 4 || len(page.Warnings) == 0 {
		t.Fatalf("the page agrees with /status but not with the test: %+v", page)
	}
	eventually(t, 10*time.Second, func() error {
		snap, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.body.dataset.snapshot`))
		if err != nil {
			return err
		}
		if snap == firstSnapshot {
			return fmt.Errorf("the page did not refresh: still the snapshot of %s", snap)
		}
		return nil
	})
	topo, err := chromedp.Run(tab, chromedp.Evaluate[[]string](`[...document.querySelectorAll("#topology g.item")].map((e) => e.dataset.kind + " " + e.dataset.name).sort()`))
	if err != nil {
		t.Fatal(err)
	}
	wantTopo := []string{"processor count", "sink out", "source in", "store counts", "store latest", "topic " + in, "topic " + out}
	if !reflect.DeepEqual(topo, wantTopo) {
		t.Fatalf("topology drawn: %v, want %v", topo, wantTopo)
	}

	// The key lookup: a missing key, then key-07 of counts, whose value
	// the page must show as the store holds it.
	lookup := func(storeName, key, state string) string {
		t.Helper()
		step("look up "+key, 20*time.Second,
			chromedp.SetValue(chromedp.ID("lookup-store"), storeName),
			chromedp.Evaluate[chromedp.Void](`document.getElementById("lookup-key").value = ""`),
			chromedp.SendKeys(chromedp.ID("lookup-key"), key),
			chromedp.Click(chromedp.ID("lookup-submit")),
			chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`#lookup-result[data-state=%q][data-key=%q]`, state, key))))
		v, err := chromedp.Run(tab, chromedp.Evaluate[string](`document.getElementById("lookup-value").textContent`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := lookup("counts", "no-such-key", "missing"); !strings.Contains(v, "no key") {
		t.Fatalf("a missing key shows %q", v)
	}
	latest, err := topology.QueryKeyValue[string, string](app, "latest")
	if err != nil {
		t.Fatal(err)
	}
	lv, ok, err := latest.Get("key-07")
	if err != nil || !ok {
		t.Fatalf("latest key-07: %v %v", ok, err)
	}
	if v := lookup("latest", "key-07", "found"); v != strconv.Quote(lv) {
		t.Fatalf("latest key-07 shows %q, the store holds %q", v, lv)
	}
	counts, err := topology.QueryKeyValue[string, int64](app, "counts")
	if err != nil {
		t.Fatal(err)
	}
	cv, ok, err := counts.Get("key-07")
	if err != nil || !ok || cv != 3 {
		t.Fatalf("counts key-07: %d %v %v, want 3", cv, ok, err)
	}
	if v := lookup("counts", "key-07", "found"); v != strconv.FormatInt(cv, 10) {
		t.Fatalf("counts key-07 shows %q, the store holds %d", v, cv)
	}

	// The screenshot, of the viewport.
	shot, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if sz := img.Bounds().Size(); sz.X != pageW || sz.Y != pageH {
		t.Fatalf("screenshot is %v, want %dx%d", sz, pageW, pageH)
	}
	saveScreenshot(t, shot)

	// Every request went to the App: nothing from any other host.
	mu.Lock()
	seen := append([]string(nil), requests...)
	mu.Unlock()
	if err := onlyFrom(seen, endpoint); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/status/ui", "/status/ui/app.js", "/status/ui/style.css", "/status/topology.svg", "/status", "/stores/counts/keys/key-07"} {
		if !containsPath(seen, p) {
			t.Fatalf("the recorded requests lack %s (is the recording working?): %v", p, seen)
		}
	}
}

// onlyFrom checks that every URL asks the App at endpoint (a loopback
// address) and nothing else.
func onlyFrom(urls []string, endpoint string) error {
	if len(urls) == 0 {
		return fmt.Errorf("no request recorded")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			return fmt.Errorf("request to %q: %v", raw, err)
		}
		if u.Scheme != "http" || u.Host != endpoint || !strings.HasPrefix(u.Hostname(), "127.") {
			return fmt.Errorf("the page asked %s, which is not the App at %s", raw, endpoint)
		}
	}
	return nil
}

func containsPath(urls []string, path string) bool {
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil && u.Path == path {
			return true
		}
	}
	return false
}

// TestOnlyFrom: the request check refuses any other host, scheme or port.
func TestOnlyFrom(t *testing.T) {
	const ep = "127.0.0.1:4000"
	if err := onlyFrom([]string{"http://127.0.0.1:4000/status/ui", "http://127.0.0.1:4000/status"}, ep); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{
		nil,
		{"http://127.0.0.1:4000/status", "https://fonts.example.com/x.woff2"},
		{"https://127.0.0.1:4000/status"},
		{"http://127.0.0.1:4001/status"},
		{"http://localhost:4000/status"},
		{"data:image/png;base64,AAAA"},
	} {
		if err := onlyFrom(bad, ep); err == nil {
			t.Errorf("onlyFrom accepted %v", bad)
		}
	}
}

// saveScreenshot writes the screenshot into the test's temporary folder,
// and to docs/images/status-page.png when UPDATE_SCREENSHOT=1 (the one
// docs/OPERATIONS.md shows; refreshing it every run would churn the
// repository).
func saveScreenshot(t *testing.T, shot []byte) {
	t.Helper()
	dst := filepath.Join(os.TempDir(), "brook-status-page.png")
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		dst = filepath.Join("..", "docs", "images", "status-page.png")
	}
	if err := os.WriteFile(dst, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot (%d bytes) saved to %s", len(shot), dst)
}

// pageState describes the page for a failure: its URL, its connection
// line and its body's text.
func pageState(tab context.Context) string {
	ctx, cancel := context.WithTimeout(tab, 5*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText.slice(0, 3000)`))
	if err != nil {
		return "(page state unknown: " + err.Error() + ")"
	}
	return "the page (" + v + ")"
}

// testWriter sends an App's log lines to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
