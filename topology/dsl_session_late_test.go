package topology_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// failingStrings is a string serde that refuses to serialize values
// containing "bad".
type failingStrings struct{ serde.Serde[string] }

func (s failingStrings) Serialize(topic string, v string) ([]byte, error) {
	if strings.Contains(v, "bad") {
		return nil, errors.New("refused")
	}
	return s.Serde.Serialize(topic, v)
}

// storedSessions lists key's sessions in a session store of strings as
// "start-end=value", times in ms after t0.
func storedSessions(t *testing.T, d *testutil.TestDriver, name, key string) []string {
	t.Helper()
	ss, err := testutil.SessionStore[string, string](d, name)
	if err != nil {
		t.Fatal(err)
	}
	it, err := ss.FindSessions(key, at(0), at(1_000_000))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var got []string
	for it.Next() {
		got = append(got, fmt.Sprintf("%d-%d=%s", it.Key().Start.Sub(t0).Milliseconds(), it.Key().End.Sub(t0).Milliseconds(), it.Value()))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// A bridging record whose merged aggregate cannot be stored (its serde
// fails) goes to the processing error handler and leaves the sessions it
// would have merged in place: none is deleted, downstream or in the
// store.
func TestDSLSessionFailedPutKeepsSessions(t *testing.T) {
	var handled []string
	b := topology.New(topology.WithProcessingHandler(func(ec processor.ErrorContext) processor.HandlerResponse {
		handled = append(handled, fmt.Sprint(ec.Node, "@", ec.Offset))
		return processor.Continue
	}))
	sw := topology.Stream(b, "in", "in", serde.String(), serde.String()).GroupByKey().
		SessionWindowedBy(topology.SessionWindows(10 * time.Second).Grace(time.Minute))
	topology.AggregateSessions(sw, "log", func() string { return "" },
		func(_ string, v string, agg string) (string, error) { return agg + "+" + v, nil },
		func(_ string, a, b string) (string, error) { return a + "|" + b, nil },
		failingStrings{serde.String()}).ToStream("log-changes").
		To("log-out", "log", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.String()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	d, err := testutil.NewTestDriver(topo)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	in := testutil.NewInputTopic(d, "in", serde.String(), serde.String())
	for _, r := range []struct {
		v  string
		ms int64
	}{{"1", 0}, {"2", 20000}, {"bad", 10000}} {
		if err := in.Pipe("a", r.v, at(r.ms)); err != nil {
			t.Fatal(err)
		}
	}
	checkStrings(t, "handled", handled, "log@2")
	checkStrings(t, "log", sessionChanges(t, d, "log", serde.String()), "a@0-1=+1@0", "a@20000-20001=+2@20000")
	checkStrings(t, "store", storedSessions(t, d, "log", "a"), "0-1=+1", "20000-20001=+2")
}
