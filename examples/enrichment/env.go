package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/partition"
	"github.com/brookstream/brook/serde/avro"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
	"github.com/twmb/franz-go/pkg/kfake"
)

// partitions is the partition count of the customers, transactions and
// enriched topics: the customers table is joined by key with the
// transactions, so their topics are co-partitioned.
const partitions = 4

// merchantPartitions is the merchants topic's partition count. It differs
// on purpose: a global table is read whole by every instance and joined by
// a key taken from the record (the merchant id), so it is co-partitioned
// with nothing.
const merchantPartitions = 2

// retryEvery makes every retryEvery-th sample transaction arrive twice, as
// a payment network's retry does.
const retryEvery = 10

// env is the set-up of one run: broker, registry, topics, serdes.
type env struct {
	o        options
	out      io.Writer
	brokers  []string
	regURL   string
	cluster  *kfake.Cluster
	embReg   *testutil.EmbeddedRegistry
	reg      *avro.Registry
	regHTTP  *http.Transport
	serdes   *serdes
	sarama   *sarama.Config
	tls      *tls.Config
	sasl     *topology.SASL
	stateDir string

	topics
	appID string
}

func setUp(ctx context.Context, o options, out io.Writer) (_ *env, err error) {
	e := &env{o: o, out: out}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	e.brokers = splitAddrs(o.brokers)
	if len(e.brokers) == 0 {
		e.cluster, err = kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			return nil, fmt.Errorf("start the embedded Kafka cluster: %w", err)
		}
		e.brokers = e.cluster.ListenAddrs()
		fmt.Fprintf(out, "Kafka: embedded cluster at %s (use --brokers for a real one)\n", strings.Join(e.brokers, ","))
	} else {
		fmt.Fprintf(out, "Kafka: %s\n", strings.Join(e.brokers, ","))
	}
	e.regURL = strings.TrimRight(o.registry, "/")
	if e.regURL == "" {
		if e.embReg, err = testutil.NewEmbeddedRegistry("127.0.0.1:0"); err != nil {
			return nil, err
		}
		e.regURL = e.embReg.URL()
		fmt.Fprintf(out, "Schema registry: embedded at %s; it checks Avro compatibility for real (BACKWARD by default), "+
			"with the same resolution rules brook's deserializer uses (use --registry for a real one)\n", e.regURL)
	} else {
		fmt.Fprintf(out, "Schema registry: %s\n", e.regURL)
	}
	e.regHTTP = &http.Transport{}
	if e.reg, err = avro.NewRegistry(e.regURL, avro.WithLogger(o.logger),
		avro.WithHTTPClient(&http.Client{Transport: e.regHTTP, Timeout: 10 * time.Second})); err != nil {
		return nil, err
	}
	if e.serdes, err = newSerdes(e.reg); err != nil {
		return nil, err
	}
	e.topics = topics{
		customers: o.prefix + "-customers", merchants: o.prefix + "-merchants",
		transactions: o.prefix + "-transactions", enriched: o.prefix + "-transactions-enriched",
	}
	e.appID = o.prefix + "-app"
	if e.tls, e.sasl, err = o.security(); err != nil {
		return nil, err
	}
	// The example's own admin, producer and consumer connect exactly as
	// the application does (version, TLS, SASL).
	if e.sarama, err = (topology.Config{
		ApplicationID: e.appID, Brokers: e.brokers, TLS: e.tls, SASL: e.sasl, ClientID: "brook-enrichment-example",
	}).SaramaConfig(); err != nil {
		return nil, err
	}
	e.sarama.Producer.Return.Successes = true
	e.sarama.Producer.RequiredAcks = sarama.WaitForAll
	// Key the sample data as brook's sinks and the Java client do
	// (murmur2), so that queries find each customer where it is.
	e.sarama.Producer.Partitioner = partition.NewSaramaPartitioner
	e.sarama.Consumer.Offsets.Initial = sarama.OffsetOldest
	// The application writes in transactions (exactly-once): read only
	// what it committed.
	e.sarama.Consumer.IsolationLevel = sarama.ReadCommitted
	if err := e.createTopics(); err != nil {
		return nil, err
	}
	if e.stateDir, err = os.MkdirTemp("", "brook-enrichment-"); err != nil {
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.reg != nil {
		e.reg.Close()
	}
	if e.regHTTP != nil {
		e.regHTTP.CloseIdleConnections()
	}
	if e.embReg != nil {
		e.embReg.Close()
	}
	if e.cluster != nil {
		e.cluster.Close()
	}
	if e.stateDir != "" {
		os.RemoveAll(e.stateDir)
	}
}

