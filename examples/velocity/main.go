// Command velocity runs the card-velocity check of README.md, written with
// the Streams DSL, on a broker with exactly-once processing:
//
//	go run ./examples/velocity
//	go run ./examples/velocity --brokers 127.0.0.1:19092
//
// With no flags it starts an embedded Kafka cluster in the process. It then
//
//  1. creates the topics: card transactions (the input, keyed by card),
//     final counts, alerts and late transactions;
//  2. starts the application (exactly-once): duplicate payments are
//     dropped (DropDuplicates by payment id, 24 hours), each card's
//     transactions are counted in 10-minute tumbling windows with one
//     minute of grace, each window's count comes out once, final, when
//     the window has closed (Suppress(UntilWindowCloses)), and a final
//     count above 3 is an alert; records too late for their window go to
//     a side topic (LateRecords) instead of vanishing;
//  3. writes sample transactions with event times (record timestamps):
//     retried payments, records out of order within the grace period, and
//     records later than it;
//  4. waits until the application has committed them all, reads the three
//     output topics read_committed, prints them, and stops.
//
// The transactions topic has one partition, so that one stream time (the
// largest event time seen) closes every card's windows and the output is
// the same at every run. Stream time is kept per partition (per task): on
// several partitions a window closes when its own partition's records move
// past its end plus grace.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	var o options
	flag.StringVar(&o.brokers, "brokers", "", "comma-separated Kafka bootstrap addresses (default: an embedded cluster)")
	flag.StringVar(&o.prefix, "prefix", "", "topic and application-id prefix (default: brook-velocity, with a unique suffix on a real cluster)")
	flag.BoolVar(&o.verbose, "v", false, "log brook's warnings and info messages (default: errors only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "velocity:", err)
		os.Exit(1)
	}
}

// options are the command's settings.
type options struct {
	brokers string
	prefix  string
	verbose bool
	logger  *slog.Logger
	// base is the start of the first window of the sample transactions
	// (default: the 10-minute boundary an hour before now, so that every
	// event time is in the past, as a broker expects).
	base time.Time
}

func (o *options) defaults() error {
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.prefix == "" {
		o.prefix = "brook-velocity"
		if o.brokers != "" {
			o.prefix += fmt.Sprintf("-%d", time.Now().Unix())
		}
	}
	if o.base.IsZero() {
		o.base = time.Now().UTC().Truncate(windowSize).Add(-time.Hour)
	}
	if o.base.UnixMilli()%windowSize.Milliseconds() != 0 {
		return errors.New("the sample's base time must be a window start")
	}
	return nil
}

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// run runs the example: it returns once the results are printed, or when
// ctx ends.
func run(ctx context.Context, o options, out io.Writer) error {
	if err := o.defaults(); err != nil {
		return err
	}
	e, err := setUp(o, out)
	if err != nil {
		return err
	}
	defer e.close()
	return e.demo(ctx)
}
