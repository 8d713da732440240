package runtime

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
)

// recordingSession is a fakeSession that remembers the offsets committed
// to the group (MarkOffset, then Commit).
type recordingSession struct {
	fakeSession
	mu        sync.Mutex
	marked    map[tpKey]int64
	committed map[tpKey]int64
}

func (s *recordingSession) MarkOffset(topic string, p int32, off int64, _ string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.marked[tpKey{topic, p}] = off
}

func (s *recordingSession) Commit() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, v := range s.marked {
		s.committed[k] = v
	}
}

func (s *recordingSession) committedOffset(topic string, p int32) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	off, ok := s.committed[tpKey{topic, p}]
	return off, ok
}

// TestRequestCommitCommitsBeforeTheNextRecord: a processor that calls
// RequestCommit gets its task committed before the task processes another
// record, even when more records are already buffered (processor.Context
// promises the commit "as soon as possible after the current record").
// Before, the worker went on through its batch of up to 100 buffered
// records and committed after them, so the transaction of a record that
// followed a requested commit was not a new one under exactly-once.
func TestRequestCommitCommitsBeforeTheNextRecord(t *testing.T) {
	const topic = "in"
	type seen struct {
		offset    int64
		committed int64 // the group's committed offset of the partition then; -1: none
	}
	var mu sync.Mutex
	var log []seen
	done := make(chan struct{})
	var sess *recordingSession
	proc := processor.Func[string, string, string, string](func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		md, _ := ctx.RecordMetadata()
		off, ok := sess.committedOffset(topic, 0)
		if !ok {
			off = -1
		}
		mu.Lock()
		log = append(log, seen{md.Offset, off})
		n := len(log)
		mu.Unlock()
		if md.Offset == 0 || md.Offset == 3 {
			ctx.RequestCommit()
		}
		if n == 5 {
			close(done)
		}
		return nil
	})
	g := &task.Graph{
		Nodes: map[string]*task.NodeSpec{
			"src": {Name: "src", Kind: task.Source, Topics: []string{topic}, Children: []string{"proc"},
				New: task.SourceNode(serde.String(), serde.String(), nil)},
			"proc": {Name: "proc", Kind: task.Processor, Parents: []string{"src"},
				New: task.ProcessorNode(func() processor.Processor[string, string, string, string] { return proc })},
		},
		Stores:        map[string]*task.StoreSpec{},
		SubTopologies: []*task.SubTopology{{ID: 0, Nodes: []string{"src", "proc"}, SourceTopics: []string{topic}}},
	}
	r, err := New(Config{Graph: g, ApplicationID: "app", StateDir: t.TempDir(), CommitInterval: time.Hour, PunctuateInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r.prod = changelog.NewProducer(mocks.NewAsyncProducer(t, nil))
	r.group = sessionGroup{} // no broker: commit through the recording session
	defer r.prod.Close()
	sess = &recordingSession{
		fakeSession: fakeSession{ctx: context.Background(), claims: map[string][]int32{topic: {0}}},
		marked:      map[tpKey]int64{}, committed: map[tpKey]int64{},
	}
	h := &handler{r: r, stop: make(chan struct{}), signals: []chan struct{}{make(chan struct{}, 1)}, workers: []*workerTasks{newWorkerTasks()}}
	tr, err := h.openTask(context.Background(), assign.TaskID{Group: 0, Partition: 0}, 0, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.core.Close()
	// Every record is buffered before the worker starts: one batch.
	tr.queue.addPartition(topic, 0)
	ts := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for off := int64(0); off < 5; off++ {
		m := &sarama.ConsumerMessage{Topic: topic, Partition: 0, Offset: off, Key: []byte("k"), Value: []byte("v"), Timestamp: ts}
		if !tr.queue.push(context.Background(), m) {
			t.Fatal("push refused")
		}
	}
	h.wg.Add(1)
	h.workers[0].add(tr)
	go h.work(sess, 0)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the worker did not process the 5 buffered records within 10s")
	}
	close(h.stop)
	h.wg.Wait()

	// Records 1-3 come after the commit requested at record 0 (next
	// offset 1), records 4 after the one requested at record 3.
	want := []seen{{0, -1}, {1, 1}, {2, 1}, {3, 1}, {4, 4}}
	mu.Lock()
	defer mu.Unlock()
	if len(log) != len(want) {
		t.Fatalf("processed %v, want %v", log, want)
	}
	for i := range want {
		if log[i] != want[i] {
			t.Fatalf("record %d was processed with committed offset %d, want %d (a requested commit must happen before the task's next record); all: %+v",
				log[i].offset, log[i].committed, want[i].committed, log)
		}
	}
}

// sessionGroup commits through the session's own MarkOffset and Commit and
// never loses the membership: the worker runs without a broker.
type sessionGroup struct{}

func (sessionGroup) checkMembership(context.Context, sarama.ConsumerGroupSession) error { return nil }

func (sessionGroup) commitOffsets(_ context.Context, sess sarama.ConsumerGroupSession, offs []task.Offset) error {
	for _, o := range offs {
		sess.MarkOffset(o.Topic, o.Partition, o.Offset, "")
	}
	sess.Commit()
	return nil
}
