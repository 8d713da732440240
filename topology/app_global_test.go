package topology_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// merchantsJoinApp enriches payments ("m<j>:<amount>", keyed by card)
// from the global table "merchants" with a left join: "<payment>@<name>",
// or "<payment>@?" for an unknown merchant.
func merchantsJoinApp(t *testing.T, merchants, payments, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	gt := topology.GlobalTable(b, "merchants", merchants, serde.String(), serde.String())
	s := topology.Stream(b, "payments", payments, serde.String(), serde.String())
	topology.LeftJoinGlobal(s, gt, "enrich", merchantOf, func(_, p, name string, found bool) (string, error) {
		if !found {
			return p + "@?", nil
		}
		return p + "@" + name, nil
	}).To("to-out", out, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

func strMsg(topic, key string, value *string, partition int32) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Partition: partition}
	if value != nil {
		m.Value = sarama.StringEncoder(*value)
	}
	return m
}

// globalOutputs waits until topic holds n records and returns their values
// sorted; committed reads read_committed.
func globalOutputs(t *testing.T, b *testutil.Broker, topic string, n int, committed bool, done <-chan error) []string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var got []*sarama.ConsumerMessage
		if committed {
			got = b.ConsumeAllCommitted(t, topic)
		} else {
			got = b.ConsumeAll(t, topic)
		}
		if len(got) >= n {
			vals := make([]string, len(got))
			for i, m := range got {
				vals[i] = string(m.Value)
			}
			sort.Strings(vals)
			return vals
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned %v before %s held %d records", err, topic, n)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d records after 60s, want %d", topic, len(got), n)
		}
	}
}

// TestAppGlobalTableJoin runs a global-table join on a broker:
//
//   - the merchants topic has 5 partitions, the payments topic 3: a global
//     table is not co-partitioned with anything;
//   - every merchant record produced before start (updates and a tombstone
//     included) is restored before the first payment is processed, so
//     every payment produced before start joins the final value;
//   - while running, a merchant update shows in queries and in the next
//     payment's join;
//   - query.KeyValue and the HTTP handler answer from the local store,
//     across all partitions, as task "global";
//   - a restart on the same state directory reads only the records
//     produced while the app was stopped (the checkpoint).
func TestAppGlobalTableJoin(t *testing.T) {
	b := testutil.NewBroker(t)
	merchants, payments, out := testutil.TopicName(t, "merchants"), testutil.TopicName(t, "payments"), testutil.TopicName(t, "enriched")
	b.CreateTopic(t, merchants, 5, map[string]string{"cleanup.policy": "compact"})
	b.CreateTopic(t, payments, 3, nil)
	b.CreateTopic(t, out, 3, nil)

	const n = 40
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		msgs = append(msgs, strMsg(merchants, fmt.Sprintf("m%d", i), ptr(fmt.Sprintf("old-%d", i)), int32(i%5)))
	}
	for i := 0; i < n; i++ { // every merchant updated once, in another order
		msgs = append(msgs, strMsg(merchants, fmt.Sprintf("m%d", i), ptr(fmt.Sprintf("shop-%d", i)), int32(i%5)))
	}
	msgs = append(msgs, strMsg(merchants, "m7", nil, 7%5)) // deleted
	b.Produce(t, merchants, msgs...)
	msgs = nil
	for i := 0; i < n; i++ {
		msgs = append(msgs, strMsg(payments, fmt.Sprintf("card-%d", i%6), ptr(fmt.Sprintf("m%d:%d", i, i)), int32(i%3)))
	}
	b.Produce(t, payments, msgs...)

	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	// Restore progress is reported per partition, and the App is not
	// running before every partition is restored.
	var mu sync.Mutex
	done5 := map[int32]bool{}
	var runningEarly []string
	cfg := topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: dir, CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
		RestoreListener: func(p store.RestoreProgress) {
			mu.Lock()
			defer mu.Unlock()
			if p.Store == "merchants" && p.Restored == p.Total {
				done5[p.Partition] = true
			}
		},
		StateListener: func(_, to topology.State) {
			mu.Lock()
			defer mu.Unlock()
			if (to == topology.StateRunning || to == topology.StateRebalancing) && len(done5) != 5 {
				runningEarly = append(runningEarly, fmt.Sprintf("%v with %d partitions restored", to, len(done5)))
			}
		}}
	topo := merchantsJoinApp(t, merchants, payments, out)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, done := startApp(t, ctx, topo, cfg)

	var want []string
	for i := 0; i < n; i++ {
		if i == 7 {
			want = append(want, "m7:7@?")
		} else {
			want = append(want, fmt.Sprintf("m%d:%d@shop-%d", i, i, i))
		}
	}
	sort.Strings(want)
	if got := globalOutputs(t, b, out, n, false, done); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("joins of the payments produced before start:\n got %v\nwant %v", got, want)
	}
	if r := app.RestoredRecords()["global"]; r != 2*n+1 {
		t.Errorf("global tables restored %d records at first start, want %d", r, 2*n+1)
	}
	mu.Lock()
	if len(done5) != 5 || len(runningEarly) > 0 {
		t.Errorf("restore progress: partitions done %v; states before the restore ended: %v", done5, runningEarly)
	}
	mu.Unlock()

	// Kept current while running.
	b.Produce(t, merchants, strMsg(merchants, "m3", ptr("renamed"), 3), strMsg(merchants, "m99", ptr("new"), 4))
	view, err := query.KeyValue[string, string](app, "merchants")
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		v3, _, err3 := view.Get("m3")
		v99, _, err99 := view.Get("m99")
		if err3 == nil && err99 == nil && v3 == "renamed" && v99 == "new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("query after updates: m3=%q (%v), m99=%q (%v)", v3, err3, v99, err99)
		}
	}
	b.Produce(t, payments, strMsg(payments, "card-x", ptr("m3:1"), 0), strMsg(payments, "card-y", ptr("m99:2"), 2))
	got := globalOutputs(t, b, out, n+2, false, done)
	if !containsAll(strings.Join(got, " "), "m3:1@renamed", "m99:2@new") {
		t.Fatalf("joins after the updates: %v", got)
	}

	// Queries: local, whole, named "global".
	it, err := view.All()
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	for it.Next() {
		count++
	}
	if err := it.Close(); err != nil || it.Err() != nil || count != n {
		t.Fatalf("All() gave %d keys (%v), want %d (40 merchants, one deleted, one added)", count, it.Err(), n)
	}
	md, err := view.Metadata("m5")
	if err != nil || !md.Local || md.Task != query.GlobalTaskName {
		t.Fatalf("Metadata(m5) = %+v, %v; want local, task global", md, err)
	}
	srv := httptest.NewServer(app.QueryHandler())
	defer srv.Close()
	body := httpGet(t, srv.URL+"/stores/merchants/keys/m5")
	var ka struct {
		Value string `json:"value"`
		Task  string `json:"task"`
	}
	if err := json.Unmarshal(body, &ka); err != nil || ka.Value != "shop-5" || ka.Task != "global" {
		t.Fatalf("GET key m5 = %s", body)
	}
	body = httpGet(t, srv.URL+"/stores/merchants/range?prefix=m1&limit=100")
	var ra struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if err := json.Unmarshal(body, &ra); err != nil || len(ra.Entries) != 11 { // m1, m10..m19
		t.Fatalf("range prefix m1 = %s, want 11 entries", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}

	// Restart: only the tail is read.
	b.Produce(t, merchants, strMsg(merchants, "m1", ptr("again"), 1), strMsg(merchants, "m2", nil, 2), strMsg(merchants, "m4", ptr("again"), 4))
	b.Produce(t, payments, strMsg(payments, "card-z", ptr("m1:3"), 1), strMsg(payments, "card-z", ptr("m2:4"), 1))
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	app2, done2 := startApp(t, ctx2, topo, cfg)
	got = globalOutputs(t, b, out, n+4, false, done2)
	if !containsAll(strings.Join(got, " "), "m1:3@again", "m2:4@?") {
		t.Fatalf("joins after the restart: %v", got)
	}
	if r := app2.RestoredRecords()["global"]; r != 3 {
		t.Errorf("global tables restored %d records at restart, want 3 (the tail after the checkpoint)", r)
	}
	cancel2()
	if err := <-done2; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func httpGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return body
}

