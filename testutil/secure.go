package testutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/topology"
	"github.com/twmb/franz-go/pkg/kfake"
)

// SecureKafka is a Kafka listener with TLS and SASL for tests (see
// NewSecureKafka): TLS with a CA made for the test run, client certificates
// required, and one user with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512
// credentials.
type SecureKafka struct {
	// Brokers are the SASL_SSL bootstrap addresses (KAFKA_SASL_BROKERS).
	Brokers []string
	// CAFile is the CA certificate that signed the broker's certificate
	// (KAFKA_SASL_CA, PEM).
	CAFile string
	// CertFile and KeyFile are a client certificate the broker trusts and
	// its key (KAFKA_SASL_CERT, KAFKA_SASL_KEY, PEM).
	CertFile, KeyFile string
	// User and Password are the SASL credentials (KAFKA_SASL_USER,
	// KAFKA_SASL_PASSWORD).
	User, Password string

	cluster *kfake.Cluster
}

// NewSecureKafka returns a Kafka listener with TLS and SASL for this
// test. With KAFKA_SASL_BROKERS set it is the SASL_SSL listener that
// `scripts/kafka start` opens (its settings come from the KAFKA_SASL_*
// variables the script prints). Without it and without KAFKA_BROKERS it is
// a fresh in-process kfake cluster that listens with TLS (a CA and
// certificates made for the test, client certificates required) and SASL
// (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512), shut down when the test ends.
// With KAFKA_BROKERS but no KAFKA_SASL_BROKERS (a broker started by an
// older scripts/kafka) the test is skipped with a message saying how to
// start one, and fails under CI=true.
func NewSecureKafka(t testing.TB) *SecureKafka {
	t.Helper()
	s := &SecureKafka{
		CAFile: os.Getenv("KAFKA_SASL_CA"), CertFile: os.Getenv("KAFKA_SASL_CERT"), KeyFile: os.Getenv("KAFKA_SASL_KEY"),
		User: os.Getenv("KAFKA_SASL_USER"), Password: os.Getenv("KAFKA_SASL_PASSWORD"),
	}
	for _, a := range strings.Split(os.Getenv("KAFKA_SASL_BROKERS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			s.Brokers = append(s.Brokers, a)
		}
	}
	if len(s.Brokers) == 0 && !RealKafka() {
		return newEmbeddedSecureKafka(t)
	}
	if len(s.Brokers) == 0 || s.CAFile == "" || s.CertFile == "" || s.KeyFile == "" || s.User == "" {
		needService(t, "Kafka SASL_SSL listener (KAFKA_SASL_BROKERS, KAFKA_SASL_CA, KAFKA_SASL_CERT, KAFKA_SASL_KEY, KAFKA_SASL_USER, KAFKA_SASL_PASSWORD)",
			"run `eval $(scripts/kafka start)` with a broker started by the current scripts/kafka (it opens a SASL_SSL listener and prints them) or use scripts/test, which exports them")
	}
	return s
}

// newEmbeddedSecureKafka starts a kfake cluster with TLS (client
// certificates required) and SASL users for every mechanism.
func newEmbeddedSecureKafka(t testing.TB) *SecureKafka {
	t.Helper()
	dir := t.TempDir()
	s := &SecureKafka{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem"),
		User: "brook", Password: "brook-test-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	ca, err := newTestCA()
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	server, err := ca.issue("localhost", true)
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	client, err := ca.issue("brook-test-client", false)
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	if err := ca.writeCert(s.CAFile); err != nil {
		t.Fatalf("testutil: %v", err)
	}
	if err := client.write(s.CertFile, s.KeyFile); err != nil {
		t.Fatalf("testutil: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{server.tlsCert()}, ClientCAs: pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
		}),
		kfake.EnableSASL(),
		kfake.Superuser("PLAIN", s.User, s.Password),
		kfake.Superuser("SCRAM-SHA-256", s.User, s.Password),
		kfake.Superuser("SCRAM-SHA-512", s.User, s.Password),
	)
	if err != nil {
		t.Fatalf("testutil: start embedded kfake cluster with TLS and SASL: %v", err)
	}
	t.Cleanup(c.Close)
	s.Brokers = c.ListenAddrs()
	s.cluster = c
	return s
}

// Embedded returns the in-process kfake cluster, or nil for the real
// SASL_SSL listener.
func (s *SecureKafka) Embedded() *kfake.Cluster { return s.cluster }

// TLS returns a TLS configuration that trusts the CA and presents the
// client certificate.
func (s *SecureKafka) TLS(t testing.TB) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("testutil: %s holds no PEM certificate", s.CAFile)
	}
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{s.ClientCert(t)}, MinVersion: tls.VersionTLS12}
}

// ClientCert returns the client certificate and its key.
func (s *SecureKafka) ClientCert(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		t.Fatalf("testutil: client certificate: %v", err)
	}
	return c
}

// SASL returns the credentials for mechanism ("PLAIN", "SCRAM-SHA-256" or
// "SCRAM-SHA-512").
func (s *SecureKafka) SASL(mechanism string) *topology.SASL {
	return &topology.SASL{Mechanism: mechanism, User: s.User, Password: s.Password}
}

// Broker returns a test Broker whose helpers (CreateTopic, Produce,
// ConsumeAll, ...) connect over the SASL_SSL listener with the given TLS
// configuration and SASL mechanism, through the same settings a
// topology.App uses (topology.Config.SaramaConfig).
func (s *SecureKafka) Broker(t testing.TB, mechanism string) *Broker {
	t.Helper()
	cfg, err := topology.Config{
		ApplicationID: "brook-test", Brokers: s.Brokers, TLS: s.TLS(t), SASL: s.SASL(mechanism),
	}.SaramaConfig()
	if err != nil {
		t.Fatalf("testutil: %v", err)
	}
	return &Broker{addrs: append([]string(nil), s.Brokers...), cluster: s.cluster, secure: func(c *sarama.Config) {
		c.Net.TLS = cfg.Net.TLS
		c.Net.SASL = cfg.Net.SASL
	}}
}

// String describes the listener (without the password).
func (s *SecureKafka) String() string {
	return fmt.Sprintf("SASL_SSL %v (user %s, CA %s)", s.Brokers, s.User, s.CAFile)
}
