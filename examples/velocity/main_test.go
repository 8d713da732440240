package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyTestMain(m) }

// TestVelocityExample runs the example on the embedded broker (or on
// KAFKA_BROKERS) and checks everything it prints after the sample: each
// closed window's final count, once, in order of window end then card; the
// alerts; the late records with the window they missed and the stream
// time that closed it. The retried payments are not counted, the record
// out of order within grace is, the late ones are not, and the window
// still open has no final.
func TestVelocityExample(t *testing.T) {
	o := options{logger: testLogger(t), base: time.Now().UTC().Truncate(windowSize).Add(-time.Hour)}
	if testutil.RealKafka() {
		o.brokers = os.Getenv("KAFKA_BROKERS")
		o.prefix = testutil.TopicName(t, "velocity")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, o, &out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	text := out.String()
	prefix := o.prefix
	if prefix == "" {
		prefix = "brook-velocity"
	}
	clock := func(m, s int) string { return o.base.Add(at(m, s)).Format("15:04:05") }
	w0 := o.base.Format("15:04") + "-" + o.base.Add(10*time.Minute).Format("15:04")
	w1 := o.base.Add(10*time.Minute).Format("15:04") + "-" + o.base.Add(20*time.Minute).Format("15:04")
	want := fmt.Sprintf(`
Final count per card and window, once each window closed (%[1]s-card-counts):
  card-1111  %[2]s  5
  card-2222  %[2]s  3
  card-3333  %[2]s  2
  card-1111  %[3]s  4
  card-3333  %[3]s  2
  (windows still open have no final yet: it comes when stream time passes their end plus grace)

Alerts, more than 3 transactions in a window (%[1]s-card-alerts):
  card-1111 made 5 transactions in %[2]s
  card-1111 made 4 transactions in %[3]s

Late transactions, not counted but not lost (%[1]s-late-transactions):
  %[4]s  card-2222  pay-13: window %[2]s had closed (stream time %[5]s)
  %[6]s  card-3333  pay-17: window %[2]s had closed (stream time %[7]s)

Stopping.
`, prefix, w0, w1, clock(8, 30), clock(13, 0), clock(9, 30), clock(15, 30))
	_, results, ok := strings.Cut(text, "\nWaiting until the application has committed all 21 transactions...\n")
	if !ok {
		t.Fatalf("output lacks the waiting line:\n%s", text)
	}
	if results != want {
		t.Errorf("results differ:\n--- got\n%s\n--- want\n%s", results, want)
	}
	for _, line := range []string{
		"exactly-once, 10m0s tumbling windows with 1m0s grace",
		"card-1111  pay-04   <- retry of pay-04",
		clock(7, 45) + "  card-1111  pay-11   <- out of order, within grace",
	} {
		if !strings.Contains(text, line) {
			t.Errorf("output lacks %q:\n%s", line, text)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
