package topology_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// warnRecorder is a slog handler keeping every record at warning level or
// above (and passing everything to the test's log).
type warnRecorder struct {
	t     testing.TB
	mu    *sync.Mutex
	warns *[]string
	attrs []slog.Attr
}

func newWarnRecorder(t testing.TB) *warnRecorder {
	return &warnRecorder{t: t, mu: &sync.Mutex{}, warns: new([]string)}
}

func (h *warnRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *warnRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	if r.Level >= slog.LevelWarn {
		h.mu.Lock()
		*h.warns = append(*h.warns, b.String())
		h.mu.Unlock()
	}
	return nil
}
func (h *warnRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}
func (h *warnRecorder) WithGroup(string) slog.Handler { return h }

func (h *warnRecorder) take() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	w := *h.warns
	*h.warns = nil
	return w
}

// TestAppFreshStartLogsNoWarnings: a first start on a new machine (no
// local state, no checkpoints, changelogs and repartition topics created)
// and a clean restart are normal, so they log no warnings — under both
// guarantees, with every kind of state: a logged aggregate behind a
// repartition topic, a suppressed window count, a source table joined
// from a stream and a global table.
func TestAppFreshStartLogsNoWarnings(t *testing.T) {
	for _, g := range []topology.Guarantee{topology.AtLeastOnce, topology.ExactlyOnce} {
		t.Run(fmt.Sprint(g), func(t *testing.T) {
			bk := testutil.NewBroker(t)
			name := func(s string) string { return testutil.TopicName(t, s) }
			in, limits, merchants, out := name("in"), name("limits"), name("merchants"), name("out")
			bk.CreateTopic(t, in, 2, nil)
			bk.CreateTopic(t, limits, 2, map[string]string{"cleanup.policy": "compact"})
			bk.CreateTopic(t, merchants, 1, map[string]string{"cleanup.policy": "compact"})
			bk.CreateTopic(t, out, 1, nil)

			b := topology.New()
			s := topology.Stream(b, "in", in, serde.String(), serde.String())
			lim := topology.TableOf(b, "limits", limits, serde.String(), serde.String())
			mer := topology.GlobalTable(b, "merchants", merchants, serde.String(), serde.String())
			joined := topology.LeftJoin(s, lim, "with-limit", func(k, v, l string, found bool) (string, error) { return v + "/" + l, nil })
			joined = topology.LeftJoinGlobal(joined, mer, "with-merchant",
				func(k, v string) (string, error) { return "m", nil },
				func(k, v, m string, found bool) (string, error) { return v + "/" + m, nil })
			joined.To("out", out, serde.String(), serde.String())
			byValue := topology.GroupBy(s, "by-value", func(_, v string) (string, error) { return v, nil }, serde.String())
			topology.Count(byValue, "counts")
			topology.WindowedBy(s.GroupByKey(), topology.Tumbling(time.Minute).Grace(time.Second)).
				Count("windows").Suppress("finals", topology.UntilWindowCloses())
			topo, err := b.Build()
			if err != nil {
				t.Fatal(err)
			}

			bk.Produce(t, limits, &sarama.ProducerMessage{Key: sarama.StringEncoder("k1"), Value: sarama.StringEncoder("100")})
			bk.Produce(t, merchants, &sarama.ProducerMessage{Key: sarama.StringEncoder("m"), Value: sarama.StringEncoder("shop")})
			ts := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			produce := func(from, n int) {
				var msgs []*sarama.ProducerMessage
				for i := from; i < from+n; i++ {
					msgs = append(msgs, &sarama.ProducerMessage{Key: sarama.StringEncoder(fmt.Sprint("k", i%3)),
						Value: sarama.StringEncoder(fmt.Sprint("v", i%2)), Timestamp: ts.Add(time.Duration(i) * time.Second)})
				}
				bk.Produce(t, in, msgs...)
			}
			produce(0, 10)

			rec := newWarnRecorder(t)
			cfg := topology.Config{
				ApplicationID: name("app"), Brokers: bk.Addrs(), StateDir: t.TempDir(), Guarantee: g,
				CommitInterval: 100 * time.Millisecond, Logger: slog.New(rec),
			}
			for run, want := range []int{10, 20} {
				ctx, cancel := context.WithCancel(context.Background())
				_, done := startApp(t, ctx, topo, cfg)
				bk.WaitForRecords(t, out, want, g == topology.ExactlyOnce, 60*time.Second)
				cancel()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if w := rec.take(); len(w) > 0 {
					t.Errorf("run %d (%s) logged %d warnings:\n%s", run+1, []string{"first start", "clean restart"}[run], len(w), strings.Join(w, "\n"))
				}
				produce(10, 10)
			}
		})
	}
}
