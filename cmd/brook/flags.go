package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/brookstream/brook/topology"
)

// targetKind is where the input offsets are reset to.
type targetKind int

const (
	toEarliest targetKind = iota
	toLatest
	toTime
)

// target is where the input offsets are reset to.
type target struct {
	kind targetKind
	at   time.Time // toTime
}

func (t target) String() string {
	switch t.kind {
	case toLatest:
		return "latest"
	case toTime:
		return fmt.Sprintf("the first offset at or after %s (%d ms)", t.at.UTC().Format(time.RFC3339Nano), t.at.UnixMilli())
	}
	return "earliest"
}

// resetOptions is a parsed reset command line.
type resetOptions struct {
	appID       string
	brokers     []string
	inputTopics []string
	keepTopics  []string
	target      target
	stateDir    string
	execute     bool
	timeout     time.Duration
	tls         *tls.Config
	sasl        *topology.SASL
}

// resetFlagValues are the raw flag values.
type resetFlagValues struct {
	appID, brokers, bootstrap, inputTopics, keepTopics, stateDir string
	toEarliest, toLatest, execute, dryRun                        bool
	toDatetime, toTimestamp                                      string
	timeout                                                      time.Duration
	tlsCA, tlsCert, tlsKey                                       string
	saslMechanism, saslUser, saslPasswordFile                    string
}

