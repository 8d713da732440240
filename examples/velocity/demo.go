package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
	"github.com/twmb/franz-go/pkg/kfake"
)

// env is the set-up of one run: broker, topics, client settings.
type env struct {
	o        options
	out      io.Writer
	brokers  []string
	cluster  *kfake.Cluster
	sarama   *sarama.Config
	stateDir string
	topics   topics
	appID    string
}

func setUp(o options, out io.Writer) (_ *env, err error) {
	e := &env{o: o, out: out}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.brokers = splitAddrs(o.brokers)
	if len(e.brokers) == 0 {
		if e.cluster, err = kfake.NewCluster(kfake.NumBrokers(1)); err != nil {
			return nil, fmt.Errorf("start the embedded Kafka cluster: %w", err)
		}
		e.brokers = e.cluster.ListenAddrs()
		fmt.Fprintf(out, "Kafka: embedded cluster at %s (use --brokers for a real one)\n", strings.Join(e.brokers, ","))
	} else {
		fmt.Fprintf(out, "Kafka: %s\n", strings.Join(e.brokers, ","))
	}
	e.topics = topics{
		transactions: o.prefix + "-card-transactions",
		counts:       o.prefix + "-card-counts",
		alerts:       o.prefix + "-card-alerts",
		late:         o.prefix + "-late-transactions",
	}
	e.appID = o.prefix + "-app"
	// The example's own admin, producer and consumers connect as the
	// application does.
	if e.sarama, err = (topology.Config{ApplicationID: e.appID, Brokers: e.brokers, ClientID: "brook-velocity-example"}).SaramaConfig(); err != nil {
		return nil, err
	}
	e.sarama.Producer.Return.Successes = true
	e.sarama.Producer.RequiredAcks = sarama.WaitForAll
	e.sarama.Producer.Partitioner = partition.NewSaramaPartitioner // murmur2, as brook's sinks and the Java client
	// The application writes in transactions: read only what it committed.
	e.sarama.Consumer.IsolationLevel = sarama.ReadCommitted
	if err := e.createTopics(); err != nil {
		return nil, err
	}
	if e.stateDir, err = os.MkdirTemp("", "brook-velocity-"); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.cluster != nil {
		e.cluster.Close()
	}
	if e.stateDir != "" {
		os.RemoveAll(e.stateDir)
	}
}

func (e *env) createTopics() error {
	admin, err := sarama.NewClusterAdmin(e.brokers, e.sarama)
	if err != nil {
		return fmt.Errorf("connect to Kafka at %v: %w", e.brokers, err)
	}
	defer admin.Close()
	for _, t := range []string{e.topics.transactions, e.topics.counts, e.topics.alerts, e.topics.late} {
		err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t, err)
		}
	}
	return nil
}

// sampleTxn is one sample transaction: its event time as an offset from
// the first window's start, and what it shows.
type sampleTxn struct {
	at            time.Duration
	card, payment string
	note          string
}

func at(m, s int) time.Duration { return time.Duration(m)*time.Minute + time.Duration(s)*time.Second }

// sample is written in this order. With windows of 10 minutes and a grace
// of 1, the first window [+0, +10m) closes when stream time reaches +11m.
// In the notes, +Nm reads as the base time plus N minutes.
var sample = []sampleTxn{
	{at(0, 30), "card-1111", "pay-01", ""},
	{at(1, 0), "card-2222", "pay-02", ""},
	{at(2, 0), "card-1111", "pay-03", ""},
	{at(3, 10), "card-1111", "pay-04", ""},
	{at(4, 0), "card-2222", "pay-05", ""},
	{at(3, 10), "card-1111", "pay-04", "retry of pay-04: a duplicate, dropped"},
	{at(4, 0), "card-2222", "pay-05", "retry of pay-05: a duplicate, dropped"},
	{at(5, 0), "card-1111", "pay-06", ""},
	{at(6, 0), "card-2222", "pay-07", ""},
	{at(8, 0), "card-3333", "pay-08", ""},
	{at(9, 0), "card-3333", "pay-09", ""},
	{at(10, 40), "card-3333", "pay-10", "next window; the first stays open until +11m (end + grace)"},
	{at(7, 45), "card-1111", "pay-11", "out of order, within grace: counted in the first window"},
	{at(13, 0), "card-3333", "pay-12", "stream time passes +11m: the first window closes"},
	{at(8, 30), "card-2222", "pay-13", "late: its window has closed; set aside, not counted"},
	{at(12, 0), "card-1111", "pay-14", ""},
	{at(14, 0), "card-1111", "pay-15", ""},
	{at(15, 30), "card-1111", "pay-16", ""},
	{at(9, 30), "card-3333", "pay-17", "late"},
	{at(16, 0), "card-1111", "pay-18", ""},
	{at(22, 0), "card-4444", "pay-19", "stream time passes +21m: the second window closes; the third stays open"},
}

