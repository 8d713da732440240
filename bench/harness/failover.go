package harness

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// The failover workloads (issue 18), F1 without and F1s with one standby
// replica per task, for one system:
//
//  1. the input topic gets one record per key (Options.FailoverKeys), and
//     three instances (separate processes, each with its own state
//     directory, exactly-once, B2's count per key) build the store and
//     catch up (the group's committed offsets reach the input's end);
//  2. the harness produces Options.FailoverRate records/s per partition
//     (uniform keys) for Options.FailoverSteady, the steady reference;
//  3. it SIGKILLs the instance with the most tasks and measures, per
//     task (input partition), when output resumes (failover time: the
//     largest of the killed instance's tasks) and the largest gap of the
//     others (retained tasks) until every task processes again, the group
//     is stable and Options.FailoverSettle has passed;
//  4. a fourth instance (empty state directory) joins the two survivors:
//     the largest gap of any task and of the retained ones likewise;
//  5. production stops and every key's committed outputs are checked to
//     be exactly 1, 2, …, n for its n input records (exactly-once: none
//     lost, none duplicated).
//
// Processing time is the output records' LogAppendTime (the output topic
// is created with message.timestamp.type=LogAppendTime), read with
// read_committed, so records of aborted transactions do not count; on a
// broker that does not honour the setting (kfake) it is the time the
// harness reads them, which adds the commit interval to every gap.
// Which instance runs which task comes from the group coordinator's
// description of the group (DescribeGroups; members told apart by client
// id "<app>-<instance>"), read just before the kill and before and after
// the join.

// failoverInstances is how many instances run before the kill.
const failoverInstances = 3

// pauseThreshold is the longest gap a retained task may have during a
// rebalance and still count as not paused (issue 18's "retained tasks
// never pause"): well above the steady gaps at 300 records/s (a few ms,
// and an exactly-once commit's stall) and far below a rebalance's.
const pauseThreshold = 500 * time.Millisecond

// failoverStandbys is the number of standby replicas of w.
func failoverStandbys(w string) int {
	if w == "F1s" {
		return 1
	}
	return 0
}

// outputTracker reads a failover cell's output (read_committed) and
// checks every key's counts while noting when each task processed.
type outputTracker struct {
	part []int32 // task (input partition) of each key, as the harness's murmur2 partitioner places it
	// appendTime: processing time is the record's timestamp
	// (LogAppendTime), else the time the harness reads it.
	appendTime bool

	mu      sync.Mutex
	last    []int64 // last count seen per key
	seen    int64   // outputs read
	dups    int64   // outputs whose count was not above the key's last
	jumps   int64   // outputs whose count skipped one or more
	foreign int64   // outputs whose key is not one of the harness's
	movedTo int64   // outputs on a partition other than the key's input partition
	since   int64   // Unix ms from which processing times are kept
	times   [][]int64
}

func newOutputTracker(keys int, partitions int32, topic string, appendTime bool) (*outputTracker, error) {
	t := &outputTracker{part: make([]int32, keys), last: make([]int64, keys), appendTime: appendTime, times: make([][]int64, partitions)}
	pt := sarama.NewMurmur2Partitioner(topic)
	for i := range t.part {
		p, err := pt.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(restoreKey(i))}, partitions)
		if err != nil {
			return nil, err
		}
		t.part[i] = p
	}
	return t, nil
}

// keyIndex returns i for restoreKey(i).
func keyIndex(k []byte, n int) (int, bool) {
	if len(k) < 2 || k[0] != 'k' {
		return 0, false
	}
	i, err := strconv.Atoi(string(k[1:]))
	if err != nil || i < 0 || i >= n {
		return 0, false
	}
	return i, true
}

