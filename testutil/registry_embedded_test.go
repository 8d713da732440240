package testutil_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/brookstream/brook/serde/avro"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/brookstream/brook/testutil"
	"github.com/riferrei/srclient"
)

// compatCases are schema changes with their BACKWARD verdict under Avro's
// resolution rules (the new schema must read data of the old one).
var compatCases = []struct {
	name     string
	old, new string
	ok       bool
}{
	{"add field with default",
		`{"type":"record","name":"P","fields":[{"name":"id","type":"string"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"id","type":"string"},{"name":"n","type":"long","default":0}]}`, true},
	{"add field without default",
		`{"type":"record","name":"P","fields":[{"name":"id","type":"string"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}`, false},
	{"remove field",
		`{"type":"record","name":"P","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"id","type":"string"}]}`, true},
	{"promote int to long",
		`{"type":"record","name":"P","fields":[{"name":"n","type":"int"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"n","type":"long"}]}`, true},
	{"narrow long to int",
		`{"type":"record","name":"P","fields":[{"name":"n","type":"long"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"n","type":"int"}]}`, false},
	{"change string to long",
		`{"type":"record","name":"P","fields":[{"name":"n","type":"string"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"n","type":"long"}]}`, false},
	{"make a field nullable",
		`{"type":"record","name":"P","fields":[{"name":"n","type":"string"}]}`,
		`{"type":"record","name":"P","fields":[{"name":"n","type":["null","string"],"default":null}]}`, true},
}

// checkRegistry runs compatCases against the registry at url.
func checkRegistry(t *testing.T, url string) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := srclient.CreateSchemaRegistryClientWithOptions(url, &http.Client{Transport: tr, Timeout: 10 * time.Second}, 4)
	for i, tc := range compatCases {
		subject := fmt.Sprintf("compat-%d-%d-value", time.Now().UnixNano(), i)
		if _, err := c.CreateSchema(subject, tc.old, srclient.Avro); err != nil {
			t.Fatalf("%s: register old: %v", tc.name, err)
		}
		ok, err := c.IsSchemaCompatible(subject, tc.new, "latest", srclient.Avro)
		if err != nil {
			t.Fatalf("%s: check: %v", tc.name, err)
		}
		if ok != tc.ok {
			t.Errorf("%s: compatible=%v, want %v", tc.name, ok, tc.ok)
		}
		_, err = c.CreateSchema(subject, tc.new, srclient.Avro)
		if (err == nil) != tc.ok {
			t.Errorf("%s: register new: err=%v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// TestEmbeddedRegistryCompatibility checks the embedded registry's
// BACKWARD verdicts, and that the real registry (when SCHEMA_REGISTRY_URL
// is set) gives the same ones.
func TestEmbeddedRegistryCompatibility(t *testing.T) {
	r := testutil.StartRegistry(t)
	checkRegistry(t, r.URL())
	if u := os.Getenv("SCHEMA_REGISTRY_URL"); u != "" {
		t.Run("real", func(t *testing.T) { checkRegistry(t, u) })
	}
}

type payment struct {
	ID    string `avro:"id"`
	Cents int64  `avro:"cents"`
}

// TestEmbeddedRegistryWithSerde round-trips an Avro value through brook's
// serde and the embedded registry, and checks that the preflight of an
// incompatible serde fails naming the subject and level.
func TestEmbeddedRegistryWithSerde(t *testing.T) {
	r := testutil.StartRegistry(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	reg, err := avro.NewRegistry(r.URL(), avro.WithHTTPClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	const v1 = `{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long"}]}`
	s, err := avro.NewAvro[payment](reg, v1, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Preflight(ctx, "payments"); err != nil {
		t.Fatal(err)
	}
	b, err := s.Serialize("payments", payment{"p1", 1234})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Deserialize("payments", b)
	if err != nil || got != (payment{"p1", 1234}) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	j, err := s.ValueJSON(got)
	if err != nil || string(j) != `{"id":"p1","cents":1234}` {
		t.Fatalf("ValueJSON: %s, %v", j, err)
	}
	const bad = `{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long"},{"name":"currency","type":"string"}]}`
	s2, err := avro.NewAvro[map[string]any](reg, bad, avro.AutoRegister())
	if err != nil {
		t.Fatal(err)
	}
	err = s2.Preflight(ctx, "payments")
	var ie *avro.IncompatibleSchemaError
	if !errors.As(err, &ie) || ie.Subject != "payments-value" || ie.Level != "BACKWARD" || len(ie.Messages) == 0 {
		t.Fatalf("preflight of an incompatible schema: %v", err)
	}
	if _, err := s2.Serialize("payments", map[string]any{"id": "x", "cents": int64(1), "currency": "EUR"}); err == nil {
		t.Fatal("registered an incompatible schema")
	}
}
