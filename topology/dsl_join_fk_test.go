package topology_test

import (
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// Orders ("customer|amount", keyed by order id) joined to customers
// (names, keyed by customer id) through the order's customer.
func orderCustomer(order string) (string, error) {
	c, _, ok := strings.Cut(order, "|")
	if !ok {
		return "", errors.New("order without a customer")
	}
	return c, nil
}

// fkJoinBuilder declares tables orders and customers, lets join declare
// the foreign-key join "fk" of them, and writes its changes to topic
// enriched.
func fkJoinBuilder(join func(o, c topology.KTable[string, string]) topology.KTable[string, string]) *topology.Builder {
	b := topology.New()
	orders := topology.TableOf(b, "orders", "orders", serde.String(), serde.String())
	customers := topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
	join(orders, customers).ToStream("enriched-changes").To("to-enriched", "enriched", serde.String(), topology.ChangeSerde(serde.String()))
	return b
}

func innerFK(o, c topology.KTable[string, string]) topology.KTable[string, string] {
	return topology.JoinTablesByForeignKey(o, c, "fk", orderCustomer,
		func(_ string, order, name string) (string, error) { return order + "+" + name, nil }, serde.String())
}

func leftFK(o, c topology.KTable[string, string]) topology.KTable[string, string] {
	return topology.LeftJoinTablesByForeignKey(o, c, "fk", orderCustomer,
		func(_ string, order, name string, found bool) (string, error) {
			return order + "+" + orDash(name, found), nil
		}, serde.String())
}

// fkStep pipes one change to orders ("O") or customers ("C").
type fkStep = tableStep

// The scenario both foreign-key join tests run.
var fkSteps = []fkStep{
	{side: "C", key: "c1", value: "Ann", ms: 1},
	{side: "O", key: "o1", value: "c1|10", ms: 2}, // joins Ann
	{side: "O", key: "o2", value: "c2|20", ms: 3}, // c2 unknown
	{side: "C", key: "c2", value: "Bob", ms: 4},   // o2 subscribed: joins
	{side: "C", key: "c1", value: "Ann B", ms: 5}, // fans out to o1
	{side: "O", key: "o1", value: "c2|11", ms: 6}, // o1 moves from c1 to c2
	{side: "C", key: "c1", value: "Ann C", ms: 7}, // o1 left c1: nothing
	{side: "C", key: "c2", del: true, ms: 8},      // right delete: o1 and o2
	{side: "O", key: "o1", value: "c3|12", ms: 9}, // c3 unknown
	{side: "C", key: "c3", value: "Cy", ms: 10},   // joins o1
	{side: "O", key: "o1", del: true, ms: 11},     // left delete
	{side: "C", key: "c3", value: "Cy 2", ms: 12}, // o1 gone: nothing
	{side: "O", key: "o3", del: true, ms: 13},     // never existed: nothing
}

func pipeSteps(t *testing.T, d *testutil.TestDriver, topics map[string]string, steps []tableStep) {
	t.Helper()
	for _, s := range steps {
		c := topology.Update(s.value)
		if s.del {
			c = topology.Deletion[string]()
		}
		if err := testutil.NewInputTopic(d, topics[s.side], serde.String(), topology.ChangeSerde(serde.String())).Pipe(s.key, c, at(s.ms)); err != nil {
			t.Fatal(err)
		}
	}
}

var fkTopics = map[string]string{"O": "orders", "C": "customers"}

// Each expectation is worked out from Kafka Streams' subscription
// instructions (KIP-213) for the same changes.
func TestJoinTablesByForeignKeyInner(t *testing.T) {
	d := dslDriver(t, fkJoinBuilder(innerFK))
	pipeSteps(t, d, fkTopics, fkSteps)
	checkStrings(t, "inner foreign-key join", changes(t, d, "enriched", serde.String(), serde.String()),
		"o1=c1|10+Ann@2",
		"o2=c2|20+Bob@4",
		"o1=c1|10+Ann B@5",
		"o1=c2|11+Bob@6", // and no later result with c1
		"o1=<deleted>@8", "o2=<deleted>@8",
		"o1=<deleted>@9", // o1's new customer is unknown: its earlier result goes (Kafka Streams does the same)
		"o1=c3|12+Cy@10",
		"o1=<deleted>@11",
	)
	if got := kvStoreContent[string, string](t, d, "fk"); len(got) != 0 {
		t.Errorf("result store = %v, want empty", got)
	}
	// The subscriptions left: o2 still refers to c2 (deleted but it may
	// come back); o1 is subscribed nowhere.
	if got := kvStoreContent[string, string](t, d, "fk-foreign-keys"); len(got) != 1 || got["o2"] != "c2" {
		t.Errorf("foreign keys = %v, want o2=c2", got)
	}
	pipeSteps(t, d, fkTopics, []tableStep{{side: "C", key: "c2", value: "Bob 2", ms: 14}})
	checkStrings(t, "after c2 came back", changes(t, d, "enriched", serde.String(), serde.String()), "o2=c2|20+Bob 2@14")
}

func TestJoinTablesByForeignKeyLeft(t *testing.T) {
	d := dslDriver(t, fkJoinBuilder(leftFK))
	pipeSteps(t, d, fkTopics, fkSteps)
	checkStrings(t, "left foreign-key join", changes(t, d, "enriched", serde.String(), serde.String()),
		"o1=c1|10+Ann@2",
		"o2=c2|20+-@3",
		"o2=c2|20+Bob@4",
		"o1=c1|10+Ann B@5",
		"o1=c2|11+Bob@6",
		"o1=c2|11+-@8", "o2=c2|20+-@8",
		"o1=c3|12+-@9",
		"o1=c3|12+Cy@10",
		"o1=<deleted>@11",
	)
	if got := kvStoreContent[string, string](t, d, "fk"); len(got) != 1 || got["o2"] != "c2|20+-" {
		t.Errorf("result store = %v, want o2=c2|20+-", got)
	}
}

// The subscriptions and foreign keys are logged stores: after a restart
// (stores restored from their changelogs) a customer update still finds
// its orders, and a moved order is still unsubscribed from its old
// customer.
func TestJoinTablesByForeignKeyAfterRestart(t *testing.T) {
	d := dslDriver(t, fkJoinBuilder(innerFK))
	pipeSteps(t, d, fkTopics, fkSteps[:6])
	changes(t, d, "enriched", serde.String(), serde.String()) // read (and drop) the results so far
	d2, err := d.Restart()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	pipeSteps(t, d2, fkTopics, []tableStep{
		{side: "C", key: "c2", value: "Bob 2", ms: 20},
		{side: "C", key: "c1", value: "Ann D", ms: 21},
		{side: "O", key: "o1", value: "c1|13", ms: 22},
	})
	checkStrings(t, "after restart", changes(t, d2, "enriched", serde.String(), serde.String()),
		"o1=c2|11+Bob 2@20", "o2=c2|20+Bob 2@20", "o1=c1|13+Ann D@22")
}

// An answer of the right side made for a left value that has changed
// since is dropped: the driver processes the round trip at once, so the
// test writes an answer to the response topic itself, once with the hash
// of the order's earlier value (dropped) and once with the hash of its
// current value (joined, which shows the first was dropped for its hash).
func TestJoinTablesByForeignKeyDropsStaleAnswers(t *testing.T) {
	d := dslDriver(t, fkJoinBuilder(innerFK))
	pipeSteps(t, d, fkTopics, fkSteps[:6]) // o1 is now c2|11, joined with Bob
	const app = testutil.DriverApplicationID
	subTopic := app + "-fk-subscription-registration-topic"
	respTopic := app + "-fk-subscription-response-topic"
	answer := func(orderValue, name string) []byte {
		vb, err := serde.String().Serialize(subTopic+"-hash", orderValue)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(vb)
		// version 1, found, hash length, hash, right value.
		return append(append([]byte{1, 1, 16}, sum[:16]...), name...)
	}
	changes(t, d, "enriched", serde.String(), serde.String()) // read (and drop) the results so far
	if err := d.PipeRaw(respTopic, []byte("o1"), answer("c1|10", "Ann"), at(30), nil); err != nil {
		t.Fatal(err)
	}
	if got := changes(t, d, "enriched", serde.String(), serde.String()); len(got) != 0 {
		t.Fatalf("a stale answer produced %v", got)
	}
	if err := d.PipeRaw(respTopic, []byte("o1"), answer("c2|11", "Bob (current)"), at(31), nil); err != nil {
		t.Fatal(err)
	}
	checkStrings(t, "current answer", changes(t, d, "enriched", serde.String(), serde.String()), "o1=c2|11+Bob (current)@31")
}

// The foreign-key join's internal topics show in Describe, each read in
// the sub-topology of the table it is co-partitioned with; Build refuses
// a derived table and a second join of the same name.
func TestJoinTablesByForeignKeyBuild(t *testing.T) {
	topo, err := fkJoinBuilder(innerFK).Build()
	if err != nil {
		t.Fatal(err)
	}
	desc := topo.Describe()
	for _, want := range []string{
		"<application-id>-fk-subscription-registration-topic",
		"<application-id>-fk-subscription-response-topic",
		"fk-subscribe", "fk-subscription-receive", "fk-foreign-update", "fk-foreign-keys", "fk-subscriptions",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("Describe lacks %q:\n%s", want, desc)
		}
	}
	got := map[string]bool{}
	for _, g := range topo.CoPartitionGroups() {
		got[strings.Join(g, ",")] = true
	}
	for _, want := range []string{
		"<application-id>-fk-subscription-response-topic,orders",
		"<application-id>-fk-subscription-registration-topic,customers",
	} {
		if !got[want] {
			t.Errorf("co-partition groups %v lack %s", got, want)
		}
	}

	b := topology.New()
	orders := topology.TableOf(b, "orders", "orders", serde.String(), serde.String())
	customers := topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
	big := orders.Filter("big", func(string, string) bool { return true })
	innerFK(big, customers)
	_, err = b.Build()
	var ve *topology.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(ve.Detail, `left table "big" has no store`) {
		t.Fatalf("Build error %v, want the derived left table refused", err)
	}

	b = topology.New()
	orders = topology.TableOf(b, "orders", "orders", serde.String(), serde.String())
	customers = topology.TableOf(b, "customers", "customers", serde.String(), serde.String())
	innerFK(orders, customers)
	leftFK(orders, customers)
	if _, err = b.Build(); err == nil || !strings.Contains(err.Error(), "fk-subscription-registration-topic") {
		t.Fatalf("Build error %v, want the duplicate internal topic named", err)
	}
}

// An extractor error goes to the processing handler, naming the node.
func TestJoinTablesByForeignKeyExtractorError(t *testing.T) {
	d := dslDriver(t, fkJoinBuilder(innerFK))
	err := testutil.NewInputTopic(d, "orders", serde.String(), serde.String()).Pipe("o9", "no customer", at(1))
	if err == nil || !strings.Contains(err.Error(), "fk-subscribe") || !strings.Contains(err.Error(), "order without a customer") {
		t.Fatalf("Pipe error %v, want a processing error of fk-subscribe", err)
	}
}