func (e *env) demo(ctx context.Context) error {
	topo, err := buildTopology(e.topics)
	if err != nil {
		return err
	}
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: e.appID, Brokers: e.brokers, StateDir: e.stateDir,
		Guarantee: topology.ExactlyOnce, CommitInterval: 200 * time.Millisecond,
		Logger: e.o.logger,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	runDone := make(chan struct{})
	go func() { // waited for by stop
		runErr = app.Run(ctx)
		close(runDone)
	}()
	stop := func() error {
		cancel()
		<-runDone
		return runErr
	}
	defer func() { _ = stop() }() // on the normal path stop's error is returned below
	fmt.Fprintf(e.out, "Application %s: exactly-once, %v tumbling windows with %v grace, alerts above %d transactions\n",
		e.appID, windowSize, windowGrace, maxTxns)

	n, err := e.produce()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "\nWaiting until the application has committed all %d transactions...\n", n)
	if err := e.waitCommitted(ctx, runDone, n); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted
		}
		select {
		case <-runDone:
			if runErr != nil {
				return fmt.Errorf("application: %w", runErr)
			}
		default:
		}
		return err
	}
	if err := e.printResults(ctx); err != nil {
		return err
	}
	fmt.Fprintln(e.out, "\nStopping.")
	return stop()
}

func (e *env) clock(d time.Duration) string { return e.o.base.Add(d).Format("15:04:05") }

func (e *env) window(start, end time.Time) string {
	return start.UTC().Format("15:04") + "-" + end.UTC().Format("15:04")
}

// produce writes the sample to the transactions topic, one record at a
// time so that the order is the one listed, and returns how many it wrote.
func (e *env) produce() (int64, error) {
	prod, err := sarama.NewSyncProducer(e.brokers, e.sarama)
	if err != nil {
		return 0, fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()
	values := serde.JSON[Txn]()
	notes := strings.NewReplacer("+11m", e.clock(11*time.Minute), "+21m", e.clock(21*time.Minute))
	fmt.Fprintf(e.out, "\nWriting card transactions to %s (event time, in the order written):\n", e.topics.transactions)
	for i, s := range sample {
		v, err := values.Serialize(e.topics.transactions, Txn{PaymentID: s.payment, Card: s.card, AmountCents: int64(1000 + 250*i)})
		if err != nil {
			return 0, err
		}
		ts := e.o.base.Add(s.at)
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{
			Topic: e.topics.transactions, Key: sarama.StringEncoder(s.card), Value: sarama.ByteEncoder(v), Timestamp: ts,
		}); err != nil {
			return 0, fmt.Errorf("write transaction %s: %w", s.payment, err)
		}
		line := fmt.Sprintf("  %s  %s  %s", e.clock(s.at), s.card, s.payment)
		if s.note != "" {
			line += "   <- " + notes.Replace(s.note)
		}
		fmt.Fprintln(e.out, line)
	}
	return int64(len(sample)), nil
}