func (t *outputTracker) add(m *sarama.ConsumerMessage) {
	now := time.Now().UnixMilli()
	at := now
	if t.appendTime {
		at = m.Timestamp.UnixMilli()
	}
	i, ok := keyIndex(m.Key, len(t.part))
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seen++
	if !ok || len(m.Value) != 8 {
		t.foreign++
		return
	}
	n := int64(binary.BigEndian.Uint64(m.Value))
	switch {
	case n <= t.last[i]:
		t.dups++
	case n > t.last[i]+1:
		t.jumps++
	}
	if n > t.last[i] {
		t.last[i] = n
	}
	p := t.part[i]
	if p != m.Partition {
		t.movedTo++
	}
	if t.since > 0 && at >= t.since {
		t.times[p] = append(t.times[p], at)
	}
}

// start keeps processing times from at on.
func (t *outputTracker) start(at time.Time) {
	t.mu.Lock()
	t.since = at.UnixMilli()
	t.mu.Unlock()
}

// resumed reports whether every task of ps has processed after at.
func (t *outputTracker) resumed(ps []int32, at time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range ps {
		ts := t.times[p]
		if len(ts) == 0 || ts[len(ts)-1] <= at.UnixMilli() {
			return false
		}
	}
	return true
}

// firstAfter returns, for task p, how long after at it first processed
// (false if it has not).
func (t *outputTracker) firstAfter(p int32, at time.Time) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ms := at.UnixMilli()
	ts := t.times[p]
	i := sort.Search(len(ts), func(i int) bool { return ts[i] > ms })
	if i == len(ts) {
		return 0, false
	}
	return time.Duration(ts[i]-ms) * time.Millisecond, true
}

// maxGap returns the largest gap between consecutive processing times of
// task p that overlaps [from, to], cut to that window, the gap from the
// last one to to included (a task that stopped for good has that gap),
// and where it began.
func (t *outputTracker) maxGap(p int32, from, to time.Time) (time.Duration, time.Time) {
	t.mu.Lock()
	ts := slices.Clone(t.times[p])
	t.mu.Unlock()
	slices.Sort(ts)
	f, e := from.UnixMilli(), to.UnixMilli()
	worst, at := int64(0), f
	note := func(a, b int64) {
		a, b = max(a, f), min(b, e)
		if b-a > worst {
			worst, at = b-a, a
		}
	}
	prev := f
	for _, x := range ts {
		if x >= e {
			break
		}
		if x > f {
			note(prev, x)
		}
		prev = max(prev, x)
	}
	note(prev, e)
	return time.Duration(worst) * time.Millisecond, time.UnixMilli(at)
}

// gapReport is the largest gap over some tasks and where it was.
type gapReport struct {
	gap  time.Duration
	task int32
	at   time.Time
}

func (g gapReport) String() string {
	if g.gap == 0 {
		return "none"
	}
	return fmt.Sprintf("%d ms on task %d from %s", g.gap.Milliseconds(), g.task, g.at.UTC().Format("15:04:05.000"))
}

// worstGap is the largest maxGap over ps.
func (t *outputTracker) worstGap(ps []int32, from, to time.Time) gapReport {
	var w gapReport
	for _, p := range ps {
		if d, at := t.maxGap(p, from, to); d > w.gap {
			w = gapReport{d, p, at}
		}
	}
	return w
}

// counted returns the sum of every key's last count.
func (t *outputTracker) counted() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var s int64
	for _, n := range t.last {
		s += n
	}
	return s
}

// check compares every key's last count with its input records: lost is
// the input records with no output (counts short of the input, and
// skipped counts), duplicated the outputs repeating a count.
func (t *outputTracker) check(in []int64) (lost, duplicated int64, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	short := 0
	for i, n := range in {
		if t.last[i] < n {
			lost += n - t.last[i]
			short++
		}
		if t.last[i] > n {
			duplicated += t.last[i] - n // counts above the input: records counted twice
		}
	}
	lost += t.jumps
	duplicated += t.dups
	var parts []string
	if short > 0 {
		parts = append(parts, fmt.Sprintf("%d keys short of their input", short))
	}
	if t.jumps > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped counts", t.jumps))
	}
	if t.dups > 0 {
		parts = append(parts, fmt.Sprintf("%d repeated counts", t.dups))
	}
	if t.foreign > 0 {
		parts = append(parts, fmt.Sprintf("%d outputs of unknown keys or not 8-byte counts", t.foreign))
		lost += t.foreign
	}
	if t.movedTo > 0 {
		parts = append(parts, fmt.Sprintf("%d outputs on another partition than their key's input partition", t.movedTo))
	}
	return lost, duplicated, strings.Join(parts, ", ")
}

