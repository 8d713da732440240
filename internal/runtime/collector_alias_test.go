package runtime

import (
	"bytes"
	"testing"

	"github.com/IBM/sarama"
	"github.com/IBM/sarama/mocks"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/processor"
)

// TestCollectorOwnsTheBytesItHolds: a serde may hand out the caller's own
// slice (serde.Bytes does), and a processor may reuse its buffer after a
// Put or a Forward. The collector holds changelog records until the
// commit and sink records until the record ends, so it must keep its own
// copy: otherwise the changelog (what a restore rebuilds) and the output
// get bytes the store never held.
func TestCollectorOwnsTheBytesItHolds(t *testing.T) {
	var sent [][]byte
	cfg := mocks.NewTestConfig()
	cfg.Producer.Return.Successes = true
	mp := mocks.NewAsyncProducer(t, cfg)
	for range 2 {
		mp.ExpectInputWithMessageCheckerFunctionAndSucceed(func(m *sarama.ProducerMessage) error {
			v, _ := m.Value.Encode()
			sent = append(sent, bytes.Clone(v))
			return nil
		})
	}
	r := &Runtime{prod: changelog.NewProducer(mp)}
	c := &collector{r: r, task: "0_0"}

	buf := []byte("first")
	c.begin()
	if err := c.SendChangelog("app-s-changelog", 0, []byte("k"), buf); err != nil {
		t.Fatal(err)
	}
	if err := c.Send(processor.ProducedRecord{Topic: "out", Value: buf}, task.Origin{Node: "sink"}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXX") // the processor reuses its buffer before the record ends
	if err := c.release(); err != nil {
		t.Fatal(err)
	}
	if err := c.flushChangelog(); err != nil {
		t.Fatal(err)
	}
	r.prod.Close()
	if len(sent) != 2 {
		t.Fatalf("sent %d records, want 2", len(sent))
	}
	for _, v := range sent {
		if string(v) != "first" {
			t.Errorf("a held record was sent with %q, want the bytes given (%q)", v, "first")
		}
	}
}
