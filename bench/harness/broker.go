package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kversion"
)

// broker is the cluster of a run: embedded kfake, or a real one.
type broker struct {
	addrs   []string
	cluster *kfake.Cluster
	client  sarama.Client
	admin   sarama.ClusterAdmin
}

// brokerAddrs returns the brokers named by o or KAFKA_BROKERS, or nil.
func brokerAddrs(o *Options) []string {
	if len(o.Brokers) > 0 {
		return o.Brokers
	}
	var out []string
	for _, a := range strings.Split(os.Getenv("KAFKA_BROKERS"), ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func startBroker(o *Options) (*broker, error) {
	b := &broker{addrs: brokerAddrs(o)}
	if len(b.addrs) == 0 {
		// Kafka's Java admin client (Kafka Streams) fails on kfake's
		// DescribeTopicPartitions answer (null eligibleLeaderReplicas):
		// without that API it describes topics through Metadata, as
		// against Kafka before 3.7.
		vs := kversion.Stable()
		vs.SetMaxKeyVersion(75, -1)
		// No log.cleaner.backoff.ms: kfake then compacts hourly. A
		// short backoff recompacts the million-record table and
		// changelog topics again and again, in the harness's process.
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.MaxVersions(vs))
		if err != nil {
			return nil, fmt.Errorf("start embedded kfake: %w", err)
		}
		b.cluster, b.addrs = c, c.ListenAddrs()
	}
	cfg := b.saramaConfig()
	client, err := sarama.NewClient(b.addrs, cfg)
	if err != nil {
		b.close()
		return nil, fmt.Errorf("connect to %v: %w", b.addrs, err)
	}
	b.client = client
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		b.close()
		return nil, err
	}
	b.admin = admin
	return b, nil
}

func (b *broker) embedded() bool { return b.cluster != nil }

func (b *broker) saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "brookbench"
	cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
	return cfg
}

func (b *broker) close() {
	if b.admin != nil {
		b.admin.Close() // closes the client too
	} else if b.client != nil {
		b.client.Close()
	}
	if b.cluster != nil {
		b.cluster.Close()
	}
}

func (b *broker) createTopic(name string, partitions int32, compact bool) error {
	var configs map[string]string
	if compact {
		configs = map[string]string{"cleanup.policy": "compact"}
	}
	return b.createTopicConfigs(name, partitions, configs)
}

func (b *broker) createTopicConfigs(name string, partitions int32, configs map[string]string) error {
	d := &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1, ConfigEntries: map[string]*string{}}
	for k, v := range configs {
		d.ConfigEntries[k] = &v
	}
	if err := b.admin.CreateTopic(name, d, false); err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := b.client.RefreshMetadata(name); err == nil {
			if ps, err := b.client.Partitions(name); err == nil && int32(len(ps)) == partitions {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topic %s did not appear", name)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// endOffsets returns the sum of topic's partitions' end offsets.
func (b *broker) endOffsets(topic string) (int64, error) {
	ps, err := b.client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range ps {
		o, err := b.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		sum += o
	}
	return sum, nil
}

// record is one input record to produce.
type record struct {
	key   string
	value []byte
	ts    time.Time
}

// producer writes the harness's inputs with the common producer settings
// and a Java-compatible (murmur2) partitioner, so stream and table topics
// are co-partitioned for every system.
type producer struct {
	p    sarama.AsyncProducer
	wg   sync.WaitGroup
	mu   sync.Mutex
	sent int64
	done int64
	err  error
	cond *sync.Cond
}

func (b *broker) newProducer() (*producer, error) {
	cfg := b.saramaConfig()
	DefaultProducer.applySarama(cfg)
	cfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.ChannelBufferSize = 4096
	ap, err := sarama.NewAsyncProducer(b.addrs, cfg)
	if err != nil {
		return nil, err
	}
	p := &producer{p: ap}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(2)
	go func() { // owned by producer.close
		defer p.wg.Done()
		for range ap.Successes() {
			p.ack(nil)
		}
	}()
	go func() { // owned by producer.close
		defer p.wg.Done()
		for e := range ap.Errors() {
			p.ack(e)
		}
	}()
	return p, nil
}

func (p *producer) ack(err error) {
	p.mu.Lock()
	p.done++
	if err != nil && p.err == nil {
		p.err = err
	}
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *producer) send(topic string, r record) {
	p.mu.Lock()
	p.sent++
	p.mu.Unlock()
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(r.key), Timestamp: r.ts}
	if r.value != nil {
		m.Value = sarama.ByteEncoder(r.value)
	}
	p.p.Input() <- m
}

// flush waits until every sent record is acknowledged.
func (p *producer) flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.done < p.sent {
		p.cond.Wait()
	}
	return p.err
}

