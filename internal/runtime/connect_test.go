package runtime

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

func secureConfig() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V3_6_0_0
	c.Net.DialTimeout = 2 * time.Second
	c.Net.ReadTimeout = 2 * time.Second
	c.Net.TLS.Enable = true
	c.Net.TLS.Config = &tls.Config{MinVersion: tls.VersionTLS12}
	c.Net.SASL.Enable = true
	c.Net.SASL.Mechanism = sarama.SASLTypePlaintext
	c.Net.SASL.User, c.Net.SASL.Password = "u", "p"
	return c
}

// TestCheckSecurityLeavesOutagesToRetries: a broker that cannot be reached,
// or that drops every connection (as one does while it restarts), is an
// outage, not a TLS or SASL failure: the start-up check lets the client's
// retries handle it.
func TestCheckSecurityLeavesOutagesToRetries(t *testing.T) {
	// Nothing listens on a port just released.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	dropping, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by the test: accepts and closes until the listener closes
		defer wg.Done()
		for {
			c, err := dropping.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	defer wg.Wait()
	defer dropping.Close()

	for _, addr := range []string{refused, dropping.Addr().String()} {
		if err := checkSecurity([]string{addr}, secureConfig()); err != nil {
			t.Errorf("checkSecurity(%s) = %v, want nil (an outage)", addr, err)
		}
	}
}

// TestSecurityErrorClassification: only TLS and SASL failures are taken
// for configuration errors.
func TestSecurityErrorClassification(t *testing.T) {
	cfg := secureConfig()
	outages := []error{
		errors.New("EOF"),
		&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")},
		sarama.ErrOutOfBrokers,
		sarama.ErrNotController,
	}
	for _, e := range outages {
		if got := securityError("b:1", cfg, e); got != nil {
			t.Errorf("securityError(%v) = %v, want nil", e, got)
		}
	}
	var ae *AuthenticationError
	if err := securityError("b:1", cfg, sarama.Wrap(sarama.ErrOutOfBrokers, sarama.ErrSASLAuthenticationFailed)); !errors.As(err, &ae) || ae.User != "u" || ae.Mechanism != "PLAIN" {
		t.Errorf("wrapped SASL failure: %v, want *AuthenticationError for user u, PLAIN", err)
	}
	if err := securityError("b:1", cfg, sarama.ErrUnsupportedSASLMechanism); !errors.As(err, &ae) {
		t.Errorf("unsupported mechanism: %v, want *AuthenticationError", err)
	}
	var te *TLSError
	header := tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}
	if err := securityError("b:1", cfg, header); !errors.As(err, &te) || !strings.Contains(err.Error(), "PLAINTEXT") {
		t.Errorf("record header error: %v, want *TLSError that suspects a PLAINTEXT listener", err)
	}
	noTLS := secureConfig()
	noTLS.Net.TLS.Enable = false
	if err := securityError("b:1", noTLS, header); err != nil {
		t.Errorf("TLS error without TLS enabled: %v, want nil", err)
	}
}