// TestAppGlobalTableJoinExactlyOnce: the same join in an exactly-once
// app. The global table restores read_committed before processing, and
// the committed output has every payment once, joined with the merchant
// value restored at start.
func TestAppGlobalTableJoinExactlyOnce(t *testing.T) {
	b := eosBroker(t)
	merchants, payments, out := testutil.TopicName(t, "merchants"), testutil.TopicName(t, "payments"), testutil.TopicName(t, "enriched")
	b.CreateTopic(t, merchants, 5, map[string]string{"cleanup.policy": "compact"})
	b.CreateTopic(t, payments, 3, nil)
	b.CreateTopic(t, out, 3, nil)
	const n = 30
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		msgs = append(msgs, strMsg(merchants, fmt.Sprintf("m%d", i), ptr(fmt.Sprintf("shop-%d", i)), int32(i%5)))
	}
	b.Produce(t, merchants, msgs...)
	msgs = nil
	var want []string
	for i := 0; i < n; i++ {
		msgs = append(msgs, strMsg(payments, fmt.Sprintf("card-%d", i%4), ptr(fmt.Sprintf("m%d:%d", i, i)), int32(i%3)))
		want = append(want, fmt.Sprintf("m%d:%d@shop-%d", i, i, i))
	}
	b.Produce(t, payments, msgs...)
	sort.Strings(want)

	appID, dir := testutil.TopicName(t, "app"), t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := startApp(t, ctx, merchantsJoinApp(t, merchants, payments, out), eosConfig(t, b, appID, dir))
	got := globalOutputs(t, b, out, n, true, done)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("committed joins:\n got %v\nwant %v", got, want)
	}
	if final := b.ConsumeAllCommitted(t, out); len(final) != n {
		t.Fatalf("committed output holds %d records, want %d", len(final), n)
	}
}
