package topology_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
)

// failoverKeys is the number of accounts the failover test's store holds
// before the kill, spread over three tasks. The measured run uses
// 1,000,000 (BROOK_FAILOVER_KEYS=1000000); the default keeps the test
// within a minute or two under -race on a small machine.
const failoverKeys = 30_000

// groupRoles describes the group: for each client id (one per instance),
// its active and standby tasks, once the group is stable with n members.
func groupRoles(t *testing.T, admin sarama.ClusterAdmin, appID string, n int) (active, standby map[string][]assign.TaskID, ok bool) {
	t.Helper()
	ds, err := admin.DescribeConsumerGroups([]string{appID})
	if err != nil || len(ds) != 1 || ds[0].State != "Stable" || len(ds[0].Members) != n {
		return nil, nil, false
	}
	active, standby = map[string][]assign.TaskID{}, map[string][]assign.TaskID{}
	for _, m := range ds[0].Members {
		a, err := m.GetMemberAssignment()
		if err != nil || a == nil {
			return nil, nil, false
		}
		ma, err := assign.DecodeMemberAssignment(a.UserData)
		if err != nil {
			return nil, nil, false
		}
		for _, parts := range a.Topics {
			for _, p := range parts {
				active[m.ClientId] = append(active[m.ClientId], assign.TaskID{Group: 0, Partition: p})
			}
		}
		standby[m.ClientId] = ma.Standby
	}
	return active, standby, true
}

// restoreDone returns the records of the "helper: restore done" lines of
// an instance's log for the store partition, in order.
func restoreDone(t *testing.T, in *instance, storeName string, partition int32) []int64 {
	t.Helper()
	f, err := os.Open(in.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	re := regexp.MustCompile(`msg="helper: restore done" store=` + regexp.QuoteMeta(storeName) + ` partition=` + strconv.Itoa(int(partition)) + ` records=(\d+)`)
	var out []int64
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			out = append(out, n)
		}
	}
	return out
}

