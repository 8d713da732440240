// Command enrichment enriches a stream of card transactions with customer
// profiles and merchant data and serves each customer's running spend over
// HTTP:
//
//	go run ./examples/enrichment
//	go run ./examples/enrichment --brokers 127.0.0.1:19092 --registry http://127.0.0.1:18081
//
// Over TLS and SASL (the SASL_SSL listener of scripts/kafka; the password
// comes from the environment, never from a flag):
//
//	eval "$(scripts/kafka start)"
//	BROOK_SASL_PASSWORD=$KAFKA_SASL_PASSWORD go run ./examples/enrichment \
//	    --brokers $KAFKA_SASL_BROKERS --tls-ca $KAFKA_SASL_CA \
//	    --tls-cert $KAFKA_SASL_CERT --tls-key $KAFKA_SASL_KEY \
//	    --sasl-mechanism SCRAM-SHA-512 --sasl-user $KAFKA_SASL_USER
//
// With no flags it starts everything it needs in the process: an embedded
// Kafka cluster and an embedded schema registry (with real Avro
// compatibility checks). It then
//
//  1. creates the topics: customers (compacted), transactions and
//     transactions-enriched with 4 partitions each, and merchants
//     (compacted) with 2;
//  2. writes sample merchants (Avro), then runs two instances of one
//     brook application (exactly-once), each serving interactive queries
//     on its own loopback port; each instance reads the whole merchants
//     topic as a global table before it processes anything;
//  3. writes sample customer profiles (Avro), which the application reads
//     as a table, then sample transactions (Avro), every tenth one twice,
//     as a payment network's retry would, and every twentieth at a
//     merchant that is not in the merchants table;
//  4. the application, all in the Streams DSL (see pipeline.go), drops the
//     retried duplicates, joins each transaction with its customer's
//     profile (a stream–table left join on the key, the customer id) and
//     with its merchant (a global-table left join on the transaction's
//     merchant id), writes the enriched transaction (Avro) to
//     transactions-enriched, and aggregates a per-customer spend into a
//     state store. Both joins are left joins, so that no payment is
//     dropped for want of reference data: a transaction at an unknown
//     merchant comes out with merchant_lookup UNKNOWN_MERCHANT;
//  5. it prints a few enriched records, one of them at the unknown
//     merchant, and the curl commands to query the spend store, including
//     a customer held by the other instance (the instance you ask
//     forwards the query to its owner), and the merchants store (each
//     instance answers from its own copy).
//
// It keeps running, writing a few transactions a second, until Ctrl-C (or
// until -duration has passed).
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/brookstream/brook/topology"
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
	flag.StringVar(&o.tlsCA, "tls-ca", "", "PEM file of the CA that signed the brokers' certificates (enables TLS; default: no TLS)")
	flag.StringVar(&o.tlsCert, "tls-cert", "", "PEM client certificate, for brokers that require one (with --tls-key)")
	flag.StringVar(&o.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	flag.StringVar(&o.saslMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (enables SASL; password from $BROOK_SASL_PASSWORD)")
	flag.StringVar(&o.saslUser, "sasl-user", "", "SASL user")
	flag.Parse()
	o.saslPassword = os.Getenv("BROOK_SASL_PASSWORD")
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
	// Connection security for --brokers: TLS when tlsCA is set, SASL when
	// saslMechanism is.
	tlsCA, tlsCert, tlsKey  string
	saslMechanism, saslUser string
	saslPassword            string
}

// started describes the running example, for tests.
type started struct {
	// Endpoints are the query endpoints of instances A and B.
	Endpoints [2]string
	// RoutedCustomer is a customer held by instance B.
	RoutedCustomer string
	// Brokers, Registry and Topics are the cluster, the schema registry's
	// URL and the example's topics.
	Brokers  []string
	Registry string
	Topics   topics
}

func (o *options) defaults() error {
	if o.customers <= 0 || o.transactions < 0 || o.rate < 0 {
		return errors.New("-customers must be positive, -transactions and -rate not negative")
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.brokers == "" && (o.tlsCA != "" || o.tlsCert != "" || o.saslMechanism != "") {
		return errors.New("--tls-* and --sasl-* apply to --brokers; the embedded cluster has neither")
	}
	if o.prefix == "" {
		o.prefix = "brook-enrichment"
		if o.brokers != "" {
			o.prefix += fmt.Sprintf("-%d", time.Now().Unix())
		}
	}
	return nil
}

// security returns the TLS and SASL settings the flags ask for (nil when
// not asked).
func (o *options) security() (*tls.Config, *topology.SASL, error) {
	var tc *tls.Config
	if o.tlsCA != "" {
		pem, err := os.ReadFile(o.tlsCA)
		if err != nil {
			return nil, nil, fmt.Errorf("--tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--tls-ca: %s holds no PEM certificate", o.tlsCA)
		}
		tc = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if o.tlsCert != "" || o.tlsKey != "" {
		if tc == nil || o.tlsCert == "" || o.tlsKey == "" {
			return nil, nil, errors.New("--tls-cert and --tls-key go together, with --tls-ca")
		}
		c, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	var sasl *topology.SASL
	if o.saslMechanism != "" {
		sasl = &topology.SASL{Mechanism: o.saslMechanism, User: o.saslUser, Password: o.saslPassword}
	}
	return tc, sasl, nil
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
