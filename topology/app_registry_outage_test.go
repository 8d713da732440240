package topology_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde/avro"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// outageRegistryURL is the registry the outage tests put a proxy in front
// of: SCHEMA_REGISTRY_URL when set, else an embedded one.
func outageRegistryURL(t *testing.T) string {
	if u := strings.TrimRight(os.Getenv("SCHEMA_REGISTRY_URL"), "/"); u != "" {
		return u
	}
	return testutil.StartRegistry(t).URL()
}

// warnCounter is a slog handler that counts records at warning level and
// above (the registry client warns at each failed attempt) and passes
// everything on.
type warnCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h warnCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h warnCounter) WithAttrs(as []slog.Attr) slog.Handler {
	return warnCounter{h.Handler.WithAttrs(as), h.n}
}

func (h warnCounter) WithGroup(name string) slog.Handler {
	return warnCounter{h.Handler.WithGroup(name), h.n}
}

// appRegistry is the application's registry client, through the proxy:
// one call waits at most bound for the registry to come back, one HTTP
// request at most reqTimeout.
func appRegistry(t *testing.T, url string, bound, reqTimeout time.Duration, log *slog.Logger) *avro.Registry {
	t.Helper()
	reg, err := avro.NewRegistry(url, avro.WithLogger(log), avro.WithRetry(bound), avro.WithRequestTimeout(reqTimeout))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	return reg
}

type payment struct {
	ID    string `avro:"id"`
	Cents int64  `avro:"cents"`
}

// The writer's schema evolves: v2 and v3 add fields with defaults, so the
// application (reading with v1) needs each new writer schema from the
// registry before it can read the records written with it.
const (
	paymentV1 = `{"type":"record","name":"Payment","namespace":"brook.outage","fields":[
		{"name":"id","type":"string"},{"name":"cents","type":"long"}]}`
	paymentV2 = `{"type":"record","name":"Payment","namespace":"brook.outage","fields":[
		{"name":"id","type":"string"},{"name":"cents","type":"long"},
		{"name":"note","type":"string","default":""}]}`
	paymentV3 = `{"type":"record","name":"Payment","namespace":"brook.outage","fields":[
		{"name":"id","type":"string"},{"name":"cents","type":"long"},
		{"name":"note","type":"string","default":""},{"name":"channel","type":"string","default":"web"}]}`
)

// producePayments writes records from..to-1 with the writer schema, in
// the registry's wire format, to partition 0 of topic.
func producePayments(t *testing.T, b *testutil.Broker, w *avro.Avro[map[string]any], topic string, from, to int) {
	t.Helper()
	var msgs []*sarama.ProducerMessage
	for i := from; i < to; i++ {
		v := map[string]any{"id": fmt.Sprintf("p-%02d", i), "cents": int64(i), "note": "n", "channel": "api"}
		bs, err := w.Serialize(topic, v)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(fmt.Sprintf("k-%02d", i)), Value: sarama.ByteEncoder(bs)})
	}
	b.Produce(t, topic, msgs...)
}

func paymentValues(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("p-%02d:%d", i, i))
	}
	return out
}

func topicValues(t *testing.T, b *testutil.Broker, topic string) []string {
	var out []string
	for _, m := range b.ConsumeAllCommitted(t, topic) {
		out = append(out, string(m.Value))
	}
	return out
}

// outageHandlers return the builder options that install each error
// handler under test (dlq is the dead-letter topic).
var outageHandlers = map[string]func(dlq string, log *slog.Logger) []topology.Option{
	"fail": func(string, *slog.Logger) []topology.Option { return nil },
	"log-and-continue": func(_ string, log *slog.Logger) []topology.Option {
		return []topology.Option{
			topology.WithDeserializationHandler(processor.LogAndContinue(log)),
			topology.WithProcessingHandler(processor.LogAndContinue(log)),
		}
	},
	"dead-letter": func(dlq string, log *slog.Logger) []topology.Option {
		dl := processor.DeadLetter(dlq, log)
		return []topology.Option{topology.WithDeserializationHandler(dl), topology.WithProcessingHandler(dl)}
	},
}

