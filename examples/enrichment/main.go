// Command enrichment enriches a stream of card transactions with customer
// profiles and serves each customer's running spend over HTTP:
//
//	go run ./examples/enrichment
//	go run ./examples/enrichment --brokers 127.0.0.1:19092 --registry http://127.0.0.1:18081
//
// With no flags it starts everything it needs in the process: an embedded
// Kafka cluster and an embedded schema registry (with real Avro
// compatibility checks). It then
//
//  1. creates the topics: customers (compacted), transactions, and
//     transactions-enriched;
//  2. runs two instances of one brook application, each serving
//     interactive queries on its own loopback port;
//  3. writes sample customer profiles (Avro), which the application reads
//     as a table, then sample transactions (Avro);
//  4. the application joins each transaction with its customer's profile,
//     writes the enriched transaction (Avro) to transactions-enriched, and
//     keeps a per-customer spend in a state store;
//  5. it prints a few enriched records and the curl commands to query the
//     spend store, including a customer held by the other instance (the
//     instance you ask forwards the query to its owner).
//
// It keeps running, writing a few transactions a second, until Ctrl-C (or
// until -duration has passed).
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
	flag.StringVar(&o.registry, "registry", "", "schema registry URL (default: an embedded registry)")
	flag.DurationVar(&o.duration, "duration", 0, "stop after this long (default: run until Ctrl-C)")
	flag.IntVar(&o.customers, "customers", 20, "sample customers")
	flag.IntVar(&o.transactions, "transactions", 200, "sample transactions written at start")
	flag.IntVar(&o.rate, "rate", 5, "transactions per second written after the start batch (0: none)")
	flag.StringVar(&o.prefix, "prefix", "", "topic and application-id prefix (default: brook-enrichment, with a unique suffix on a real cluster)")
	flag.StringVar(&o.listenA, "http-a", "127.0.0.1:0", "query address of instance A")
	flag.StringVar(&o.listenB, "http-b", "127.0.0.1:0", "query address of instance B")
	flag.BoolVar(&o.verbose, "v", false, "log brook's warnings and info messages (default: errors only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelInfo
	}
	o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if err := run(ctx, o, os.Stdout, nil); err != nil {
		fmt.Fprintln(os.Stderr, "enrichment:", err)
		os.Exit(1)
	}
}

// options are the command's settings.
type options struct {
	brokers, registry string
	duration          time.Duration
	customers         int
	transactions      int
	rate              int
	prefix            string
	listenA, listenB  string
	verbose           bool
	logger            *slog.Logger
}

// started describes the running example, for tests.
type started struct {
	// Endpoints are the query endpoints of instances A and B.
	Endpoints [2]string
	// RoutedCustomer is a customer held by instance B.
	RoutedCustomer string
}

func (o *options) defaults() error {
	if o.customers <= 0 || o.transactions < 0 || o.rate < 0 {
		return errors.New("-customers must be positive, -transactions and -rate not negative")
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.prefix == "" {
		o.prefix = "brook-enrichment"
		if o.brokers != "" {
			o.prefix += fmt.Sprintf("-%d", time.Now().Unix())
		}
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

// run runs the example until ctx ends. onStart, if set, is called once the
// instances serve queries.
func run(ctx context.Context, o options, out io.Writer, onStart func(started)) error {
	if err := o.defaults(); err != nil {
		return err
	}
	env, err := setUp(ctx, o, out)
	if err != nil {
		return err
	}
	defer env.close()
	return env.serve(ctx, onStart)
}