// consumeCommitted reads topic from its start with read_committed and
// calls fn for every record until ctx ends.
func (b *broker) consumeCommitted(ctx context.Context, topic string, fn func(*sarama.ConsumerMessage)) error {
	cfg := b.saramaConfig()
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	cfg.Consumer.Fetch.Default = 1 << 20
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	ps, err := b.client.Partitions(topic)
	if err != nil {
		return err
	}
	c, err := sarama.NewConsumer(b.addrs, cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	defer func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		c.Close()
	}()
	for _, p := range ps {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return err
		}
		pcs = append(pcs, pc)
		wg.Add(1)
		go func() { // owned by consumeCommitted
			defer wg.Done()
			for m := range pc.Messages() {
				fn(m)
			}
		}()
	}
	<-ctx.Done()
	return nil
}

// groupView is who runs which task, from the coordinator's description.
type groupView struct {
	state  string
	owners map[string][]int32 // instance → input partitions
	others int                // members that are none of the instances
}

// owner returns the instance that has partition p ("" for none).
func (g groupView) owner(p int32) string {
	for in, ps := range g.owners {
		if slices.Contains(ps, p) {
			return in
		}
	}
	return ""
}

// stable reports whether the group is stable with exactly the instances
// of live as members and every partition of the input assigned once.
func (g groupView) stable(live []string, partitions int32) bool {
	if g.state != "Stable" || g.others > 0 || len(g.owners) != len(live) {
		return false
	}
	seen := map[int32]bool{}
	for _, in := range live {
		ps, ok := g.owners[in]
		if !ok {
			return false
		}
		for _, p := range ps {
			if seen[p] {
				return false
			}
			seen[p] = true
		}
	}
	return int32(len(seen)) == partitions
}

func (g groupView) String() string {
	var names []string
	for in := range g.owners {
		names = append(names, in)
	}
	sort.Strings(names)
	var parts []string
	for _, in := range names {
		ps := slices.Clone(g.owners[in])
		slices.Sort(ps)
		parts = append(parts, fmt.Sprintf("%s %v", in, ps))
	}
	return strings.Join(parts, ", ")
}

// describeGroup reads app's group: each member's partitions of topic,
// the member told apart by its client id ("<app>-<instance>", Kafka
// Streams' consumer "<app>-<instance>-StreamThread-1-consumer").
func (b *broker) describeGroup(app, topic string, instances []string) (groupView, error) {
	ds, err := b.admin.DescribeConsumerGroups([]string{app})
	if err != nil {
		return groupView{}, err
	}
	if len(ds) != 1 {
		return groupView{}, fmt.Errorf("group %s: %d descriptions", app, len(ds))
	}
	d := ds[0]
	if d.Err != sarama.ErrNoError {
		return groupView{}, fmt.Errorf("group %s: %w", app, d.Err)
	}
	g := groupView{state: d.State, owners: map[string][]int32{}}
	for _, m := range d.Members {
		name := ""
		for _, in := range instances {
			id := app + "-" + in
			if m.ClientId == id || strings.HasPrefix(m.ClientId, id+"-") {
				name = in
			}
		}
		if name == "" {
			g.others++
			continue
		}
		a, err := m.GetMemberAssignment()
		if err != nil {
			return groupView{}, fmt.Errorf("group %s member %s: %w", app, m.ClientId, err)
		}
		ps := []int32{}
		if a != nil {
			ps = append(ps, a.Topics[topic]...)
		}
		g.owners[name] = append(g.owners[name], ps...)
	}
	return g, nil
}

