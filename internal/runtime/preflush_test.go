package runtime

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/store"
)

// lostGroup answers every membership check with a lost membership.
type lostGroup struct{ sessionGroup }

func (lostGroup) checkMembership(context.Context, sarama.ConsumerGroupSession) error {
	return fmt.Errorf("%w: test", ErrMembershipLost)
}

// openBareTask opens a task of a one-source topology without stores and
// with an acknowledging fake producer, for tests of the commit paths.
func openBareTask(t *testing.T) (*handler, *taskRun) {
	t.Helper()
	g := &task.Graph{
		Nodes: map[string]*task.NodeSpec{
			"src": {Name: "src", Kind: task.Source, Topics: []string{"in"}, Children: []string{"proc"},
				New: task.SourceNode(serde.String(), serde.String(), nil)},
			"proc": {Name: "proc", Kind: task.Processor, Parents: []string{"src"},
				New: task.ProcessorNode(func() processor.Processor[string, string, string, string] {
					return processor.Func[string, string, string, string](func(processor.Context[string, string], processor.Record[string, string]) error { return nil })
				})},
		},
		Stores:        map[string]*task.StoreSpec{},
		SubTopologies: []*task.SubTopology{{ID: 0, Nodes: []string{"src", "proc"}, SourceTopics: []string{"in"}}},
	}
	r, err := New(Config{Graph: g, ApplicationID: "app", StateDir: t.TempDir(), CommitInterval: time.Hour, PunctuateInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r.prod = changelog.NewProducer(newAckingProducer())
	r.group = sessionGroup{}
	t.Cleanup(func() { r.prod.Close() })
	h := &handler{r: r, stop: make(chan struct{}), signals: []chan struct{}{make(chan struct{}, 1)}, workers: []*workerTasks{newWorkerTasks()}}
	tr, err := h.openTask(context.Background(), assign.TaskID{Group: 0, Partition: 0}, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.core.Close() })
	return h, tr
}

// TestPreflushSendsTheChangelogBufferOnlyWhenAMemberMay: a preflush hands
// the task's deduplicated changelog records to the producer, under
// at-least-once only once the membership is confirmed, and never while
// the member negotiates a new generation; the records then wait for the
// commit, which sends them.
func TestPreflushSendsTheChangelogBufferOnlyWhenAMemberMay(t *testing.T) {
	h, tr := openBareTask(t)
	sess := newFakeSession(map[string][]int32{"in": {0}})
	tp := store.TopicPartition{Topic: "app-s-changelog", Partition: 0}
	buffer := func() {
		t.Helper()
		for _, k := range []string{"a", "b", "a"} { // a twice: one record
			if err := tr.coll.SendChangelog(tp.Topic, tp.Partition, []byte(k), []byte("v")); err != nil {
				t.Fatal(err)
			}
		}
	}
	buffered := func() int { return len(tr.coll.records) }

	buffer()
	h.r.gate.joining() // a rebalance under way: nothing goes
	if err := h.preflush(sess, []*taskRun{tr}); err != nil || buffered() != 2 {
		t.Fatalf("preflush during a join: err %v, %d records still buffered, want 2", err, buffered())
	}
	h.r.gate.joined(1)

	h.r.group = lostGroup{}
	if err := h.preflush(sess, []*taskRun{tr}); err != nil || buffered() != 2 {
		t.Fatalf("preflush of a member the group dropped: err %v, %d records still buffered, want 2", err, buffered())
	}

	h.r.group = sessionGroup{}
	if err := h.preflush(sess, []*taskRun{tr}); err != nil || buffered() != 0 {
		t.Fatalf("preflush: err %v, %d records still buffered, want 0", err, buffered())
	}
	if failed := h.r.prod.Flush(); len(failed) != 0 {
		t.Fatalf("failed: %v", failed)
	}
	if _, ok := h.r.prod.Acked(tp); !ok {
		t.Fatalf("no changelog record of %s acknowledged after the preflush", tp)
	}
}

// TestPeriodicCheckpointOnlyWhenDue: a periodic commit rewrites the
// task's checkpoint the first time, then only once its offsets moved
// checkpointMinRecords or checkpointMaxAge passed; a final commit always
// does.
func TestPeriodicCheckpointOnlyWhenDue(t *testing.T) {
	_, tr := openBareTask(t)
	tp := store.TopicPartition{Topic: "app-s-changelog", Partition: 0}
	onDisk := func() int64 {
		t.Helper()
		offs, err := store.ReadCheckpoint(tr.dir)
		if err != nil {
			t.Fatal(err)
		}
		if off, ok := offs[tp]; ok {
			return off
		}
		return -1
	}
	step := func(off int64, periodic bool, want int64) {
		t.Helper()
		tr.logged = map[store.TopicPartition]int64{tp: off}
		if err := tr.checkpoint(periodic); err != nil {
			t.Fatal(err)
		}
		if got := onDisk(); got != want {
			t.Fatalf("after a commit at %d (periodic %v): checkpoint %d, want %d", off, periodic, got, want)
		}
	}
	step(5, true, 5)                            // none written yet
	step(100, true, 5)                          // 95 records: not due
	step(200, false, 200)                       // a final commit
	step(200+checkpointMinRecords-1, true, 200) // one short
	step(200+checkpointMinRecords, true, 200+checkpointMinRecords)
	tr.ckptAt = time.Now().Add(-checkpointMaxAge)
	step(200+checkpointMinRecords+1, true, 200+checkpointMinRecords+1) // old enough
}