func (e *env) createTopics() error {
	admin, err := sarama.NewClusterAdmin(e.brokers, e.sarama)
	if err != nil {
		return fmt.Errorf("connect to Kafka at %v: %w", e.brokers, err)
	}
	defer admin.Close()
	compact := "compact"
	for _, t := range []struct {
		name       string
		partitions int32
		configs    map[string]*string
	}{
		{e.customers, partitions, map[string]*string{"cleanup.policy": &compact}},
		{e.merchants, merchantPartitions, map[string]*string{"cleanup.policy": &compact}},
		{e.transactions, partitions, nil},
		{e.enriched, partitions, nil},
	} {
		err := admin.CreateTopic(t.name, &sarama.TopicDetail{NumPartitions: t.partitions, ReplicationFactor: 1, ConfigEntries: t.configs}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", t.name, err)
		}
	}
	return nil
}

// instance is one running App with its query server.
type instance struct {
	name     string
	app      *topology.App
	endpoint string
	srv      *http.Server
}

func (e *env) serve(ctx context.Context, onStart func(started)) error {
	topo, err := buildTopology(e.serdes, e.topics)
	if err != nil {
		return err
	}
	prod, err := sarama.NewSyncProducer(e.brokers, e.sarama)
	if err != nil {
		return fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()
	// The merchants go in before the instances start: each instance
	// restores the whole global table before its tasks process a record.
	if err := e.produceMerchants(prod); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	var insts []*instance
	for i, listen := range []string{e.o.listenA, e.o.listenB} {
		in, err := e.startInstance(ctx, &wg, errs, topo, string(rune('A'+i)), listen)
		if err != nil {
			cancel()
			wg.Wait()
			return err
		}
		insts = append(insts, in)
	}
	defer func() {
		for _, in := range insts {
			in.srv.Close()
		}
		cancel()
		wg.Wait()
	}()
	hc := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	defer hc.Transport.(*http.Transport).CloseIdleConnections()

	fail := func(err error) error {
		select {
		case rerr := <-errs:
			return rerr
		default:
		}
		if ctx.Err() != nil {
			return nil // interrupted during start-up
		}
		return err
	}
	if err := e.waitReady(ctx, hc, insts); err != nil {
		return fail(err)
	}
	if err := e.waitMerchants(ctx, insts); err != nil {
		return fail(err)
	}
	rng := rand.New(rand.NewPCG(7, 11))
	if err := e.produceCustomers(prod, rng); err != nil {
		return fail(err)
	}
	// The table must hold every profile before transactions arrive: wait
	// until the two instances' profile stores hold them all.
	if err := e.waitProfiles(ctx, insts); err != nil {
		return fail(err)
	}
	next := 0
	if next, err = e.produceTxns(prod, rng, next, e.o.transactions); err != nil {
		return fail(err)
	}
	if err := e.printEnriched(ctx, min(5, e.o.transactions)); err != nil {
		return fail(err)
	}
	routed, err := e.printQueries(ctx, hc, insts)
	if err != nil {
		return fail(err)
	}
	if onStart != nil {
		onStart(started{Endpoints: [2]string{insts[0].endpoint, insts[1].endpoint}, RoutedCustomer: routed, Brokers: e.brokers, Registry: e.regURL, Topics: e.topics})
	}
	fmt.Fprintln(e.out, "\nRunning; Ctrl-C stops.")
	var tick <-chan time.Time
	if e.o.rate > 0 {
		t := time.NewTicker(time.Second / time.Duration(e.o.rate))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(e.out, "Stopping.")
			return nil
		case err := <-errs:
			return err
		case <-tick:
			if next, err = e.produceTxns(prod, rng, next, 1); err != nil {
				return err
			}
		}
	}
}

