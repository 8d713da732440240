package runtime

import (
	"fmt"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/changelog"
	"github.com/brookstream/brook/partition"
)

// brookPartitioner places a message on the partition its changelog.Meta names, or
// hashes its key as Kafka's Java producer does.
type brookPartitioner struct{ hash sarama.Partitioner }

func newBrookPartitioner(topic string) sarama.Partitioner {
	return &brookPartitioner{hash: partition.NewSaramaPartitioner(topic)}
}

func (p *brookPartitioner) Partition(msg *sarama.ProducerMessage, n int32) (int32, error) {
	if m, ok := msg.Metadata.(*changelog.Meta); ok && m.Partition >= 0 {
		if m.Partition >= n {
			return -1, fmt.Errorf("partition %d of topic %s does not exist (it has %d)", m.Partition, msg.Topic, n)
		}
		return m.Partition, nil
	}
	return p.hash.Partition(msg, n)
}

func (p *brookPartitioner) RequiresConsistency() bool { return true }
