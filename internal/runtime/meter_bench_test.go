package runtime

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/meter"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
)

// ackingProducer is a sarama.AsyncProducer that acknowledges every message
// at once, for running the worker without a broker.
type ackingProducer struct {
	sarama.AsyncProducer // not called
	in                   chan *sarama.ProducerMessage
	succ                 chan *sarama.ProducerMessage
	errs                 chan *sarama.ProducerError
	wg                   sync.WaitGroup
}

func newAckingProducer() *ackingProducer {
	p := &ackingProducer{in: make(chan *sarama.ProducerMessage, 1024), succ: make(chan *sarama.ProducerMessage, 1024), errs: make(chan *sarama.ProducerError)}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for m := range p.in {
			if meta, ok := m.Metadata.(*changelog.Meta); ok && meta.Partition >= 0 {
				m.Partition = meta.Partition
			}
			p.succ <- m
		}
	}()
	return p
}

func (p *ackingProducer) Input() chan<- *sarama.ProducerMessage     { return p.in }
func (p *ackingProducer) Successes() <-chan *sarama.ProducerMessage { return p.succ }
func (p *ackingProducer) Errors() <-chan *sarama.ProducerError      { return p.errs }
func (p *ackingProducer) IsTransactional() bool                     { return false }
func (p *ackingProducer) TxnStatus() sarama.ProducerTxnStatusFlag   { return sarama.ProducerTxnFlagReady }
func (p *ackingProducer) AsyncClose()                               { _ = p.Close() }
func (p *ackingProducer) Close() error {
	close(p.in)
	p.wg.Wait()
	close(p.succ)
	close(p.errs)
	return nil
}

// BenchmarkWorkerRecord runs the worker loop over records pushed into a
// task's queue (source → processor → sink, the sink's records acknowledged
// by a fake producer), with the App's metrics off and on: the difference
// per record is what measuring costs on the hot path (the core's node
// counters, the sink's end-to-end latency, the worker's processing
// latency, the queue's consumed count).
func BenchmarkWorkerRecord(b *testing.B) {
	for _, on := range []bool{false, true} {
		b.Run("metrics="+strconv.FormatBool(on), func(b *testing.B) {
			var m *meter.App
			if on {
				m = meter.NewApp()
			}
			benchWorker(b, m)
		})
	}
}

func benchWorker(b *testing.B, m *meter.App) {
	const topic = "in"
	var processed atomic.Int64
	done := make(chan struct{})
	want := int64(b.N)
	proc := processor.Func[string, string, string, string](func(ctx processor.Context[string, string], r processor.Record[string, string]) error {
		if processed.Add(1) == want {
			close(done)
		}
		return ctx.Forward(r)
	})
	g := &task.Graph{
		Nodes: map[string]*task.NodeSpec{
			"src": {Name: "src", Kind: task.Source, Topics: []string{topic}, Children: []string{"proc"},
				New: task.SourceNode(serde.String(), serde.String(), nil)},
			"proc": {Name: "proc", Kind: task.Processor, Parents: []string{"src"}, Children: []string{"out"},
				New: task.ProcessorNode(func() processor.Processor[string, string, string, string] { return proc })},
			"out": {Name: "out", Kind: task.Sink, Parents: []string{"proc"}, SinkTopic: "out",
				New: task.SinkNode[string, string]("out", nil, serde.String(), serde.String(), nil)},
		},
		Stores:        map[string]*task.StoreSpec{},
		SubTopologies: []*task.SubTopology{{ID: 0, Nodes: []string{"src", "proc", "out"}, SourceTopics: []string{topic}}},
	}
	r, err := New(Config{Graph: g, ApplicationID: "app", StateDir: b.TempDir(), CommitInterval: time.Hour, PunctuateInterval: time.Hour, Meter: m})
	if err != nil {
		b.Fatal(err)
	}
	ap := newAckingProducer()
	r.prod = changelog.NewProducer(ap)
	r.group = sessionGroup{}
	defer r.prod.Close()
	sess := &recordingSession{
		fakeSession: fakeSession{ctx: context.Background(), claims: map[string][]int32{topic: {0}}},
		marked:      map[tpKey]int64{}, committed: map[tpKey]int64{},
	}
	h := &handler{r: r, stop: make(chan struct{}), signals: []chan struct{}{make(chan struct{}, 1)}, workers: []*workerTasks{newWorkerTasks()}}
	tr, err := h.openTask(context.Background(), assign.TaskID{Group: 0, Partition: 0}, 0, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.core.Close()
	tr.queue.addPartition(topic, 0)
	tr.queue.track(topic, 0, 0, 0)
	pm := tr.meter.Partition(topic, 0)
	msgs := make([]sarama.ConsumerMessage, 1024)
	ts := time.Now()
	for i := range msgs {
		msgs[i] = sarama.ConsumerMessage{Topic: topic, Partition: 0, Key: []byte("key-" + strconv.Itoa(i)), Value: []byte("a value of about thirty bytes."), Timestamp: ts}
	}
	b.ReportAllocs()
	b.ResetTimer()
	h.wg.Add(1)
	h.workers[0].add(tr)
	go h.work(sess, 0)
	go func() { // as ConsumeClaim does
		for i := 0; i < b.N; i++ {
			m := msgs[i%len(msgs)]
			m.Offset = int64(i)
			if !tr.queue.pushAt(context.Background(), &m, -1) {
				return
			}
			pm.Consumed()
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("the worker did not process every record")
	}
	b.StopTimer()
	close(h.stop)
	h.wg.Wait()
	tr.queue.close()
}