// TestAppFailoverToStandbyRestoresOnlyTheTail is issue #18's failover
// check: three instances of the payments app in their own OS processes,
// exactly-once, NumStandbyReplicas 1, a store of failoverKeys accounts.
// SIGKILL the instance running task 0_0: the task resumes on the
// instance that kept its standby, which restores only the changelog tail
// its standby had not read (asserted under 1% of the task's store). Then
// a fourth instance joins and a task moves to it: under the cooperative
// protocol the tasks that stay where they are are never closed or
// reopened (none of them restores again), and their largest gaps between
// committed outputs (by the output topic's append time) are logged. The
// committed output shows every payment exactly once.
func TestAppFailoverToStandbyRestoresOnlyTheTail(t *testing.T) {
	keys := failoverKeys
	if v, err := strconv.Atoi(os.Getenv("BROOK_FAILOVER_KEYS")); err == nil && v > 0 {
		keys = v
	}
	b := eosBroker(t)
	in, out := testutil.TopicName(t, "payments"), testutil.TopicName(t, "balances")
	const parts = 3
	b.CreateTopic(t, in, parts, nil)
	// Append times: the retained tasks' output gaps during the scale-out.
	b.CreateTopic(t, out, parts, map[string]string{"message.timestamp.type": "LogAppendTime"})
	appID := testutil.TopicName(t, "app")
	client, err := sarama.NewClient(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	w := watchOutput(t, b, out)

	// Three instances, each with its own state folder and client id.
	dirs := map[string]string{}
	insts := map[string]*instance{}
	for i := range 3 {
		name := fmt.Sprintf("inst-%d", i)
		dirs[name] = t.TempDir()
		insts[name] = startInstance(t, name, "payments", map[string]string{
			"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
			"STATE_DIR": dirs[name], "GUARANTEE": "exactly-once", "COMMIT_MS": "100",
			"STANDBYS": "1", "CLIENT_ID": name,
		})
	}
	// Every instance runs one task and keeps a standby of another.
	var active, standby map[string][]assign.TaskID
	deadline := time.Now().Add(120 * time.Second)
	for {
		var ok bool
		if active, standby, ok = groupRoles(t, admin, appID, 3); ok {
			balanced := true
			for name := range insts {
				if len(active[name]) != 1 || len(standby[name]) != 1 {
					balanced = false
				}
			}
			if balanced {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not settle with one task and one standby per instance: active %v standby %v", active, standby)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The store: one payment per account, then payments keep flowing to
	// the first 12 accounts.
	sent := payments{}
	began := time.Now()
	for lo := 0; lo < keys; lo += 50_000 {
		var msgs []*sarama.ProducerMessage
		for i := lo; i < min(keys, lo+50_000); i++ {
			msgs = append(msgs, paymentMsg(i, parts, 1))
			sent[accountName(i)] = append(sent[accountName(i)], 1)
		}
		b.Produce(t, in, msgs...)
	}
	w.waitComplete(t, sent, 600*time.Second)
	t.Logf("%d accounts stored in %v", keys, time.Since(began).Round(time.Millisecond))
	f := startFeeder(t, b, in, 12, parts, 20*time.Millisecond, uint64(time.Now().UnixNano()))

	// The victim runs task 0_0; the survivor keeps its standby.
	task := assign.TaskID{Group: 0, Partition: 0}
	var victim, survivor string
	for name, ts := range active {
		if ts[0] == task {
			victim = name
		}
	}
	for name, ts := range standby {
		if ts[0] == task {
			survivor = name
		}
	}
	if victim == "" || survivor == "" || victim == survivor {
		t.Fatalf("task %s: active on %q, standby on %q (active %v, standby %v)", task, victim, survivor, active, standby)
	}
	// Wait until the standby is caught up: its checkpoint (the offsets
	// its LevelDB copy reflects) within a few hundred records of the
	// changelog's last stable offset.
	changelog := appID + "-balances-changelog"
	cpTP := store.TopicPartition{Topic: changelog, Partition: 0}
	cpDir := filepath.Join(dirs[survivor], appID, task.String())
	deadline = time.Now().Add(300 * time.Second)
	var cp, lso int64
	for {
		lso = lastStable(t, client, changelog, 0)
		m, err := store.ReadCheckpoint(cpDir)
		if err == nil {
			cp = m[cpTP]
		}
		if lso > int64(keys/parts) && lso-cp < 500 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("standby of %s on %s: checkpoint %d, changelog last stable offset %d", task, survivor, cp, lso)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("task %s: active on %s, standby on %s at %d of %d", task, victim, survivor, cp, lso)
	before := len(restoreDone(t, insts[survivor], "balances", 0))

	// Kill the victim; time until an account of task 0_0 has a committed
	// update for a payment sent after the kill (its sequence number is
	// above the payments it had when the victim died), which only the
	// new owner can have made.
	sentAtKill := f.counts()
	killed := time.Now()
	insts[victim].kill(t)
	deadline = time.Now().Add(120 * time.Second)
	for !w.beyond(sentAtKill, parts, 0) {
		if time.Now().After(deadline) {
			t.Fatalf("task %s did not resume within 120s of the kill", task)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resumed := time.Since(killed)
	if os.Getenv("BROOK_FAILOVER_DUMP") != "" {
		b, _ := os.ReadFile(insts[survivor].log)
		t.Logf("--- %s log ---\n%s", survivor, tail(string(b), 60))
	}

	// Scale out: a fourth instance joins the two survivors.
	var before2 map[string][]assign.TaskID
	deadline = time.Now().Add(120 * time.Second)
	for {
		var ok bool
		if before2, _, ok = groupRoles(t, admin, appID, 2); ok && len(before2) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the group did not settle with the two survivors: %v", before2)
		}
		time.Sleep(200 * time.Millisecond)
	}
	restoresAt := map[string]map[int32]int{}
	for name, ts := range before2 {
		restoresAt[name] = map[int32]int{}
		for _, tk := range ts {
			restoresAt[name][tk.Partition] = len(restoreDone(t, insts[name], "balances", tk.Partition))
		}
	}
	joined := time.Now()
	newcomer := "inst-3"
	dirs[newcomer] = t.TempDir()
	insts[newcomer] = startInstance(t, newcomer, "payments", map[string]string{
		"IN": in, "OUT": out, "APP_ID": appID, "BROKERS": strings.Join(b.Addrs(), ","),
		"STATE_DIR": dirs[newcomer], "GUARANTEE": "exactly-once", "COMMIT_MS": "100",
		"STANDBYS": "1", "CLIENT_ID": newcomer,
	})
	var after map[string][]assign.TaskID
	deadline = time.Now().Add(180 * time.Second)
	for {
		var ok bool
		if after, _, ok = groupRoles(t, admin, appID, 3); ok && len(after[newcomer]) == 1 && len(after) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no task moved to the new instance within 180s: %v", after)
		}
		time.Sleep(100 * time.Millisecond)
	}
	moved := time.Since(joined)
	// Every partition has committed output after the move, so the gaps
	// below cover the whole rebalance.
	movedAt := time.Now()
	for deadline := time.Now().Add(60 * time.Second); !w.appendedAfter(parts, movedAt); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not every partition had committed output within 60s of the move")
		}
	}
	settled := time.Now()
	var retained []string
	for name, ts := range after {
		for _, tk := range ts {
			n, ok := restoresAt[name][tk.Partition]
			if !ok {
				continue // arrived here in the scale-out
			}
			gap := w.largestGap(tk.Partition, joined, settled)
			retained = append(retained, fmt.Sprintf("%s on %s: largest output gap %v", tk, name, gap.Round(time.Millisecond)))
			if got := len(restoreDone(t, insts[name], "balances", tk.Partition)); got != n {
				t.Errorf("task %s stayed on %s but was closed and reopened during the scale-out (restores %d → %d)", tk, name, n, got)
			}
		}
	}
	if len(retained) != 2 {
		t.Errorf("retained tasks: %v; want 2 (before %v, after %v)", retained, before2, after)
	}
	t.Logf("scale-out: %s got task %v after %v; retained: %s", newcomer, after[newcomer], moved.Round(time.Millisecond), strings.Join(retained, "; "))

	sentAll := f.stop(t)
	for acct, a := range sentAll {
		sent[acct] = append(sent[acct], a...)
	}
	got := w.waitComplete(t, sent, 300*time.Second)
	checkExactlyOnce(t, sent, got)

	restores := restoreDone(t, insts[survivor], "balances", 0)
	if len(restores) <= before {
		t.Fatalf("%s logged no restore of balances[0] after the kill (restores %v)", survivor, restores)
	}
	tail := restores[before]
	storeKeys := int64((keys + parts - 1) / parts)
	t.Logf("SIGKILL of %s: task %s processed again on %s after %v; it restored %d changelog records for a store of %d accounts (%.3f%%); %d payments in all",
		victim, task, survivor, resumed.Round(time.Millisecond), tail, storeKeys, 100*float64(tail)/float64(storeKeys), f.count()+keys)
	if tail*100 >= storeKeys {
		t.Errorf("the failover restored %d records, not under 1%% of the store's %d accounts", tail, storeKeys)
	}
	for name, in := range insts {
		if name != victim {
			in.stop(t)
		}
	}
}

// lastStable returns the last stable offset of topic[p].
func lastStable(t *testing.T, client sarama.Client, topic string, p int32) int64 {
	t.Helper()
	broker, err := client.Leader(topic, p)
	if err != nil {
		t.Fatal(err)
	}
	req := sarama.NewOffsetRequest(client.Config().Version)
	req.IsolationLevel = sarama.ReadCommitted
	req.AddBlock(topic, p, sarama.OffsetNewest, 1)
	resp, err := broker.GetAvailableOffsets(req)
	if err != nil {
		t.Fatal(err)
	}
	blk := resp.GetBlock(topic, p)
	if blk == nil || blk.Err != sarama.ErrNoError || len(blk.Offsets) == 0 {
		t.Fatalf("last stable offset of %s[%d]: %+v", topic, p, blk)
	}
	return blk.Offsets[0]
}

// counts returns how many payments the feeder has sent to each account.
func (f *feeder) counts() map[string]int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[string]int64, len(f.sent))
	for acct, a := range f.sent {
		out[acct] = int64(len(a))
	}
	return out
}

// beyond reports whether some fed account on partition p has a
// committed update whose sequence number exceeds sent[account] (plus
// one, for the account's stored payment) — without copying the output.
func (w *outputWatcher) beyond(sent map[string]int64, parts, p int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 0; i < 12; i++ {
		if i%parts != p {
			continue
		}
		acct := accountName(i)
		if ups := w.byAcct[acct]; len(ups) > 0 && ups[len(ups)-1].Seq > sent[acct]+1 {
			return true
		}
	}
	return false
}