func (e *env) startInstance(ctx context.Context, wg *sync.WaitGroup, errs chan<- error, topo *topology.Topology, name, listen string) (*instance, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("instance %s: listen on %s: %w", name, listen, err)
	}
	endpoint := ln.Addr().String()
	app, err := topology.NewApp(topo, topology.Config{
		ApplicationID: e.appID, Brokers: e.brokers, StateDir: filepath.Join(e.stateDir, name),
		CommitInterval: 500 * time.Millisecond, Guarantee: topology.ExactlyOnce,
		QueryEndpoint: endpoint, Logger: e.o.logger.With("instance", name),
		TLS: e.tls, SASL: e.sasl,
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	in := &instance{name: name, app: app, endpoint: endpoint, srv: &http.Server{Handler: app.QueryHandler(), ReadHeaderTimeout: 5 * time.Second}}
	wg.Add(2)
	go func() { // owned by serve, which waits for it
		defer wg.Done()
		if err := app.Run(ctx); err != nil {
			errs <- fmt.Errorf("instance %s: %w", name, err)
		}
	}()
	go func() { // owned by serve, which closes the server and waits
		defer wg.Done()
		_ = in.srv.Serve(ln)
	}()
	fmt.Fprintf(e.out, "Instance %s: queries at http://%s\n", name, endpoint)
	return in, nil
}

func get(ctx context.Context, hc *http.Client, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// poll calls f every 100ms until it reports done, ctx ends or a minute
// passes.
func poll(ctx context.Context, what string, f func() (bool, error)) error {
	deadline := time.Now().Add(time.Minute)
	for {
		ok, err := f()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (e *env) waitReady(ctx context.Context, hc *http.Client, insts []*instance) error {
	return poll(ctx, "the instances to be ready", func() (bool, error) {
		for _, in := range insts {
			status, _, err := get(ctx, hc, "http://"+in.endpoint+"/ready")
			if err != nil || status != http.StatusOK {
				return false, nil
			}
		}
		return true, nil
	})
}

func (e *env) waitProfiles(ctx context.Context, insts []*instance) error {
	return poll(ctx, "the profiles table", func() (bool, error) {
		var n int64
		for _, in := range insts {
			v, err := topology.QueryKeyValue[string, Customer](in.app, profilesStore)
			if err != nil {
				return false, err
			}
			c, err := v.ApproximateCount()
			if err != nil {
				return false, nil // restoring or rebalancing: try again
			}
			n += c
		}
		return n >= int64(e.o.customers), nil
	})
}

// waitMerchants waits until each instance holds every sample merchant: a
// global table is whole on every instance, not shared out between them.
func (e *env) waitMerchants(ctx context.Context, insts []*instance) error {
	return poll(ctx, "the merchants global table", func() (bool, error) {
		for _, in := range insts {
			v, err := topology.QueryKeyValue[string, Merchant](in.app, merchantsStore)
			if err != nil {
				return false, err
			}
			for _, m := range sampleMerchants {
				if _, found, err := v.Get(m.ID); err != nil || !found {
					return false, nil // restoring: try again
				}
			}
		}
		return true, nil
	})
}

var (
	firstNames = []string{"Ada", "Grace", "Alan", "Barbara", "Edsger", "Frances", "Donald", "Margaret", "Ken", "Radia"}
	lastNames  = []string{"Lovelace", "Hopper", "Turing", "Liskov", "Dijkstra", "Allen", "Knuth", "Hamilton", "Thompson", "Perlman"}
	tiers      = []string{"STANDARD", "STANDARD", "GOLD", "PLATINUM"}
	countries  = []string{"DE", "FR", "GB", "NL", "SE", "US"}
)

// sampleMerchants are the merchants table's records.
var sampleMerchants = []Merchant{
	{ID: "m-001", Name: "Coffee Corner", Category: "Coffee shops", Country: "NL"},
	{ID: "m-002", Name: "Book Nook", Category: "Bookstores", Country: "GB"},
	{ID: "m-003", Name: "Rail Tickets", Category: "Rail travel", Country: "DE"},
	{ID: "m-004", Name: "Grocer", Category: "Groceries", Country: "FR"},
	{ID: "m-005", Name: "Cinema", Category: "Cinemas", Country: "SE"},
	{ID: "m-006", Name: "Pharmacy", Category: "Pharmacies", Country: "DE"},
	{ID: "m-007", Name: "Bike Shop", Category: "Bicycle shops", Country: "NL"},
}

// unknownMerchant is a merchant that pays with cards but is not in the
// merchants table (onboarded, say, before its reference data arrived).
// Transaction number unknownMerchantAt, and every unknownMerchantEvery-th
// after it, is at this merchant: the left join emits them with
// merchant_lookup UNKNOWN_MERCHANT and null merchant fields.
var unknownMerchant = struct{ ID, Name string }{"m-999", "NIGHT MARKET STALL"}

const (
	unknownMerchantEvery = 20
	unknownMerchantAt    = 3
)

func customerID(i int) string { return fmt.Sprintf("cust-%03d", i) }

func (e *env) produceMerchants(prod sarama.SyncProducer) error {
	var msgs []*sarama.ProducerMessage
	for _, m := range sampleMerchants {
		v, err := e.serdes.merchant.Serialize(e.merchants, m)
		if err != nil {
			return fmt.Errorf("serialize merchant: %w", err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: e.merchants, Key: sarama.StringEncoder(m.ID), Value: sarama.ByteEncoder(v)})
	}
	if err := prod.SendMessages(msgs); err != nil {
		return fmt.Errorf("write merchants: %w", err)
	}
	fmt.Fprintf(e.out, "Wrote %d merchants (Avro) to %s (%d partitions, compacted; a global table: every instance reads all of it before processing)\n",
		len(msgs), e.merchants, merchantPartitions)
	return nil
}

func (e *env) produceCustomers(prod sarama.SyncProducer, rng *rand.Rand) error {
	var msgs []*sarama.ProducerMessage
	for i := 0; i < e.o.customers; i++ {
		c := Customer{
			ID:      customerID(i),
			Name:    firstNames[i%len(firstNames)] + " " + lastNames[(i/len(firstNames)+i)%len(lastNames)],
			Tier:    tiers[rng.IntN(len(tiers))],
			Country: countries[rng.IntN(len(countries))],
		}
		v, err := e.serdes.customer.Serialize(e.customers, c)
		if err != nil {
			return fmt.Errorf("serialize customer: %w", err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: e.customers, Key: sarama.StringEncoder(c.ID), Value: sarama.ByteEncoder(v)})
	}
	if err := prod.SendMessages(msgs); err != nil {
		return fmt.Errorf("write customers: %w", err)
	}
	fmt.Fprintf(e.out, "Wrote %d customer profiles (Avro) to %s (%d partitions, compacted; a table co-partitioned with the transactions)\n",
		len(msgs), e.customers, partitions)
	return nil
}

func (e *env) produceTxns(prod sarama.SyncProducer, rng *rand.Rand, next, n int) (int, error) {
	if n == 0 {
		return next, nil
	}
	var msgs []*sarama.ProducerMessage
	retried, unknown := 0, 0
	for i := 0; i < n; i++ {
		m := sampleMerchants[rng.IntN(len(sampleMerchants))]
		merchantID, descriptor := m.ID, strings.ToUpper(m.Name)
		if next%unknownMerchantEvery == unknownMerchantAt {
			merchantID, descriptor = unknownMerchant.ID, unknownMerchant.Name
			unknown++
		}
		t := Txn{
			ID: fmt.Sprintf("txn-%06d", next), CustomerID: customerID(rng.IntN(e.o.customers)),
			AmountCents: int64(100 + rng.IntN(20000)), Currency: "EUR",
			Merchant: descriptor, MerchantID: merchantID, At: time.Now().UTC().Truncate(time.Millisecond),
		}
		retry := next%retryEvery == 0
		next++
		v, err := e.serdes.txn.Serialize(e.transactions, t)
		if err != nil {
			return next, fmt.Errorf("serialize transaction: %w", err)
		}
		m2 := &sarama.ProducerMessage{Topic: e.transactions, Key: sarama.StringEncoder(t.CustomerID), Value: sarama.ByteEncoder(v), Timestamp: t.At}
		msgs = append(msgs, m2)
		if retry {
			// The same transaction again, which the application's
			// DropDuplicates drops.
			again := *m2
			msgs = append(msgs, &again)
			retried++
		}
	}
	if err := prod.SendMessages(msgs); err != nil {
		return next, fmt.Errorf("write transactions: %w", err)
	}
	if n > 1 {
		fmt.Fprintf(e.out, "Wrote %d transactions (Avro) to %s, %d of them twice (retries the application drops), %d at merchant %s, which is not in the merchants table\n",
			n, e.transactions, retried, unknown, unknownMerchant.ID)
	}
	return next, nil
}

// printEnriched waits for n enriched records, and for one at an unknown
// merchant if the start batch has one, and prints them, then two of them
// in full as Avro's JSON form.
func (e *env) printEnriched(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	consumer, err := sarama.NewConsumer(e.brokers, e.sarama)
	if err != nil {
		return fmt.Errorf("consumer: %w", err)
	}
	defer consumer.Close()
	wantUnknown := e.o.transactions > unknownMerchantAt
	var shown []EnrichedTxn
	err = poll(ctx, "enriched records", func() (bool, error) {
		var found, unknown []EnrichedTxn
		for p := int32(0); p < partitions; p++ {
			msgs, err := readPartition(consumer, e.enriched, p, 1<<20)
			if err != nil {
				return false, err
			}
			for _, m := range msgs {
				v, err := e.serdes.enriched.Deserialize(e.enriched, m.Value)
				if err != nil {
					return false, fmt.Errorf("read enriched record %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
				}
				if v.MerchantLookup == MerchantUnknown {
					unknown = append(unknown, v)
				} else {
					found = append(found, v)
				}
			}
		}
		// One at an unknown merchant, the others at known ones as far as
		// there are enough.
		k := min(1, len(unknown))
		shown = append(shown[:0], unknown[:k]...)
		for _, v := range append(found, unknown[k:]...) {
			if len(shown) == n {
				break
			}
			shown = append(shown, v)
		}
		return len(shown) >= n && (len(unknown) > 0 || !wantUnknown), nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(shown, func(a, b EnrichedTxn) int { return strings.Compare(a.ID, b.ID) })
	fmt.Fprintf(e.out, "\nEnriched transactions from %s (customer: stream–table left join on the key; merchant: global-table left join on merchant_id):\n", e.enriched)
	width := 0
	for _, v := range shown {
		width = max(width, len(customerSummary(v)))
	}
	for _, v := range shown {
		fmt.Fprintf(e.out, "  %s\n", summary(v, width))
	}
	fmt.Fprintf(e.out, "The same records in full, as Avro's JSON form:\n")
	for _, v := range shown {
		j, err := e.serdes.enriched.ValueJSON(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.out, "  %s\n", j)
	}
	return nil
}

// summary is an enriched transaction on one line, its customer part
// padded to width.
func summary(v EnrichedTxn, width int) string {
	var merchant string
	switch v.MerchantLookup {
	case MerchantFound:
		merchant = fmt.Sprintf("%s %s (%s, %s)", v.MerchantID, deref(v.MerchantName), deref(v.MerchantCategory), deref(v.MerchantCountry))
	case MerchantUnknown:
		merchant = fmt.Sprintf("%s UNKNOWN MERCHANT (%q is not in the merchants table; emitted all the same)", v.MerchantID, v.Merchant)
	default:
		merchant = fmt.Sprintf("%q (merchant not looked up)", v.Merchant)
	}
	return fmt.Sprintf("%s  %-*s %12s  at %s", v.ID, width, customerSummary(v), formatAmount(v.AmountCents, v.Currency), merchant)
}

func customerSummary(v EnrichedTxn) string {
	if v.CustomerName == nil {
		return v.CustomerID + " (no profile)"
	}
	return fmt.Sprintf("%s %s (%s, %s)", v.CustomerID, *v.CustomerName, deref(v.Tier), deref(v.Country))
}

func deref(s *string) string {
	if s == nil {
		return "?"
	}
	return *s
}

// formatAmount writes an amount in cents exactly, without floating point.
func formatAmount(cents int64, currency string) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign, u = "-", uint64(-(cents+1))+1
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, u/100, u%100, currency)
}

// readPartition reads up to n records of a partition from its start, up
// to its current end.
func readPartition(c sarama.Consumer, topic string, p int32, n int) ([]*sarama.ConsumerMessage, error) {
	pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		return nil, fmt.Errorf("consume %s/%d: %w", topic, p, err)
	}
	defer pc.Close()
	var out []*sarama.ConsumerMessage
	if pc.HighWaterMarkOffset() == 0 {
		return nil, nil
	}
	timeout := time.After(2 * time.Second)
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
			if m.Offset+1 >= pc.HighWaterMarkOffset() {
				return out, nil
			}
		case <-timeout:
			return out, nil
		}
	}
	return out, nil
}

// printQueries finds a customer held by instance B, queries it through
// instance A, and prints curl commands. It returns that customer.
func (e *env) printQueries(ctx context.Context, hc *http.Client, insts []*instance) (string, error) {
	a, b := insts[0], insts[1]
	routed := ""
	for i := 0; i < e.o.customers && routed == ""; i++ {
		status, body, err := get(ctx, hc, "http://"+a.endpoint+"/stores/"+spendStore+"/metadata?key="+url.QueryEscape(customerID(i)))
		if err != nil || status != http.StatusOK {
			continue
		}
		var md struct {
			Endpoint string `json:"endpoint"`
		}
		if json.Unmarshal(body, &md) == nil && md.Endpoint == b.endpoint {
			routed = customerID(i)
		}
	}
	if routed == "" {
		return "", errors.New("instance B holds no customer; the group has not balanced")
	}
	var answer []byte
	err := poll(ctx, "the spend of "+routed, func() (bool, error) {
		status, body, err := get(ctx, hc, "http://"+a.endpoint+"/stores/"+spendStore+"/keys/"+routed)
		if err != nil {
			return false, err
		}
		answer = body
		return status == http.StatusOK, nil
	})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(e.out, "\nSpend of %s, asked instance A (%s), held and answered by instance B (%s):\n  %s", routed, a.endpoint, b.endpoint, answer)
	fmt.Fprintf(e.out, "\nTry:\n")
	fmt.Fprintf(e.out, "  curl http://%s/stores/%s/keys/%s    # on instance B, routed there by A\n", a.endpoint, spendStore, routed)
	fmt.Fprintf(e.out, "  curl 'http://%s/stores/%s/range?limit=5'    # gathered from both instances, with a continuation token\n", b.endpoint, spendStore)
	fmt.Fprintf(e.out, "  curl http://%s/stores/%s/keys/%s    # a customer profile (the table, routed to its owner)\n", b.endpoint, profilesStore, customerID(0))
	fmt.Fprintf(e.out, "  curl http://%s/stores/%s/keys/%s    # a merchant (the global table: each instance answers from its own copy)\n", a.endpoint, merchantsStore, sampleMerchants[0].ID)
	fmt.Fprintf(e.out, "  curl http://%s/stores/%s/keys/%s    # not in the merchants table: 404\n", b.endpoint, merchantsStore, unknownMerchant.ID)
	fmt.Fprintf(e.out, "  curl 'http://%s/stores/%s/metadata?key=%s'\n", a.endpoint, spendStore, routed)
	fmt.Fprintf(e.out, "  curl http://%s/instances\n", a.endpoint)
	fmt.Fprintf(e.out, "  curl http://%s/stores\n", a.endpoint)
	return routed, nil
}
