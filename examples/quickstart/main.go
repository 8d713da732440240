// Command quickstart runs a produce → process → consume pipeline on an
// embedded Kafka cluster, with nothing to install but Go:
//
//	go run ./examples/quickstart
//	go run ./examples/quickstart --brokers 127.0.0.1:19092   # a real cluster
//
// It writes sample payments to a topic, reads them back through a consumer
// group, tags large payments for review, writes the result to a second topic
// and prints it. It is the README's first command until the enrichment
// example (running brook's App) replaces it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

type payment struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Cents   int64  `json:"cents"`
	Review  bool   `json:"review,omitempty"`
}

func main() {
	brokers := flag.String("brokers", "", "comma-separated Kafka bootstrap addresses (default: an embedded cluster)")
	n := flag.Int("n", 10, "payments to process")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *brokers, *n); err != nil {
		slog.Error("quickstart failed", "err", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, brokers string, n int) error {
	addrs := strings.Split(brokers, ",")
	if brokers == "" {
		c, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return fmt.Errorf("start embedded cluster: %w", err)
		}
		defer c.Close()
		addrs = c.ListenAddrs()
		fmt.Println("embedded Kafka cluster at", addrs)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.Return.Successes = true
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest

	suffix := fmt.Sprint(time.Now().UnixNano())
	in, out := "payments-"+suffix, "payments-reviewed-"+suffix
	admin, err := sarama.NewClusterAdmin(addrs, cfg)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	for _, t := range []string{in, out} {
		if err := admin.CreateTopic(t, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			admin.Close()
			return fmt.Errorf("create %s: %w", t, err)
		}
	}
	admin.Close()

	prod, err := sarama.NewSyncProducer(addrs, cfg)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()
	for i := 0; i < n; i++ {
		p := payment{ID: fmt.Sprintf("p-%03d", i), Account: fmt.Sprintf("acct-%d", i%4), Cents: int64(1000 + i*37_000)}
		b, _ := json.Marshal(p)
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: in, Key: sarama.StringEncoder(p.Account), Value: sarama.ByteEncoder(b)}); err != nil {
			return fmt.Errorf("produce to %s: %w", in, err)
		}
	}
	fmt.Printf("produced %d payments to %s\n", n, in)

	group, err := sarama.NewConsumerGroup(addrs, "quickstart-"+suffix, cfg)
	if err != nil {
		return fmt.Errorf("consumer group: %w", err)
	}
	defer group.Close()
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	h := &tagger{prod: prod, out: out, want: n, done: cancel}
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{in}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
			return fmt.Errorf("consume %s: %w", in, err)
		}
	}
	if h.seen < n {
		return fmt.Errorf("processed %d of %d payments before the deadline", h.seen, n)
	}
	fmt.Printf("processed %d payments into %s\n", h.seen, out)
	return nil
}

// tagger marks payments of 1,000.00 or more for review and forwards them.
type tagger struct {
	prod       sarama.SyncProducer
	out        string
	want, seen int
	done       func()
}

func (*tagger) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*tagger) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *tagger) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		var p payment
		if err := json.Unmarshal(m.Value, &p); err != nil {
			return fmt.Errorf("%s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
		p.Review = p.Cents >= 100_000
		b, _ := json.Marshal(p)
		if _, _, err := h.prod.SendMessage(&sarama.ProducerMessage{Topic: h.out, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(b)}); err != nil {
			return err
		}
		s.MarkMessage(m, "")
		fmt.Printf("  %s/%d@%d -> %s: %s\n", m.Topic, m.Partition, m.Offset, h.out, b)
		h.seen++
		if h.seen >= h.want {
			h.done()
		}
	}
	return nil
}
