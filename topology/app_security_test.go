package topology_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// TestAppOverSASLSSL runs a topology (source → processor with a logged
// store → sink) end to end over TLS with a custom CA and a client
// certificate, authenticated with each SASL mechanism: topics, input and
// output go through the same listener, and so do the changelog writes.
func TestAppOverSASLSSL(t *testing.T) {
	s := testutil.NewSecureKafka(t)
	for _, mech := range saslMechanisms {
		t.Run(mech, func(t *testing.T) {
			b := s.Broker(t, mech)
			in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
			b.CreateTopic(t, in, 3, nil)
			b.CreateTopic(t, out, 3, nil)
			const keys, perKey = 12, 5
			produceKeys(t, b, in, 3, keys, perKey)
			appID := testutil.TopicName(t, "app")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, done := startApp(t, ctx, countTopology(t, in, out), topology.Config{
				ApplicationID: appID, Brokers: s.Brokers, StateDir: t.TempDir(),
				CommitInterval: 200 * time.Millisecond, Logger: testLogger(t),
				TLS: s.TLS(t), SASL: s.SASL(mech),
			})
			got := waitCounts(t, b, out, keys, perKey, 60*time.Second)
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("Run: %v", err)
			}
			for k, v := range got {
				if v != perKey {
					t.Errorf("key %s counted %d, want %d", k, v, perKey)
				}
			}
			if n := len(b.ConsumeAll(t, store.ChangelogTopic(appID, "counts"))); n < keys {
				t.Fatalf("changelog holds %d records, want at least %d (one per key)", n, keys)
			}
		})
	}
}

// patientRetries is what an application configures to ride out a broker
// restart at start-up: many metadata retries, a second apart. A TLS or
// SASL failure must not wait for them.
func patientRetries(c *sarama.Config) {
	c.Metadata.Retry.Max = 100
	c.Metadata.Retry.Backoff = time.Second
}

// failFastWithin bounds how long Run may take to report a TLS or SASL
// failure; without the start-up check it takes minutes with patient
// retries.
const failFastWithin = 10 * time.Second

// runUntilError runs an App that must fail at start-up and returns its
// error and how long Run took.
func runUntilError(t *testing.T, s *testutil.SecureKafka, cfg topology.Config) (error, time.Duration) {
	t.Helper()
	cfg.ApplicationID = testutil.TopicName(t, "app")
	cfg.Brokers = s.Brokers
	cfg.StateDir = t.TempDir()
	cfg.Logger = testLogger(t)
	app, err := topology.NewApp(countTopology(t, testutil.TopicName(t, "in"), testutil.TopicName(t, "out")), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	err = app.Run(ctx)
	took := time.Since(start)
	if err == nil {
		t.Fatal("Run returned nil, want an error")
	}
	if took > failFastWithin {
		t.Errorf("Run took %v to fail, want under %v: %v", took, failFastWithin, err)
	}
	return err, took
}

// TestAppWrongPasswordFailsFast: a wrong password is reported at once as
// an *AuthenticationError naming broker, mechanism and user, with the
// default retries and with patient ones.
func TestAppWrongPasswordFailsFast(t *testing.T) {
	s := testutil.NewSecureKafka(t)
	for _, mech := range saslMechanisms {
		for _, patient := range []bool{false, true} {
			name := mech + "/default-retries"
			var configure func(*sarama.Config)
			if patient {
				name, configure = mech+"/patient-retries", patientRetries
			}
			t.Run(name, func(t *testing.T) {
				sasl := s.SASL(mech)
				sasl.Password += "-wrong"
				err, took := runUntilError(t, s, topology.Config{TLS: s.TLS(t), SASL: sasl, ConfigureSarama: configure})
				t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
				var ae *topology.AuthenticationError
				if !errors.As(err, &ae) {
					t.Fatalf("err = %v (%T), want *topology.AuthenticationError", err, err)
				}
				if ae.Mechanism != mech || ae.User != s.User || ae.Broker == "" {
					t.Errorf("AuthenticationError{Broker %q, Mechanism %q, User %q}, want mechanism %s, user %s", ae.Broker, ae.Mechanism, ae.User, mech, s.User)
				}
				if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
					t.Errorf("err does not wrap sarama.ErrSASLAuthenticationFailed: %v", err)
				}
				if msg := err.Error(); !containsAll(msg, "authentication failed", mech, s.User) || strings.Contains(msg, sasl.Password) {
					t.Errorf("message %q: want it to say authentication failed, name mechanism and user, and not show the password", msg)
				}
			})
		}
	}
}

