package runtime_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/testutil"
)

// countingStrategy is sarama's cooperative-sticky strategy that counts
// the joins (SubscriptionUserData runs before each JoinGroup).
type countingStrategy struct {
	sarama.BalanceStrategy
	joins atomic.Int32
}

func (s *countingStrategy) SupportedProtocols() []sarama.RebalanceProtocol {
	return s.BalanceStrategy.(sarama.RebalanceProtocolBalanceStrategy).SupportedProtocols()
}

func (s *countingStrategy) SubscriptionUserData(topics []string) ([]byte, error) {
	s.joins.Add(1)
	return s.BalanceStrategy.(sarama.SubscriptionUserDataBalanceStrategy).SubscriptionUserData(topics)
}

func (s *countingStrategy) OnAssignment(a *sarama.ConsumerGroupMemberAssignment, gen int32) {
	s.BalanceStrategy.(sarama.OnAssignmentBalanceStrategy).OnAssignment(a, gen)
}

type rejoinHandler struct {
	setups atomic.Int32
	once   sync.Once
	sess   chan sarama.ConsumerGroupSession
}

func (h *rejoinHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.setups.Add(1)
	h.once.Do(func() { h.sess <- s })
	return nil
}
func (h *rejoinHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *rejoinHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for range c.Messages() {
	}
	return nil
}

// TestRequestRejoinKeepsTheCooperativeSession checks what the probing
// rebalance relies on in the pinned sarama version: the session's rejoin
// channel is found, and signalling it makes the member join the group
// again within the same session (no second Setup).
func TestRequestRejoinKeepsTheCooperativeSession(t *testing.T) {
	b := testutil.NewBroker(t)
	topic := testutil.TopicName(t, "in")
	b.CreateTopic(t, topic, 2, nil)
	cfg := b.SaramaConfig()
	strategy := &countingStrategy{BalanceStrategy: sarama.NewBalanceStrategyCooperativeSticky()}
	cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{strategy}
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	group, err := sarama.NewConsumerGroup(b.Addrs(), testutil.TopicName(t, "group"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	h := &rejoinHandler{sess: make(chan sarama.ConsumerGroupSession, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- group.Consume(ctx, []string{topic}, h) }()
	defer func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("consume: %v", err)
		}
	}()
	var sess sarama.ConsumerGroupSession
	select {
	case sess = <-h.sess:
	case <-time.After(30 * time.Second):
		t.Fatal("no session within 30s")
	}
	before := strategy.joins.Load()
	if !runtime.RequestRejoin(sess, errors.New("test rejoin")) {
		t.Fatal("the sarama session has no rejoin channel: probing rebalances would end the session (sarama version changed?)")
	}
	deadline := time.Now().Add(30 * time.Second)
	for strategy.joins.Load() == before {
		if time.Now().After(deadline) {
			t.Fatal("the member did not join again within 30s of the rejoin request")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := h.setups.Load(); n != 1 {
		t.Fatalf("Setup ran %d times: the rejoin ended the session", n)
	}
}