// groupCaughtUp reports whether app's committed offsets of topic have
// reached ends.
func (b *broker) groupCaughtUp(app, topic string, ends map[int32]int64) (bool, error) {
	var ps []int32
	for p := range ends {
		ps = append(ps, p)
	}
	resp, err := b.admin.ListConsumerGroupOffsets(app, map[string][]int32{topic: ps})
	if err != nil {
		return false, err
	}
	for p, e := range ends {
		blk := resp.GetBlock(topic, p)
		if blk == nil || blk.Offset < e {
			return false, nil
		}
	}
	return true, nil
}

// failoverRun holds one failover cell's processes.
type failoverRun struct {
	r       *runner
	sys, w  string
	name    string
	app     string
	in, out string
	procs   map[string]*proc
	order   []string // instances in start order
	rss     float64
}

func (f *failoverRun) start(inst string) error {
	state := filepath.Join(f.r.o.WorkDir, "state", f.name, inst)
	standbys := failoverStandbys(f.w)
	var extra []string
	if f.sys == SysKStreams {
		extra = []string{"instance=" + inst, "standbys=" + strconv.Itoa(standbys), "session=" + strconv.FormatInt(f.r.o.SessionTimeout.Milliseconds(), 10)}
	} else {
		extra = []string{"-instance", inst, "-standbys", strconv.Itoa(standbys), "-session", f.r.o.SessionTimeout.String()}
	}
	p, _, err := f.r.launch(f.name+"-"+inst, f.sys, "F1", f.app, f.in, f.out, "", state, "eos", extra...)
	if err != nil {
		return err
	}
	f.procs[inst] = p
	f.order = append(f.order, inst)
	return nil
}

// live lists the instances still running.
func (f *failoverRun) live() []string {
	var out []string
	for _, in := range f.order {
		select {
		case <-f.procs[in].exited:
		default:
			out = append(out, in)
		}
	}
	return out
}

// failure returns why a live instance stopped on its own, if one did.
func (f *failoverRun) failure(killed string) error {
	for _, in := range f.order {
		if in == killed {
			continue
		}
		if err := f.procs[in].failure(); err != nil {
			return fmt.Errorf("instance %s: %w", in, err)
		}
	}
	return nil
}

func (f *failoverRun) stopAll() {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, p := range f.procs {
		wg.Add(1)
		go func() { // owned by stopAll
			defer wg.Done()
			rss := float64(p.stop(40*time.Second)) / (1 << 20)
			mu.Lock()
			f.rss = max(f.rss, rss)
			mu.Unlock()
		}()
	}
	wg.Wait()
}

// restored sums the records restored so far by instances.
func (f *failoverRun) restored(instances []string) int64 {
	var n int64
	for _, in := range instances {
		n += f.procs[in].restoredRecords()
	}
	return n
}

// rateProducer produces FailoverRate records/s per partition over
// uniform keys until stopped, counting each key's records.
type rateProducer struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

