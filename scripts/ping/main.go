// Command ping checks that a Kafka broker answers a metadata request; the
// service scripts use it to wait for a broker they started. With -tls-ca
// and -sasl it connects the way a brook App does (topology.Config's TLS and
// SASL settings), which checks a SASL_SSL listener end to end.
//
//	go run ./scripts/ping -kafka 127.0.0.1:19092 -timeout 5s
//	KAFKA_SASL_PASSWORD=... go run ./scripts/ping -kafka 127.0.0.1:19094 \
//	    -tls-ca ca.pem -tls-cert client.pem -tls-key client-key.pem \
//	    -sasl SCRAM-SHA-512 -user brook -password-env KAFKA_SASL_PASSWORD
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/topology"
)

func main() {
	addrs := flag.String("kafka", "127.0.0.1:9092", "comma-separated bootstrap addresses")
	timeout := flag.Duration("timeout", 5*time.Second, "how long to try")
	ca := flag.String("tls-ca", "", "PEM file of the CA that signed the brokers' certificates (enables TLS)")
	cert := flag.String("tls-cert", "", "PEM client certificate (mutual TLS)")
	key := flag.String("tls-key", "", "PEM key of -tls-cert")
	mech := flag.String("sasl", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (enables SASL)")
	user := flag.String("user", "", "SASL user")
	passEnv := flag.String("password-env", "", "environment variable holding the SASL password")
	flag.Parse()
	cfg := topology.Config{ApplicationID: "brook-ping", Brokers: strings.Split(*addrs, ","), ClientID: "brook-ping"}
	if *ca != "" {
		tc, err := tlsConfig(*ca, *cert, *key)
		if err != nil {
			fmt.Fprintln(os.Stderr, "ping:", err)
			os.Exit(2)
		}
		cfg.TLS = tc
	}
	if *mech != "" {
		cfg.SASL = &topology.SASL{Mechanism: *mech, User: *user, Password: os.Getenv(*passEnv)}
	}
	if err := ping(cfg, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "ping:", err)
		os.Exit(1)
	}
}

func tlsConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		if certFile == "" || keyFile == "" {
			return nil, errors.New("-tls-cert and -tls-key go together")
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

func ping(bc topology.Config, timeout time.Duration) error {
	cfg, err := bc.SaramaConfig()
	if err != nil {
		return err
	}
	cfg.Net.DialTimeout = timeout
	cfg.Net.ReadTimeout = timeout
	cfg.Metadata.Retry.Max = 0
	client, err := sarama.NewClient(bc.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", bc.Brokers, err)
	}
	defer client.Close()
	if err := client.RefreshMetadata(); err != nil {
		return fmt.Errorf("metadata request to %v: %w", bc.Brokers, err)
	}
	if len(client.Brokers()) == 0 {
		return fmt.Errorf("metadata from %v lists no brokers", bc.Brokers)
	}
	fmt.Printf("ok: %d broker(s)\n", len(client.Brokers()))
	return nil
}