// TestAppRegistryOutageLosesNothing runs a topology whose source reads
// Avro records through a schema registry behind a proxy, and takes the
// registry away mid-stream while records arrive with writer schemas the
// application has not fetched yet. Under each error handler (fail,
// log-and-continue, dead-letter) and each kind of outage (connections
// refused, HTTP 503, blackholed):
//
//   - an outage shorter than the retry bound: the application waits, and
//     processes every record once the registry is back; nothing is
//     dropped, nothing dead-lettered, Run keeps running;
//   - an outage longer than the bound: Run returns an error naming the
//     registry, the committed offset is the first record not processed,
//     nothing went to the handlers; restarted after the registry is back,
//     the application processes the rest, exactly once here.
func TestAppRegistryOutageLosesNothing(t *testing.T) {
	cases := []struct {
		handler     string
		short, long testutil.OutageMode
		guarantee   topology.Guarantee
	}{
		{"fail", testutil.RegistryRefusing, testutil.RegistryFailing, topology.AtLeastOnce},
		{"log-and-continue", testutil.RegistryFailing, testutil.RegistryBlackholed, topology.AtLeastOnce},
		{"dead-letter", testutil.RegistryBlackholed, testutil.RegistryRefusing, topology.AtLeastOnce},
		{"dead-letter", testutil.RegistryFailing, testutil.RegistryFailing, topology.ExactlyOnce},
	}
	regURL := outageRegistryURL(t)
	for _, c := range cases {
		name := fmt.Sprintf("%s/short-%s/long-%s", c.handler, strings.ReplaceAll(c.short.String(), " ", "-"), strings.ReplaceAll(c.long.String(), " ", "-"))
		if c.guarantee == topology.ExactlyOnce {
			name += "/exactly-once"
		}
		t.Run(name, func(t *testing.T) {
			testRegistryOutage(t, regURL, outageHandlers[c.handler], c.short, c.long, c.guarantee)
		})
	}
}

