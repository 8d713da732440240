package topology_test

import (
	"context"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"strings"
	"testing"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

type payV1 struct {
	ID string `avro:"id"`
}

type payV2 struct {
	ID    string `avro:"id"`
	Cents int64  `avro:"cents"`
}

// TestAppRefusesIncompatibleSchemaBeforeJoining registers v1 of a value
// schema, then builds an app whose sink serde carries a BACKWARD-
// incompatible v2 (a new field without default): Run must refuse to start,
// naming the subject, the level and the registry's reason, and must not
// have joined the group.
func TestAppRefusesIncompatibleSchemaBeforeJoining(t *testing.T) {
	url := testutil.RegistryURL(t)
	b := testutil.NewBroker(t)
	in, out := testutil.TopicName(t, "in"), testutil.TopicName(t, "out")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, out, 1, nil)

	reg, err := avro.NewRegistry(url)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	v1, err := avro.NewAvro[payV1](reg, `{"type":"record","name":"Pay","fields":[{"name":"id","type":"string"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v1.Serialize(out, payV1{ID: "p1"}); err != nil { // registers v1 under <out>-value
		t.Fatal(err)
	}
	v2, err := avro.NewAvro[payV2](reg, `{"type":"record","name":"Pay","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long"}]}`)
	if err != nil {
		t.Fatal(err)
	}

	tb := topology.New()
	src := topology.Source(tb, "in", in, serde.String(), serde.String())
	mapped := topology.ProcessFunc(tb, "to-pay", src, processor.MapValues(func(_ string, v string) (payV2, error) { return payV2{ID: v}, nil }))
	topology.Sink(tb, "out", out, mapped, serde.String(), serde.Serde[payV2](v2))
	topo, err := tb.Build()
	if err != nil {
		t.Fatal(err)
	}
	appID := testutil.TopicName(t, "app")
	app, err := topology.NewApp(topo, topology.Config{ApplicationID: appID, Brokers: b.Addrs(), StateDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(context.Background())
	var inc *avro.IncompatibleSchemaError
	if !errors.As(err, &inc) {
		t.Fatalf("Run returned %v, want an IncompatibleSchemaError", err)
	}
	t.Logf("refused: %v", err)
	if inc.Subject != out+"-value" || inc.Level == "" || len(inc.Messages) == 0 {
		t.Fatalf("error names subject %q level %q reasons %v", inc.Subject, inc.Level, inc.Messages)
	}
	if !strings.Contains(err.Error(), `node "out"`) {
		t.Fatalf("error does not name the sink node: %v", err)
	}
	if committed := committedOffset(t, b, appID, in, 0); committed >= 0 {
		t.Fatalf("the app committed offset %d: it joined the group despite the refused schema", committed)
	}
}
