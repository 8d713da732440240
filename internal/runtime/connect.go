package runtime

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/scram"
)

// AuthenticationError reports that a broker refused the SASL credentials
// or mechanism. Retrying cannot help, so Run returns it at once.
type AuthenticationError struct {
	Broker    string
	Mechanism string
	User      string
	Err       error
}

func (e *AuthenticationError) Error() string {
	return fmt.Sprintf("brook: SASL authentication failed at broker %s (mechanism %s, user %q): %v (check Config.SASL)",
		e.Broker, e.Mechanism, e.User, e.Err)
}

// Unwrap returns the cause.
func (e *AuthenticationError) Unwrap() error { return e.Err }

// TLSError reports a failed TLS handshake with a broker: its certificate
// is not trusted or not valid for its address, the broker refused the
// client's certificate, or it does not speak TLS at all. Retrying cannot
// help, so Run returns it at once.
type TLSError struct {
	Broker string
	Err    error
}

func (e *TLSError) Error() string {
	return fmt.Sprintf("brook: TLS handshake with broker %s failed: %v%s", e.Broker, e.Err, tlsHint(e.Err))
}

// Unwrap returns the cause.
func (e *TLSError) Unwrap() error { return e.Err }

func tlsHint(err error) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	switch {
	case errors.As(err, &unknown):
		return " (the broker's certificate is not signed by a CA that Config.TLS.RootCAs trusts)"
	case errors.As(err, &host):
		return " (the broker's certificate does not name the address brook connected to; see Config.TLS.ServerName)"
	case errors.As(err, &invalid):
		return " (the broker's certificate is not valid: expired, not yet valid, or not for server use)"
	case isRemoteTLSAlert(err):
		return " (the broker refused the handshake: a missing or untrusted client certificate in Config.TLS.Certificates, or no TLS version or cipher in common)"
	case errors.As(err, &header):
		return " (the broker did not answer with TLS: is this a PLAINTEXT or SASL_PLAINTEXT listener?)"
	}
	return ""
}

// isRemoteTLSAlert reports an alert the broker sent during or right after
// the handshake ("remote error: tls: bad certificate").
func isRemoteTLSAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error" && strings.HasPrefix(op.Err.Error(), "tls:")
}

// securityError turns a connection error that configuration, not an
// outage, caused into an *AuthenticationError or *TLSError; it returns nil
// for any other error.
func securityError(broker string, cfg *sarama.Config, err error) error {
	if err == nil {
		return nil
	}
	var se *scram.Error
	if errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, sarama.ErrUnsupportedSASLMechanism) ||
		errors.Is(err, sarama.ErrIllegalSASLState) || errors.As(err, &se) {
		return &AuthenticationError{Broker: broker, Mechanism: string(cfg.Net.SASL.Mechanism), User: cfg.Net.SASL.User, Err: err}
	}
	if !cfg.Net.TLS.Enable {
		return nil
	}
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	var invalid x509.CertificateInvalidError
	var header tls.RecordHeaderError
	if errors.As(err, &unknown) || errors.As(err, &host) || errors.As(err, &invalid) || isRemoteTLSAlert(err) ||
		errors.As(err, &header) {
		return &TLSError{Broker: broker, Err: err}
	}
	return nil
}

// checkSecurity is the start-up connectivity check: it opens one
// connection to the seed brokers in turn, with the full handshake (TLS,
// API versions, SASL), until one succeeds. A TLS or SASL failure is
// returned at once as an *AuthenticationError or *TLSError, however
// patient the client's metadata retries are configured; a broker that
// cannot be reached is skipped, and outages are left to the client's own
// retries.
//
// Kafka answers a failed authentication with an error code, but some
// brokers (Kafka before 1.0, kfake, some proxies) close the connection
// instead, which looks like an outage. So when the connection with SASL
// is closed by the broker, the check connects again without SASL: if that
// works and SASL is closed again (twice, so that a broker restarting in
// between is not taken for a refusal), the broker refused the credentials.
func checkSecurity(brokers []string, cfg *sarama.Config) error {
	if !cfg.Net.TLS.Enable && !cfg.Net.SASL.Enable {
		return nil
	}
	for _, addr := range brokers {
		err := probe(addr, cfg)
		if err == nil {
			return nil
		}
		if serr := securityError(addr, cfg, err); serr != nil {
			return serr
		}
		if cfg.Net.SASL.Enable && closedByBroker(err) && saslRefused(addr, cfg) {
			return &AuthenticationError{
				Broker: addr, Mechanism: string(cfg.Net.SASL.Mechanism), User: cfg.Net.SASL.User,
				Err: fmt.Errorf("%w: the broker closed the connection during SASL authentication, and accepts connections without it (%w)",
					sarama.ErrSASLAuthenticationFailed, err),
			}
		}
	}
	return nil
}

// saslRefused reports whether the broker at addr accepts connections
// without SASL but closes those that authenticate with cfg's credentials,
// twice in a row.
func saslRefused(addr string, cfg *sarama.Config) bool {
	plain := *cfg
	plain.Net.SASL.Enable = false
	for range 2 {
		if probe(addr, &plain) != nil {
			return false
		}
		if err := probe(addr, cfg); err == nil || !closedByBroker(err) {
			return false
		}
	}
	return true
}

// probe opens one connection to addr (TLS, API versions, SASL as cfg
// says) and closes it again.
func probe(addr string, cfg *sarama.Config) error {
	b := sarama.NewBroker(addr)
	if err := b.Open(cfg); err != nil {
		return err
	}
	ok, err := b.Connected()
	if ok {
		_ = b.Close()
		return nil
	}
	if err == nil {
		err = sarama.ErrNotConnected
	}
	return err
}

// closedByBroker reports an error that means the broker closed the
// connection.
func closedByBroker(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)
}

// connectError wraps a failure to create a client, producer or consumer
// group: a TLS or SASL failure as such, any other error with what the
// brokers' closing the connection usually means.
func connectError(what string, brokers []string, cfg *sarama.Config, err error) error {
	if serr := securityError(strings.Join(brokers, ","), cfg, err); serr != nil {
		return serr
	}
	hint := ""
	if closedByBroker(err) {
		hint = " (the broker closed the connection: a listener that expects TLS or SASL closes connections without them; see Config.TLS and Config.SASL)"
	}
	return fmt.Errorf("brook: %s %v: %w%s", what, brokers, err, hint)
}
