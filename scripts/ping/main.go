// Command ping checks that a Kafka broker answers a metadata request; the
// service scripts use it to wait for a broker they started.
//
//	go run ./scripts/ping -kafka 127.0.0.1:19092 -timeout 5s
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

func main() {
	addrs := flag.String("kafka", "127.0.0.1:9092", "comma-separated bootstrap addresses")
	timeout := flag.Duration("timeout", 5*time.Second, "how long to try")
	flag.Parse()
	if err := ping(strings.Split(*addrs, ","), *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "ping:", err)
		os.Exit(1)
	}
}

func ping(addrs []string, timeout time.Duration) error {
	cfg := sarama.NewConfig()
	cfg.ClientID = "brook-ping"
	cfg.Net.DialTimeout = timeout
	cfg.Net.ReadTimeout = timeout
	cfg.Metadata.Retry.Max = 0
	client, err := sarama.NewClient(addrs, cfg)
	if err != nil {
		return fmt.Errorf("connect to %v: %w", addrs, err)
	}
	defer client.Close()
	if err := client.RefreshMetadata(); err != nil {
		return fmt.Errorf("metadata request to %v: %w", addrs, err)
	}
	if len(client.Brokers()) == 0 {
		return fmt.Errorf("metadata from %v lists no brokers", addrs)
	}
	fmt.Printf("ok: %d broker(s)\n", len(client.Brokers()))
	return nil
}