// waitCommitted polls the application's committed offset on the
// transactions topic until it has passed every record written: under
// exactly-once the outputs of those records are committed in the same
// transactions, so they can all be read.
func (e *env) waitCommitted(ctx context.Context, runDone <-chan struct{}, n int64) error {
	admin, err := sarama.NewClusterAdmin(e.brokers, e.sarama)
	if err != nil {
		return err
	}
	defer admin.Close()
	client, err := sarama.NewClient(e.brokers, e.sarama)
	if err != nil {
		return err
	}
	defer client.Close()
	end, err := client.GetOffset(e.topics.transactions, 0, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("end offset of %s: %w", e.topics.transactions, err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := admin.ListConsumerGroupOffsets(e.appID, map[string][]int32{e.topics.transactions: {0}})
		if err == nil {
			if b := resp.GetBlock(e.topics.transactions, 0); b != nil && b.Err == sarama.ErrNoError && b.Offset >= end {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the application has not committed the %d transactions after 2 minutes (group %s)", n, e.appID)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-runDone:
			return errors.New("the application stopped before committing the transactions")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// printResults reads the three output topics (read_committed) and prints
// them.
func (e *env) printResults(ctx context.Context) error {
	names := []string{e.topics.counts, e.topics.alerts, e.topics.late}
	got := make([][]*sarama.ConsumerMessage, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, t := range names {
		wg.Add(1)
		go func() { // waited for just below
			defer wg.Done()
			got[i], errs[i] = e.readAll(ctx, t)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	keys, counts := topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64())
	fmt.Fprintf(e.out, "\nFinal count per card and window, once each window closed (%s):\n", e.topics.counts)
	for _, m := range got[0] {
		k, err := keys.Deserialize(m.Topic, m.Key)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: key: %w", m.Topic, m.Partition, m.Offset, err)
		}
		c, err := counts.Deserialize(m.Topic, m.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: value: %w", m.Topic, m.Partition, m.Offset, err)
		}
		fmt.Fprintf(e.out, "  %s  %s  %d\n", k.Key, e.window(k.Start, k.End), c.Value)
	}
	fmt.Fprintln(e.out, "  (windows still open have no final yet: it comes when stream time passes their end plus grace)")

	alerts := serde.JSON[Alert]()
	fmt.Fprintf(e.out, "\nAlerts, more than %d transactions in a window (%s):\n", maxTxns, e.topics.alerts)
	for _, m := range got[1] {
		a, err := alerts.Deserialize(m.Topic, m.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		fmt.Fprintf(e.out, "  %s made %d transactions in %s\n", a.Card, a.Count, e.window(a.From, a.To))
	}

	txns := serde.JSON[Txn]()
	fmt.Fprintf(e.out, "\nLate transactions, not counted but not lost (%s):\n", e.topics.late)
	for _, m := range got[2] {
		t, err := txns.Deserialize(m.Topic, m.Value)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		h := make(processor.Headers, 0, len(m.Headers))
		for _, rh := range m.Headers {
			h = append(h, processor.Header{Key: string(rh.Key), Value: rh.Value})
		}
		start, end, streamTime := headerTime(h, topology.LateWindowStartHeader), headerTime(h, topology.LateWindowEndHeader), headerTime(h, topology.LateStreamTimeHeader)
		fmt.Fprintf(e.out, "  %s  %s  %s: window %s had closed (stream time %s)\n",
			m.Timestamp.UTC().Format("15:04:05"), t.Card, t.PaymentID, e.window(start, end), streamTime.UTC().Format("15:04:05"))
	}
	return nil
}

// headerTime reads a header holding Unix milliseconds (zero time if absent
// or malformed).
func headerTime(h processor.Headers, key string) time.Time {
	v, ok := h.Get(key)
	if !ok {
		return time.Time{}
	}
	ms, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}

// readAll reads a one-partition topic from its start to its end,
// read_committed. Transaction markers take offsets that are never
// delivered, so it stops at the end offset or after a second without
// records.
func (e *env) readAll(ctx context.Context, topic string) ([]*sarama.ConsumerMessage, error) {
	client, err := sarama.NewClient(e.brokers, e.sarama)
	if err != nil {
		return nil, err
	}
	defer client.Close()
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("end offset of %s: %w", topic, err)
	}
	if end == 0 {
		return nil, nil
	}
	c, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", topic, err)
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	idle := time.NewTimer(time.Second)
	defer idle.Stop()
	for {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
			if m.Offset >= end-1 {
				return out, nil
			}
			idle.Reset(time.Second)
		case err := <-pc.Errors():
			return out, fmt.Errorf("consume %s: %w", topic, err)
		case <-idle.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
}