func (r *runner) startRate(ctx context.Context, topic string, counts []int64) (*rateProducer, error) {
	prod, err := r.b.newProducer()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	rp := &rateProducer{cancel: cancel, done: make(chan struct{})}
	rate := float64(r.o.FailoverRate) * float64(r.o.Partitions)
	k, v := newUniform(len(counts), 31), newValues(r.o.ValueBytes, 32)
	go func() { // owned by rateProducer.stop
		defer close(rp.done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		t0 := time.Now()
		var sent int64
		for cctx.Err() == nil {
			select {
			case <-cctx.Done():
			case now := <-t.C:
				for want := int64(now.Sub(t0).Seconds() * rate); sent < want; sent++ {
					key := k.next()
					i, _ := keyIndex([]byte(key), len(counts))
					counts[i]++
					prod.send(topic, record{key: key, value: v.next(), ts: now})
				}
			}
		}
		rp.err = prod.close()
	}()
	return rp, nil
}

// stop stops producing and waits for every record to be acknowledged.
func (rp *rateProducer) stop() error {
	rp.cancel()
	<-rp.done
	return rp.err
}

// failover runs workload w (F1 or F1s) for sys.
func (r *runner) failover(ctx context.Context, w, sys string) (c Cell) {
	o := r.o
	name := r.cellName(w, sys)
	f := &failoverRun{r: r, sys: sys, w: w, name: name, app: r.topic(name), in: r.topic(name + "-in"), out: r.topic(name + "-out"), procs: map[string]*proc{}}
	c.StoreKeys, c.Standbys = o.FailoverKeys, failoverStandbys(w)
	c.SessionTimeoutMs = float64(o.SessionTimeout.Milliseconds())
	if err := r.b.createTopic(f.in, o.Partitions, false); err != nil {
		return Cell{Missing: err.Error()}
	}
	if err := r.b.createTopicConfigs(f.out, o.Partitions, map[string]string{"message.timestamp.type": "LogAppendTime"}); err != nil {
		return Cell{Missing: err.Error()}
	}
	appendTime := false
	if !r.b.embedded() {
		entries, err := r.b.admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: f.out, ConfigNames: []string{"message.timestamp.type"}})
		if err != nil {
			return Cell{Missing: err.Error()}
		}
		for _, e := range entries {
			appendTime = appendTime || (e.Name == "message.timestamp.type" && e.Value == "LogAppendTime")
		}
	}
	if appendTime {
		c.Note = "processing time: output LogAppendTime"
	} else {
		c.Note = "processing time: when the harness read the output (the broker does not set LogAppendTime), so gaps include the commit interval"
	}
	// 1. The store: one record per key.
	counts := make([]int64, o.FailoverKeys)
	v := newValues(o.ValueBytes, 30)
	now := time.Now()
	t0 := time.Now()
	if err := r.b.produceN(f.in, o.FailoverKeys, func(i int) record {
		return record{key: restoreKey(i), value: v.next(), ts: now}
	}); err != nil {
		return Cell{Missing: err.Error()}
	}
	for i := range counts {
		counts[i] = 1
	}
	o.Logf("   %s: store input %d keys in %v", sys, o.FailoverKeys, time.Since(t0).Round(time.Millisecond))
	tr, err := newOutputTracker(o.FailoverKeys, o.Partitions, f.in, appendTime)
	if err != nil {
		return Cell{Missing: err.Error()}
	}
	cctx, stopReading := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	var rerr error
	rwg.Add(1)
	go func() { // owned by failover
		defer rwg.Done()
		rerr = r.b.consumeCommitted(cctx, f.out, tr.add)
	}()
	defer func() { stopReading(); rwg.Wait() }()
	var rate *rateProducer
	defer func() {
		if rate != nil {
			_ = rate.stop()
		}
		f.stopAll()
		c.PeakRSSMB = f.rss
	}()
	fail := func(format string, args ...any) Cell {
		c.Missing = fmt.Sprintf(format, args...)
		return c
	}
	for i := 1; i <= failoverInstances; i++ {
		if err := f.start(fmt.Sprintf("i%d", i)); err != nil {
			return fail("%v", err)
		}
	}
	// wait polls cond every 100 ms until it holds, the deadline passes or
	// an instance other than killed fails.
	wait := func(what, killed string, cond func() (bool, error)) error {
		deadline := time.Now().Add(o.RunTimeout)
		for {
			ok, err := cond()
			if ok {
				return nil
			}
			if ferr := f.failure(killed); ferr != nil {
				return fmt.Errorf("%s: %w", what, ferr)
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not within %v (last: %v)", what, o.RunTimeout, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ends, err := r.b.partitionEnds(f.in)
	if err != nil {
		return fail("%v", err)
	}
	var g groupView
	instances := []string{"i1", "i2", "i3", "i4"}
	stableWith := func(live []string) func() (bool, error) {
		return func() (bool, error) {
			var err error
			g, err = r.b.describeGroup(f.app, f.in, instances)
			if err != nil {
				return false, err
			}
			if !g.stable(live, o.Partitions) {
				return false, fmt.Errorf("group %s: %s", g.state, g)
			}
			return true, nil
		}
	}
	t0 = time.Now()
	if err := wait("the store built and the group stable", "", func() (bool, error) {
		ok, err := r.b.groupCaughtUp(f.app, f.in, ends)
		if !ok || err != nil {
			return false, err
		}
		return stableWith(f.live())()
	}); err != nil {
		return fail("%v", err)
	}
	o.Logf("   %s: store built by 3 instances in %v: %s", sys, time.Since(t0).Round(time.Millisecond), g)
	// 2. Steady input.
	steady := time.Now()
	tr.start(steady)
	if rate, err = r.startRate(ctx, f.in, counts); err != nil {
		return fail("%v", err)
	}
	time.Sleep(o.FailoverSteady)
	if err := f.failure(""); err != nil {
		return fail("steady phase: %v", err)
	}
	// 3. Kill the instance with the most tasks.
	if ok, err := stableWith(f.live())(); !ok {
		return fail("before the kill: %v", err)
	}
	before := g
	victim := ""
	for _, in := range f.order {
		if victim == "" || len(before.owners[in]) > len(before.owners[victim]) {
			victim = in
		}
	}
	killedTasks := slices.Clone(before.owners[victim])
	slices.Sort(killedTasks)
	var others []int32
	for p := int32(0); p < o.Partitions; p++ {
		if !slices.Contains(killedTasks, p) {
			others = append(others, p)
		}
	}
	survivors := slices.DeleteFunc(f.live(), func(s string) bool { return s == victim })
	restoredBefore := f.restored(survivors)
	killAt := time.Now()
	if err := f.procs[victim].kill(); err != nil {
		return fail("kill %s: %v", victim, err)
	}
	o.Logf("   %s: SIGKILL %s (tasks %v)", sys, victim, killedTasks)
	if err := wait("the killed instance's tasks processing again", victim, func() (bool, error) {
		if !tr.resumed(killedTasks, killAt) {
			return false, fmt.Errorf("tasks %v not processing yet", killedTasks)
		}
		return stableWith(survivors)()
	}); err != nil {
		return fail("%v", err)
	}
	time.Sleep(o.FailoverSettle)
	settled := time.Now()
	// Retained: the tasks that stayed on their instance; the others
	// the killed instance did not run moved between the survivors.
	var retained []int32
	for _, p := range others {
		if before.owner(p) == g.owner(p) {
			retained = append(retained, p)
		}
	}
	c.FailoverRestored = f.restored(survivors) - restoredBefore
	c.FailoverRetained = len(retained)
	afterKill := g
	// The gaps are computed once every output is read (figures, below):
	// until then the read_committed reader trails the processing by up
	// to a commit interval, which would look like a gap at the end of a
	// window.
	figures := []func(){func() {
		var slowest time.Duration
		var per []string
		for _, p := range killedTasks {
			d, _ := tr.firstAfter(p, killAt)
			slowest = max(slowest, d)
			per = append(per, fmt.Sprintf("%d: %.1f s", p, d.Seconds()))
		}
		// The steady window leaves out the first second of input and the
		// last two before the kill: the killed instance's last open
		// transaction (up to a commit interval of output) is aborted and
		// never read.
		var steadyGap gapReport
		if from, to := steady.Add(time.Second), killAt.Add(-2*time.Second); to.After(from) {
			steadyGap = tr.worstGap(allPartitions(o.Partitions), from, to)
		}
		retainedGap, othersGap := tr.worstGap(retained, killAt, settled), tr.worstGap(others, killAt, settled)
		c.FailoverMs, c.SteadyGapMs = ms(slowest), ms(steadyGap.gap)
		c.FailoverRetainedGapMs, c.FailoverOthersGapMs = ms(retainedGap.gap), ms(othersGap.gap)
		c.Note += fmt.Sprintf("; steady: largest gap %s; killed %s at %s with tasks %v (per task: %s); after: %s, retained tasks %v, largest gap %s, of all the survivors' tasks %s",
			steadyGap, victim, killAt.UTC().Format("15:04:05.000"), killedTasks, strings.Join(per, ", "), afterKill, retained, retainedGap, othersGap)
		o.Logf("   %s: failover %.1f s; retained tasks %v: largest gap %s; all the survivors' tasks: %s; %d records restored; steady: %s", sys, slowest.Seconds(), retained, retainedGap, othersGap, c.FailoverRestored, steadyGap)
	}}
	o.Logf("   %s: the killed instance's tasks process again; %s", sys, g)
	// 4. Scale out: a new instance, empty state directory.
	beforeJoin := g
	live := append(slices.Clone(survivors), "i4")
	restoredBefore = f.restored(survivors)
	joinAt := time.Now()
	if err := f.start("i4"); err != nil {
		return fail("%v", err)
	}
	// stableResumed: the group is stable with live and every task has
	// processed since it became so.
	var stableAt time.Time
	stableResumed := func() (bool, error) {
		ok, err := stableWith(live)()
		if ok && stableAt.IsZero() {
			stableAt = time.Now()
		}
		if !ok {
			return false, err
		}
		return tr.resumed(allPartitions(o.Partitions), stableAt), nil
	}
	if err := wait("the fourth instance in the group", victim, stableResumed); err != nil {
		return fail("%v", err)
	}
	// A scale-out may take more than one rebalance: brook's warm-ups end
	// in a probing rebalance that moves tasks to the new instance once it
	// has caught up (Kafka Streams' only after its 10-minute probing
	// interval). Measure until the group stays stable for the settle
	// time, so the gaps of those follow-up rebalances are in the window.
	for {
		time.Sleep(o.FailoverSettle)
		if ok, _ := stableWith(live)(); ok {
			break
		}
		stableAt = time.Time{}
		if err := wait("the group stable again after a follow-up rebalance", victim, stableResumed); err != nil {
			return fail("after the join: %v", err)
		}
	}
	scaled := time.Now()
	var kept []int32
	for p := int32(0); p < o.Partitions; p++ {
		if in := beforeJoin.owner(p); in != "" && in == g.owner(p) {
			kept = append(kept, p)
		}
	}
	c.ScaleOutRetained = len(kept)
	c.ScaleOutRestored = f.restored(live) - restoredBefore
	afterJoin := g
	figures = append(figures, func() {
		anyGap, keptGap := tr.worstGap(allPartitions(o.Partitions), joinAt, scaled), tr.worstGap(kept, joinAt, scaled)
		c.ScaleOutGapMs, c.ScaleOutRetainedGapMs = ms(anyGap.gap), ms(keptGap.gap)
		c.Note += fmt.Sprintf("; i4 started at %s, in the stable group after %.1f s: %s, retained tasks %v, largest gap %s, of any task %s",
			joinAt.UTC().Format("15:04:05.000"), stableAt.Sub(joinAt).Seconds(), afterJoin, kept, keptGap, anyGap)
		o.Logf("   %s: scale-out: i4 in the group after %.1f s: %s; retained tasks %v: largest gap %s; any task: %s; %d records restored", sys, stableAt.Sub(joinAt).Seconds(), afterJoin, kept, keptGap, anyGap, c.ScaleOutRestored)
	})
	o.Logf("   %s: the fourth instance is in; %s", sys, g)
	// 5. Every record counted once.
	perr := rate.stop()
	rate = nil
	if perr != nil {
		return fail("producer: %v", perr)
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	c.Records = total
	if ends, err = r.b.partitionEnds(f.in); err != nil {
		return fail("%v", err)
	}
	if err := wait("the input processed", victim, func() (bool, error) { return r.b.groupCaughtUp(f.app, f.in, ends) }); err != nil {
		return fail("%v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for tr.counted() < total && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	stopReading()
	rwg.Wait()
	if rerr != nil {
		return fail("reading the output: %v", rerr)
	}
	for _, fig := range figures {
		fig()
	}
	lost, dup, detail := tr.check(counts)
	c.Lost, c.Duplicated = lost, dup
	if detail != "" {
		c.Note += "; exactly-once check: " + detail
	}
	if lost == 0 && dup == 0 {
		c.Output = fmt.Sprintf("%d records in, every key's counts 1..n once", total)
	}
	return c
}

func allPartitions(n int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
