package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// staleAnswer is a key answer of a stale read.
type staleAnswer struct {
	Value int64  `json:"value"`
	Task  string `json:"task"`
	Host  string `json:"host"`
	Role  string `json:"role"`
	Lag   *int64 `json:"lag"`
}

// TestStaleReadsFromStandby: three instances, two tasks, one standby
// each. For a key of task T, active on X with its standby on Y (Z has
// neither):
//   - on Y, a view without stale reads refuses the key (*NotLocalError
//     naming X and listing Y as standby); a view WithStaleReads answers
//     it from Y's standby, with the right value, role standby and a lag;
//     the metadata and the store status list the standby;
//   - over HTTP, Y forwards the key to X without ?stale=true and answers
//     it from its standby with it (role and lag in the body and headers);
//   - with X's query server down, Z answers 502 without ?stale=true and,
//     with it, forwards to Y's standby;
//   - an iterator of Y's stale view open on the standby is invalidated
//     when X stops and T fails over to Y (the copy stops before the task
//     opens), and the key is then read from the active task.
//
// Under both guarantees (the copies read read_committed under
// exactly-once).
func TestStaleReadsFromStandby(t *testing.T) {
	for _, g := range []struct {
		name string
		g    topology.Guarantee
	}{{"at_least_once", topology.AtLeastOnce}, {"exactly_once", topology.ExactlyOnce}} {
		t.Run(g.name, func(t *testing.T) { testStaleReadsFromStandby(t, g.g) })
	}
}