func testRegistryOutage(t *testing.T, regURL string, handler func(string, *slog.Logger) []topology.Option, short, long testutil.OutageMode, guarantee topology.Guarantee) {
	b := testutil.NewBroker(t)
	in, out, dlq := testutil.TopicName(t, "in"), testutil.TopicName(t, "out"), testutil.TopicName(t, "dlq")
	for _, tp := range []string{in, out, dlq} {
		b.CreateTopic(t, tp, 1, nil)
	}
	log := testLogger(t)
	// The writers talk to the registry directly.
	writerReg, err := avro.NewRegistry(regURL, avro.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer writerReg.Close()
	writer := func(schema string) *avro.Avro[map[string]any] {
		w, err := avro.NewAvro[map[string]any](writerReg, schema)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	proxy := testutil.NewRegistryProxy(t, regURL)
	appID := testutil.TopicName(t, "app")
	var warnings atomic.Int64
	appLog := slog.New(warnCounter{log.Handler(), &warnings})
	const bound = 6 * time.Second
	newApp := func() *topology.App {
		reader, err := avro.NewAvro[payment](appRegistry(t, proxy.URL(), bound, 300*time.Millisecond, appLog), paymentV1)
		if err != nil {
			t.Fatal(err)
		}
		tb := topology.New(handler(dlq, log)...)
		src := topology.Source(tb, "in", in, serde.String(), serde.Serde[payment](reader))
		formatted := topology.ProcessFunc(tb, "format", src, processor.MapValues(func(_ string, p payment) (string, error) {
			return fmt.Sprintf("%s:%d", p.ID, p.Cents), nil
		}))
		topology.Sink(tb, "out", out, formatted, serde.String(), serde.String())
		topo, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		app, err := topology.NewApp(topo, topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 50 * time.Millisecond, Guarantee: guarantee, Logger: log,
		})
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	setMode := func(m testutil.OutageMode) {
		t.Helper()
		if err := proxy.Set(m); err != nil {
			t.Fatal(err)
		}
	}
	noDeadLetters := func() {
		t.Helper()
		if dead := b.ConsumeAll(t, dlq); len(dead) > 0 {
			t.Fatalf("%d records went to the dead-letter topic during the outage (first: %q)", len(dead), dead[0].Value)
		}
	}
	// waitOut waits until out holds want, failing early if Run returns.
	waitOut := func(done <-chan error, want []string, what string) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for {
			got := topicValues(t, b, out)
			if slices.Equal(got, want) {
				return
			}
			select {
			case err := <-done:
				t.Fatalf("%s: Run returned %v; out has %d of %d records", what, err, len(got), len(want))
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: out has %d records %v, want %d %v", what, len(got), got, len(want), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// Phase 1: the registry is up; the application learns writer schema v1.
	producePayments(t, b, writer(paymentV1), in, 0, 10)
	done := make(chan error, 1)
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	first := newApp()
	go func() { done <- first.Run(runCtx) }()
	waitOut(done, paymentValues(0, 10), "before the outage")

	// Phase 2: a short outage while records with writer schema v2 arrive.
	setMode(short)
	producePayments(t, b, writer(paymentV2), in, 10, 20)
	// Evidence that the application met the outage: the registry client
	// warns at each failed attempt (a 503 is also seen by the proxy; a
	// blackholed request only fails at the client's time-out).
	met := func() bool { return warnings.Load() > 0 || (short == testutil.RegistryFailing && proxy.Failed() > 0) }
	for deadline := time.Now().Add(30 * time.Second); !met(); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("Run returned during a short outage: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the application never met the outage")
		}
	}
	noDeadLetters()
	setMode(testutil.RegistryUp)
	waitOut(done, paymentValues(0, 20), "after a short outage")
	noDeadLetters()

	// Phase 3: an outage longer than the bound, while records with writer
	// schema v3 arrive: Run stops with an error naming the registry.
	setMode(long)
	producePayments(t, b, writer(paymentV3), in, 20, 30)
	var runErr error
	select {
	case runErr = <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("Run still running 60s into an outage longer than its %v bound; out has %d records", bound, len(topicValues(t, b, out)))
	}
	t.Logf("Run stopped with: %v", runErr)
	if !errors.Is(runErr, serde.ErrRegistryUnavailable) || !strings.Contains(runErr.Error(), proxy.URL()) {
		t.Fatalf("Run returned %v, want an error that is serde.ErrRegistryUnavailable and names %s", runErr, proxy.URL())
	}
	if got := committedOffset(t, b, appID, in, 0); got != 20 {
		t.Fatalf("committed offset %d, want 20 (the first record the registry outage held up)", got)
	}
	if got := topicValues(t, b, out); !slices.Equal(got, paymentValues(0, 20)) {
		t.Fatalf("out has %v, want exactly the first 20 records", got)
	}
	noDeadLetters()

	// Restart after the registry is back: the rest is processed.
	setMode(testutil.RegistryUp)
	done = make(chan error, 1)
	second := newApp()
	go func() { done <- second.Run(runCtx) }()
	waitOut(done, paymentValues(0, 30), "after the restart")
	stop()
	if err := <-done; err != nil {
		t.Fatalf("restarted Run: %v", err)
	}
	noDeadLetters()
}

// TestAppRegistryOutageAtSink: a sink's Avro serde registers its schema at
// its first record. When the registry is unavailable then, and stays so
// past the retry bound, the failure is not the record's: the production
// handler (which would drop it) is never asked, Run stops with an error
// naming the registry, nothing is committed past the record, and a restart
// after the registry is back produces every record.
func TestAppRegistryOutageAtSink(t *testing.T) {
	regURL := outageRegistryURL(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	log := testLogger(t)
	proxy := testutil.NewRegistryProxy(t, regURL)
	appID := testutil.TopicName(t, "app")
	var handled atomic.Int64
	dropper := func(ec processor.ErrorContext, _ processor.ProducedRecord) processor.HandlerResponse {
		handled.Add(1)
		log.Warn("production handler dropped a record", "offset", ec.Offset, "err", ec.Err)
		return processor.Continue
	}
	running := make(chan struct{}, 4)
	newApp := func() *topology.App {
		values, err := avro.NewAvro[payment](appRegistry(t, proxy.URL(), 2*time.Second, 300*time.Millisecond, log), paymentV1)
		if err != nil {
			t.Fatal(err)
		}
		tb := topology.New(topology.WithProductionHandler(dropper))
		src := topology.Source(tb, "in", in, serde.String(), serde.String())
		pays := topology.ProcessFunc(tb, "parse", src, processor.MapValues(func(_ string, v string) (payment, error) {
			return payment{ID: v, Cents: int64(len(v))}, nil
		}))
		topology.Sink(tb, "out", out, pays, serde.String(), serde.Serde[payment](values))
		topo, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		app, err := topology.NewApp(topo, topology.Config{
			ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), CommitInterval: 50 * time.Millisecond, Logger: log,
			StateListener: func(_, to topology.State) {
				if to == topology.StateRunning {
					select {
					case running <- struct{}{}:
					default:
					}
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Start with the registry up, so the preflight check passes; take it
	// away before the first record reaches the sink.
	done := make(chan error, 1)
	first := newApp()
	go func() { done <- first.Run(ctx) }()
	select {
	case <-running:
	case err := <-done:
		t.Fatalf("Run returned before running: %v", err)
	case <-ctx.Done():
		t.Fatal("the app never ran")
	}
	if err := proxy.Set(testutil.RegistryFailing); err != nil {
		t.Fatal(err)
	}
	var msgs []*sarama.ProducerMessage
	var want []payment
	for i := 0; i < 5; i++ {
		v := fmt.Sprintf("pay-%d", i)
		msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)})
		want = append(want, payment{ID: v, Cents: int64(len(v))})
	}
	b.Produce(t, in, msgs...)
	var runErr error
	for deadline := time.Now().Add(45 * time.Second); ; {
		if n := handled.Load(); n > 0 {
			t.Fatalf("the production handler was asked about %d records during a registry outage", n)
		}
		select {
		case runErr = <-done:
		case <-time.After(50 * time.Millisecond):
			if time.Now().After(deadline) {
				t.Fatal("Run still running 45s into an outage longer than its 2s bound")
			}
			continue
		}
		break
	}
	t.Logf("Run stopped with: %v", runErr)
	var pe *processor.ProductionError
	if !errors.Is(runErr, serde.ErrRegistryUnavailable) || !errors.As(runErr, &pe) || !strings.Contains(runErr.Error(), proxy.URL()) {
		t.Fatalf("Run returned %v, want a ProductionError that is serde.ErrRegistryUnavailable and names %s", runErr, proxy.URL())
	}
	if got := committedOffset(t, b, appID, in, 0); got > 0 {
		t.Fatalf("committed offset %d, want none or 0 (the first record could not be produced)", got)
	}
	if got := b.ConsumeAll(t, out); len(got) != 0 {
		t.Fatalf("out has %d records, want none", len(got))
	}

	// Restart with the registry back: every record is produced.
	if err := proxy.Set(testutil.RegistryUp); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done = make(chan error, 1)
	second := newApp()
	go func() { done <- second.Run(runCtx) }()
	got := b.WaitForRecords(t, out, len(want), false, 45*time.Second)
	stop()
	if err := <-done; err != nil {
		t.Fatalf("restarted Run: %v", err)
	}
	readerReg, err := avro.NewRegistry(regURL, avro.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer readerReg.Close()
	reader, err := avro.NewAvro[payment](readerReg, paymentV1)
	if err != nil {
		t.Fatal(err)
	}
	var gotPays []payment
	for _, m := range got {
		p, err := reader.Deserialize(out, m.Value)
		if err != nil {
			t.Fatalf("%s@%d: %v", out, m.Offset, err)
		}
		gotPays = append(gotPays, p)
	}
	if !slices.Equal(gotPays, want) {
		t.Fatalf("out has %v, want %v", gotPays, want)
	}
	if n := handled.Load(); n > 0 {
		t.Fatalf("the production handler was asked about %d records", n)
	}
}

// TestAppShutdownDuringRegistryOutage: an application waiting for the
// registry stops promptly when asked to (it does not sit out the retry
// bound), without an error, and commits only up to the record it waited
// for, which the next run processes.
func TestAppShutdownDuringRegistryOutage(t *testing.T) {
	regURL := outageRegistryURL(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)
	log := testLogger(t)
	writerReg, err := avro.NewRegistry(regURL, avro.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	defer writerReg.Close()
	w1, err := avro.NewAvro[map[string]any](writerReg, paymentV1)
	if err != nil {
		t.Fatal(err)
	}
	w2, err := avro.NewAvro[map[string]any](writerReg, paymentV2)
	if err != nil {
		t.Fatal(err)
	}
	proxy := testutil.NewRegistryProxy(t, regURL)
	appID := testutil.TopicName(t, "app")
	var warnings atomic.Int64
	appLog := slog.New(warnCounter{log.Handler(), &warnings})
	newApp := func() *topology.App {
		reader, err := avro.NewAvro[payment](appRegistry(t, proxy.URL(), 5*time.Minute, 300*time.Millisecond, appLog), paymentV1)
		if err != nil {
			t.Fatal(err)
		}
		tb := topology.New()
		src := topology.Source(tb, "in", in, serde.String(), serde.Serde[payment](reader))
		formatted := topology.ProcessFunc(tb, "format", src, processor.MapValues(func(_ string, p payment) (string, error) {
			return fmt.Sprintf("%s:%d", p.ID, p.Cents), nil
		}))
		topology.Sink(tb, "out", out, formatted, serde.String(), serde.String())
		topo, err := tb.Build()
		if err != nil {
			t.Fatal(err)
		}
		app, err := topology.NewApp(topo, topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(),
			CommitInterval: 50 * time.Millisecond, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		return app
	}
	producePayments(t, b, w1, in, 0, 5)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	first := newApp()
	go func() { done <- first.Run(ctx) }()
	if got := b.WaitForRecords(t, out, 5, false, 45*time.Second); len(got) != 5 {
		t.Fatalf("out has %d records before the outage, want 5", len(got))
	}
	if err := proxy.Set(testutil.RegistryFailing); err != nil {
		t.Fatal(err)
	}
	producePayments(t, b, w2, in, 5, 10)
	for deadline := time.Now().Add(30 * time.Second); warnings.Load() == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the application never met the outage")
		}
	}
	// The retry bound is 5 minutes; a shutdown must not wait for it.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run returned %v at shutdown, want nil", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run still running 20s after shutdown began: it sits out the registry retry")
	}
	if got := committedOffset(t, b, appID, in, 0); got != 5 {
		t.Fatalf("committed offset %d, want 5 (the record that waited for the registry)", got)
	}
	if err := proxy.Set(testutil.RegistryUp); err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	done = make(chan error, 1)
	second := newApp()
	go func() { done <- second.Run(ctx2) }()
	deadline := time.Now().Add(45 * time.Second)
	for !slices.Equal(topicValues(t, b, out), paymentValues(0, 10)) {
		if time.Now().After(deadline) {
			t.Fatalf("after the restart out has %v, want %v", topicValues(t, b, out), paymentValues(0, 10))
		}
		time.Sleep(100 * time.Millisecond)
	}
	cancel2()
	if err := <-done; err != nil {
		t.Fatalf("restarted Run: %v", err)
	}
}