func resetFlags(out io.Writer) (*flag.FlagSet, *resetFlagValues) {
	v := &resetFlagValues{}
	fs := flag.NewFlagSet("brook reset", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&v.appID, "application-id", "", "the application id (topology.Config.ApplicationID), which is also its consumer group id (required)")
	fs.StringVar(&v.bootstrap, "bootstrap-server", "", "comma-separated Kafka bootstrap addresses (default: $KAFKA_BROKERS)")
	fs.StringVar(&v.brokers, "brokers", "", "same as --bootstrap-server")
	fs.StringVar(&v.inputTopics, "input-topics", "", "comma-separated input topics to reset besides those the group has committed offsets for")
	fs.BoolVar(&v.toEarliest, "to-earliest", false, "reset the input offsets to the earliest offset (the default)")
	fs.BoolVar(&v.toLatest, "to-latest", false, "reset the input offsets to the latest offset (skip everything written so far)")
	fs.StringVar(&v.toDatetime, "to-datetime", "", "reset the input offsets to the first record at or after this time, RFC 3339 (2026-01-02T15:04:05Z)")
	fs.StringVar(&v.toTimestamp, "to-timestamp", "", "reset the input offsets to the first record at or after this time, Unix epoch milliseconds")
	fs.StringVar(&v.stateDir, "state-dir", "", "the application's Config.StateDir on this host: wipe <state-dir>/<application-id> (default: local state is not touched)")
	fs.StringVar(&v.keepTopics, "keep-topics", "", "comma-separated topics not to delete although their names look internal")
	fs.BoolVar(&v.execute, "execute", false, "do the reset (default: a dry run that only prints what it would do)")
	fs.BoolVar(&v.dryRun, "dry-run", false, "only print what the reset would do (the default)")
	fs.DurationVar(&v.timeout, "timeout", 2*time.Minute, "how long to wait for the cluster (topic deletions to show, requests)")
	fs.StringVar(&v.tlsCA, "tls-ca", "", "PEM file of the CA that signed the brokers' certificates (enables TLS)")
	fs.StringVar(&v.tlsCert, "tls-cert", "", "PEM client certificate, for brokers that require one (with --tls-key and --tls-ca)")
	fs.StringVar(&v.tlsKey, "tls-key", "", "PEM key of --tls-cert")
	fs.StringVar(&v.saslMechanism, "sasl-mechanism", "", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (enables SASL; password from $BROOK_SASL_PASSWORD or --sasl-password-file)")
	fs.StringVar(&v.saslUser, "sasl-user", "", "SASL user")
	fs.StringVar(&v.saslPasswordFile, "sasl-password-file", "", "file holding the SASL password (default: $BROOK_SASL_PASSWORD)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: brook reset --application-id <id> [flags]

Resets a brook application so that it processes its input again with
empty state: resets the input offsets of its consumer group (clearing the
stream time kept in their metadata), deletes its internal topics
(changelogs, repartition and foreign-key topics) and, with --state-dir,
wipes its local state. A dry run unless --execute is given. Refuses while
the group has active members.

Flags:
`)
		fs.PrintDefaults()
	}
	return fs, v
}

// parseReset parses the reset command line.
func parseReset(args []string, stderr io.Writer, getenv func(string) string) (*resetOptions, error) {
	fs, v := resetFlags(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errHelp
		}
		return nil, &usageError{msg: err.Error(), printed: true}
	}
	if fs.NArg() > 0 {
		return nil, usagef("unexpected argument %q", fs.Arg(0))
	}
	o := &resetOptions{appID: v.appID, stateDir: v.stateDir, execute: v.execute, timeout: v.timeout,
		inputTopics: splitList(v.inputTopics), keepTopics: splitList(v.keepTopics)}
	if o.appID == "" {
		return nil, usagef("--application-id is required")
	}
	if v.execute && v.dryRun {
		return nil, usagef("--execute and --dry-run exclude each other")
	}
	if o.timeout <= 0 {
		return nil, usagef("--timeout %v must be positive", o.timeout)
	}
	switch {
	case v.bootstrap != "" && v.brokers != "" && v.bootstrap != v.brokers:
		return nil, usagef("--bootstrap-server and --brokers name different brokers; give one")
	case v.bootstrap != "":
		o.brokers = splitList(v.bootstrap)
	case v.brokers != "":
		o.brokers = splitList(v.brokers)
	default:
		o.brokers = splitList(getenv("KAFKA_BROKERS"))
	}
	if len(o.brokers) == 0 {
		return nil, usagef("no brokers: give --bootstrap-server or set KAFKA_BROKERS")
	}
	var targets []string
	if v.toEarliest {
		targets = append(targets, "--to-earliest")
	}
	if v.toLatest {
		o.target.kind = toLatest
		targets = append(targets, "--to-latest")
	}
	if v.toDatetime != "" {
		at, err := time.Parse(time.RFC3339Nano, v.toDatetime)
		if err != nil {
			return nil, usagef("--to-datetime %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z or 2026-01-02T15:04:05.000+01:00", v.toDatetime)
		}
		o.target = target{kind: toTime, at: at}
		targets = append(targets, "--to-datetime")
	}
	if v.toTimestamp != "" {
		ms, err := strconv.ParseInt(v.toTimestamp, 10, 64)
		if err != nil || ms < 0 {
			return nil, usagef("--to-timestamp %q is not a non-negative number of Unix epoch milliseconds", v.toTimestamp)
		}
		o.target = target{kind: toTime, at: time.UnixMilli(ms)}
		targets = append(targets, "--to-timestamp")
	}
	if len(targets) > 1 {
		return nil, usagef("give one target, not %s", strings.Join(targets, " and "))
	}
	var err error
	if o.tls, err = v.tlsConfig(); err != nil {
		return nil, err
	}
	if o.sasl, err = v.saslConfig(getenv); err != nil {
		return nil, err
	}
	return o, nil
}

// tlsConfig returns the TLS settings the flags ask for, nil for none.
func (v *resetFlagValues) tlsConfig() (*tls.Config, error) {
	if v.tlsCA == "" {
		if v.tlsCert != "" || v.tlsKey != "" {
			return nil, usagef("--tls-cert and --tls-key need --tls-ca")
		}
		return nil, nil
	}
	pem, err := os.ReadFile(v.tlsCA)
	if err != nil {
		return nil, usagef("--tls-ca: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, usagef("--tls-ca: %s holds no PEM certificate", v.tlsCA)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if v.tlsCert != "" || v.tlsKey != "" {
		if v.tlsCert == "" || v.tlsKey == "" {
			return nil, usagef("--tls-cert and --tls-key go together")
		}
		c, err := tls.LoadX509KeyPair(v.tlsCert, v.tlsKey)
		if err != nil {
			return nil, usagef("--tls-cert/--tls-key: %v", err)
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

// saslConfig returns the SASL settings the flags ask for, nil for none.
func (v *resetFlagValues) saslConfig(getenv func(string) string) (*topology.SASL, error) {
	if v.saslMechanism == "" {
		if v.saslUser != "" || v.saslPasswordFile != "" {
			return nil, usagef("--sasl-user and --sasl-password-file need --sasl-mechanism")
		}
		return nil, nil
	}
	if v.saslUser == "" {
		return nil, usagef("--sasl-mechanism needs --sasl-user")
	}
	password := getenv("BROOK_SASL_PASSWORD")
	if v.saslPasswordFile != "" {
		b, err := os.ReadFile(v.saslPasswordFile)
		if err != nil {
			return nil, usagef("--sasl-password-file: %v", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	return &topology.SASL{Mechanism: v.saslMechanism, User: v.saslUser, Password: password}, nil
}

func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