func testStaleReadsFromStandby(t *testing.T, guarantee topology.Guarantee) {
	cleanupClient(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, out, 2, nil)
	const keys, perKey = 20, 3
	var msgs []*sarama.ProducerMessage
	for i := 0; i < perKey; i++ {
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("acct-%02d", k)
			msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(key), Value: sarama.StringEncoder("x"), Partition: partitionOf(key, 2)})
		}
	}
	b.Produce(t, in, msgs...)

	appID := testutil.TopicName(t, "app")
	cfg := func() topology.Config {
		return topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 200 * time.Millisecond, Logger: testLogger(t), NumStandbyReplicas: 1, Guarantee: guarantee}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	topo := countTopology(t, in, out)
	first := startQueryInstance(t, ctx, topo, cfg())
	waitCounts(t, b, out, keys, perKey, 60*time.Second)
	all := []*queryInstance{first, startQueryInstance(t, ctx, topo, cfg()), startQueryInstance(t, ctx, topo, cfg())}

	// Settled: each task active and running on one instance, a standby
	// with lag 0 on another, no warm-ups.
	type roles struct{ active, standby, none *queryInstance }
	var byTask map[string]roles
	eventually(t, 90*time.Second, func() error {
		byTask = map[string]roles{}
		for _, task := range []string{"0_0", "0_1"} {
			var r roles
			for _, qi := range all {
				var ts *query.TaskState
				for _, s := range qi.app.Status(context.Background()).Tasks {
					if s.Task == task {
						ts = &s
					}
				}
				switch {
				case ts == nil:
					r.none = qi
				case ts.Role == query.RoleActive && ts.State == query.TaskRunning && r.active == nil:
					r.active = qi
				case ts.Role == query.RoleStandby && ts.State == query.TaskRunning && ts.Lag == 0 && r.standby == nil:
					r.standby = qi
				default:
					return fmt.Errorf("task %s on %s: %+v", task, qi.endpoint, *ts)
				}
			}
			if r.active == nil || r.standby == nil || r.none == nil {
				return fmt.Errorf("task %s: not one active, one standby, one without: %+v", task, r)
			}
			byTask[task] = r
		}
		return nil
	})
	const task = "0_0"
	x, y, z := byTask[task].active, byTask[task].standby, byTask[task].none
	var key string
	for k := 0; k < keys && key == ""; k++ {
		if candidate := fmt.Sprintf("acct-%02d", k); partitionOf(candidate, 2) == 0 {
			key = candidate
		}
	}
	t.Logf("task %s: active on %s, standby on %s, neither on %s; key %s", task, x.endpoint, y.endpoint, z.endpoint, key)

	// Go: refused without stale reads.
	plain, err := query.KeyValue[string, int64](y.app, "counts")
	if err != nil {
		t.Fatal(err)
	}
	var nl *query.NotLocalError
	if _, _, err := plain.Get(key); !errors.As(err, &nl) || nl.Endpoint != x.endpoint {
		t.Fatalf("Get on the standby's instance without stale reads: %v, want a *NotLocalError naming %s", err, x.endpoint)
	}
	if !slices.ContainsFunc(nl.Standbys, func(h query.StandbyHost) bool { return h.Endpoint == y.endpoint && h.Role == query.RoleStandby }) {
		t.Fatalf("NotLocalError.Standbys = %+v, want %s as standby", nl.Standbys, y.endpoint)
	}
	// With stale reads: the standby answers.
	stale, err := topology.QueryKeyValue[string, int64](y.app, "counts", query.WithStaleReads())
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() error {
		v, found, src, err := stale.GetFrom(key)
		if err != nil || !found || v != perKey {
			return fmt.Errorf("stale GetFrom(%s) = %d, %v, %v; want %d", key, v, found, err, perKey)
		}
		if src.Role != query.RoleStandby || src.Task != task || src.Lag < 0 {
			return fmt.Errorf("stale read source %+v, want the standby of %s with a lag", src, task)
		}
		return nil
	})
	md, err := stale.Metadata(key)
	if err != nil {
		t.Fatal(err)
	}
	if md.Endpoint != x.endpoint || md.Local || len(md.Standbys) != 1 || md.Standbys[0].Endpoint != y.endpoint || md.Standbys[0].Role != query.RoleStandby {
		t.Fatalf("metadata %+v: want owner %s, standby %s", md, x.endpoint, y.endpoint)
	}
	st := stale.Status()
	if i := slices.IndexFunc(st.Standbys, func(c query.CopyStatus) bool { return c.Task == task }); i < 0 || !st.Standbys[i].Queryable || st.Standbys[i].Role != query.RoleStandby || !st.Standbys[i].LagKnown {
		t.Fatalf("store status standbys %+v: want %s queryable", st.Standbys, task)
	}

	// HTTP on Y: forwarded to X without ?stale, answered by Y with it.
	path := "/stores/counts/keys/" + url.PathEscape(key)
	a := httpGet(t, y.endpoint, path, nil)
	var ans staleAnswer
	if err := json.Unmarshal(a.body, &ans); a.status != 200 || err != nil || ans.Host != x.endpoint || ans.Role != "" || ans.Lag != nil || a.header.Get("X-Brook-Role") != "" {
		t.Fatalf("GET %s on Y: %d %s, want X's answer without role or lag", path, a.status, a.body)
	}
	a = httpGet(t, y.endpoint, path+"?stale=true", nil)
	ans = staleAnswer{}
	if err := json.Unmarshal(a.body, &ans); a.status != 200 || err != nil || ans.Host != y.endpoint || ans.Role != query.RoleStandby ||
		ans.Lag == nil || *ans.Lag < 0 || ans.Value != perKey || ans.Task != task {
		t.Fatalf("GET %s?stale=true on Y: %d %s, want Y's standby answer", path, a.status, a.body)
	}
	if lag, err := strconv.ParseInt(a.header.Get("X-Brook-Lag"), 10, 64); a.header.Get("X-Brook-Role") != query.RoleStandby || err != nil || lag != *ans.Lag {
		t.Fatalf("headers %v: want X-Brook-Role standby and X-Brook-Lag %d", a.header, *ans.Lag)
	}
	if a := httpGet(t, y.endpoint, path+"?stale=maybe", nil); a.status != 400 {
		t.Fatalf("stale=maybe: %d %s, want 400", a.status, a.body)
	}

	// X's query server down: Z reaches the standby only when asked to.
	_ = x.srv.Close()
	<-x.served
	if a := httpGet(t, z.endpoint, path, nil); a.status != 502 {
		t.Fatalf("GET %s on Z with the owner unreachable: %d %s, want 502", path, a.status, a.body)
	}
	a = httpGet(t, z.endpoint, path+"?stale=1", nil)
	ans = staleAnswer{}
	if err := json.Unmarshal(a.body, &ans); a.status != 200 || err != nil || ans.Host != y.endpoint || ans.Role != query.RoleStandby || ans.Value != perKey {
		t.Fatalf("GET %s?stale=1 on Z with the owner unreachable: %d %s, want Y's standby answer", path, a.status, a.body)
	}
	if a.header.Get("X-Brook-Role") != query.RoleStandby || a.header.Get("X-Brook-Served-By") != y.endpoint {
		t.Fatalf("relayed headers %v: want Y's role and served-by", a.header)
	}

	// An iterator on Y's standby, then X stops: T fails over to Y, whose
	// copy stops first and invalidates the iterator.
	it, err := stale.Prefix(key)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.Next() || it.Key() != key || it.Value() != perKey {
		t.Fatalf("stale Prefix(%s): %v %q=%d, err %v", key, it.Key(), it.Key(), it.Value(), it.Err())
	}
	x.stop()
	eventually(t, 90*time.Second, func() error {
		_, _, src, err := stale.GetFrom(key)
		if err != nil || src.Role != query.RoleActive {
			return fmt.Errorf("after X stopped: %+v, %v; want the active task on Y", src, err)
		}
		return nil
	})
	if it.Next() {
		t.Fatalf("the iterator on the stopped standby went on: %q", it.Key())
	}
	if !errors.Is(it.Err(), query.ErrIteratorInvalidated) {
		t.Fatalf("iterator on the stopped standby: Err %v, want ErrIteratorInvalidated", it.Err())
	}
	v, found, src, err := stale.GetFrom(key)
	if err != nil || !found || v != perKey || src.Role != query.RoleActive || src.Lag != 0 {
		t.Fatalf("after failover: %d %v %+v %v", v, found, src, err)
	}
}