func (p *producer) close() error {
	err := p.flush()
	p.p.AsyncClose()
	p.wg.Wait()
	return err
}

// produceN produces n records made by gen to topic and waits for them.
func (b *broker) produceN(topic string, n int, gen func(i int) record) error {
	p, err := b.newProducer()
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		p.send(topic, gen(i))
	}
	return p.close()
}

// values makes deterministic pseudo-random values of a fixed size.
type values struct {
	size int
	r    *rand.Rand
}

func newValues(size int, seed uint64) *values {
	return &values{size: size, r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (v *values) next() []byte {
	b := make([]byte, v.size)
	for i := 0; i < len(b); i += 8 {
		x := v.r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = 'a' + byte(x>>(8*j))%26
		}
	}
	return b
}

// keyGen picks keys: uniform over n, or Zipf over n with exponent s.
type keyGen struct {
	n    int
	r    *rand.Rand
	zipf *rand.Zipf
}

func newUniform(n int, seed uint64) *keyGen {
	return &keyGen{n: n, r: rand.New(rand.NewPCG(seed, 7))}
}

func newZipf(n int, s float64, seed uint64) *keyGen {
	r := rand.New(rand.NewPCG(seed, 11))
	return &keyGen{n: n, r: r, zipf: rand.NewZipf(r, s, 1, uint64(n-1))}
}

func (k *keyGen) next() string {
	if k.zipf != nil {
		return restoreKey(int(k.zipf.Uint64()))
	}
	return restoreKey(k.r.IntN(k.n))
}

// consumeFrom reads topic from the given per-partition offsets and calls
// fn for every message until ctx ends.
func (b *broker) consumeFrom(ctx context.Context, topic string, from map[int32]int64, fn func(*sarama.ConsumerMessage)) error {
	cfg := b.saramaConfig()
	cfg.Consumer.Fetch.Default = 1 << 20
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	c, err := sarama.NewConsumer(b.addrs, cfg)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	for p, off := range from {
		pc, err := c.ConsumePartition(topic, p, off)
		if err != nil {
			for _, pc := range pcs {
				pc.AsyncClose()
			}
			wg.Wait()
			c.Close()
			return err
		}
		pcs = append(pcs, pc)
		wg.Add(1)
		go func() { // owned by consumeFrom
			defer wg.Done()
			for m := range pc.Messages() {
				fn(m)
			}
		}()
	}
	<-ctx.Done()
	for _, pc := range pcs {
		pc.AsyncClose()
	}
	wg.Wait()
	return c.Close()
}

// partitionEnds returns topic's end offset per partition.
func (b *broker) partitionEnds(topic string) (map[int32]int64, error) {
	ps, err := b.client.Partitions(topic)
	if err != nil {
		return nil, err
	}
	out := map[int32]int64{}
	for _, p := range ps {
		o, err := b.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return nil, err
		}
		out[p] = o
	}
	return out, nil
}

// digest reads topic from its start to its current end and returns the
// number of records and an order-independent sum of an FNV-1a hash of
// each record's key, value and timestamp: equal digests mean (but for a
// hash collision) the same records, whatever the order of partitions.
// Headers are not in the digest; check, when not nil, is called on every
// record read and the first error it returns fails the digest.
func (b *broker) digest(ctx context.Context, topic string, check func(*sarama.ConsumerMessage) error) (string, error) {
	ends, err := b.partitionEnds(topic)
	if err != nil {
		return "", err
	}
	var want int64
	from := map[int32]int64{}
	for p, e := range ends {
		if e > 0 {
			from[p] = sarama.OffsetOldest
			want += e
		}
	}
	if want == 0 {
		return "0 records", nil
	}
	var mu sync.Mutex
	var n int64
	var sum uint64
	var cerr error
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = b.consumeFrom(cctx, topic, from, func(m *sarama.ConsumerMessage) {
		if m.Offset >= ends[m.Partition] {
			return
		}
		x := recordHash(m.Key, m.Value, m.Timestamp.UnixMilli())
		var bad error
		if check != nil {
			bad = check(m)
		}
		mu.Lock()
		defer mu.Unlock()
		if bad != nil && cerr == nil {
			cerr = fmt.Errorf("%s partition %d offset %d: %w", topic, m.Partition, m.Offset, bad)
		}
		n++
		sum += x
		if n == want {
			cancel()
		}
	})
	mu.Lock()
	defer mu.Unlock()
	if err != nil {
		return "", err
	}
	if n != want {
		return "", fmt.Errorf("read %d of %d records of %s", n, want, topic)
	}
	if cerr != nil {
		return "", cerr
	}
	return digestString(n, sum), nil
}