// TestAppUntrustedCertificateFailsFast: a TLS configuration that does not
// trust the broker's CA, or that has no client certificate for a broker
// that requires one, is reported at once as a *TLSError that says which.
func TestAppUntrustedCertificateFailsFast(t *testing.T) {
	s := testutil.NewSecureKafka(t)
	good := s.TLS(t)
	cases := []struct {
		name string
		tls  *tls.Config
		want string
	}{
		// RootCAs nil: the system roots, which do not hold the test CA.
		{"no CA", &tls.Config{Certificates: good.Certificates, MinVersion: tls.VersionTLS12}, "RootCAs"},
		{"no client certificate", &tls.Config{RootCAs: good.RootCAs, MinVersion: tls.VersionTLS12}, "client certificate"},
	}
	for _, tc := range cases {
		for _, patient := range []bool{false, true} {
			name := tc.name + "/default-retries"
			var configure func(*sarama.Config)
			if patient {
				name, configure = tc.name+"/patient-retries", patientRetries
			}
			t.Run(name, func(t *testing.T) {
				err, took := runUntilError(t, s, topology.Config{TLS: tc.tls, SASL: s.SASL("PLAIN"), ConfigureSarama: configure})
				t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
				var te *topology.TLSError
				if !errors.As(err, &te) {
					t.Fatalf("err = %v (%T), want *topology.TLSError", err, err)
				}
				if te.Broker == "" || !containsAll(err.Error(), "TLS handshake", tc.want) {
					t.Errorf("message %q: want it to name the broker, say TLS handshake and mention %q", err, tc.want)
				}
				if tc.name == "no CA" {
					var unknown x509.UnknownAuthorityError
					if !errors.As(err, &unknown) {
						t.Errorf("err does not wrap x509.UnknownAuthorityError: %v", err)
					}
				}
			})
		}
	}
}

// TestConfigSecuritySettings: every mechanism yields a sarama
// configuration that sarama accepts (SCRAM needs a client generator), and
// SASL settings that cannot work are refused by Validate.
func TestConfigSecuritySettings(t *testing.T) {
	for _, mech := range append([]string{""}, saslMechanisms...) {
		cfg := topology.Config{ApplicationID: "app", Brokers: []string{"b:9092"},
			TLS: &tls.Config{MinVersion: tls.VersionTLS12}, SASL: &topology.SASL{Mechanism: mech, User: "u", Password: "p"}}
		sc, err := cfg.SaramaConfig()
		if err != nil {
			t.Fatalf("%q: %v", mech, err)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%q: sarama refuses the configuration: %v", mech, err)
		}
		want := mech
		if want == "" {
			want = "PLAIN"
		}
		if !sc.Net.TLS.Enable || sc.Net.TLS.Config != cfg.TLS || !sc.Net.SASL.Enable || string(sc.Net.SASL.Mechanism) != want || sc.Net.SASL.User != "u" {
			t.Errorf("%q: TLS %v, SASL %v %s %q", mech, sc.Net.TLS.Enable, sc.Net.SASL.Enable, sc.Net.SASL.Mechanism, sc.Net.SASL.User)
		}
		if cfg.ClientID != "" {
			t.Errorf("SaramaConfig changed the Config (ClientID %q)", cfg.ClientID)
		}
	}
	for _, bad := range []*topology.SASL{{Mechanism: "GSSAPI", User: "u"}, {Mechanism: "scram-sha-256", User: "u"}, {Mechanism: "PLAIN"}} {
		cfg := topology.Config{ApplicationID: "app", Brokers: []string{"b:9092"}, SASL: bad}
		if _, err := cfg.SaramaConfig(); err == nil {
			t.Errorf("SASL %+v accepted", *bad)
		}
	}
}
