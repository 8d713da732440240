package integration_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"github.com/brookstream/brook/serde/avro"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brookstream/brook/testutil"
)

// These tests run against the real schema registry (SCHEMA_REGISTRY_URL;
// scripts/registry start). Each uses its own topic, hence its own subjects.

const payV1 = `{"type":"record","name":"Payment","namespace":"brook.it","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","WIRE"]}}]}`

// v2 adds a field with a default: compatible in both directions.
const payV2 = `{"type":"record","name":"Payment","namespace":"brook.it","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"long"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","WIRE"]}},
  {"name":"currency","type":"string","default":"EUR"}]}`

// v3 adds a field without a default and changes amount's type.
const payV3 = `{"type":"record","name":"Payment","namespace":"brook.it","fields":[
  {"name":"id","type":"string"},
  {"name":"amount","type":"string"},
  {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["CARD","WIRE"]}},
  {"name":"merchant","type":"string"}]}`

type PayV1 struct {
	ID     string `avro:"id"`
	Amount int64  `avro:"amount"`
	Kind   string `avro:"kind"`
}

type PayV2 struct {
	ID       string `avro:"id"`
	Amount   int64  `avro:"amount"`
	Kind     string `avro:"kind"`
	Currency string `avro:"currency"`
}

func setSubjectLevel(t *testing.T, base, subject, level string) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"compatibility": level})
	req, _ := http.NewRequest(http.MethodPut, base+"/config/"+url.PathEscape(subject), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT /config/%s: %s", subject, resp.Status)
	}
}

func TestRegistryEvolutionAndPreflight(t *testing.T) {
	base := testutil.RegistryURL(t)
	ctx := context.Background()
	reg := newTestRegistry(t, base)
	topic := testutil.TopicName(t, "payments")

	v1, err := avro.NewAvro[PayV1](reg, payV1)
	if err != nil {
		t.Fatal(err)
	}
	if err := v1.Preflight(ctx, topic); err != nil {
		t.Fatalf("preflight on a new subject: %v", err)
	}
	b1, err := v1.Serialize(topic, PayV1{ID: "p1", Amount: 1999, Kind: "WIRE"})
	if err != nil {
		t.Fatal(err)
	}
	subject := topic + "-value"
	// The subject's own level (FULL) is used, not the global one.
	setSubjectLevel(t, base, subject, "FULL")

	v2, err := avro.NewAvro[PayV2](reg, payV2)
	if err != nil {
		t.Fatal(err)
	}
	if err := v2.Preflight(ctx, topic); err != nil {
		t.Fatalf("v2 preflight: %v", err)
	}
	b2, err := v2.Serialize(topic, PayV2{ID: "p2", Amount: -5, Kind: "CARD", Currency: "NOK"})
	if err != nil {
		t.Fatal(err)
	}
	if binary.BigEndian.Uint32(b1[1:5]) == binary.BigEndian.Uint32(b2[1:5]) {
		t.Fatal("v1 and v2 got the same schema id")
	}

	// Fresh readers (empty caches) fetch the writer schemas by id.
	r2, _ := avro.NewAvro[PayV2](newTestRegistry(t, base), payV2)
	got2, err := r2.Deserialize(topic, b1)
	if err != nil || got2 != (PayV2{ID: "p1", Amount: 1999, Kind: "WIRE", Currency: "EUR"}) {
		t.Fatalf("v1 bytes as v2: %+v, %v", got2, err)
	}
	r1, _ := avro.NewAvro[PayV1](newTestRegistry(t, base), payV1)
	got1, err := r1.Deserialize(topic, b2)
	if err != nil || got1 != (PayV1{ID: "p2", Amount: -5, Kind: "CARD"}) {
		t.Fatalf("v2 bytes as v1: %+v, %v", got1, err)
	}
	generic, _ := avro.NewAvro[map[string]any](newTestRegistry(t, base), payV2)
	m, err := generic.Deserialize(topic, b1)
	if err != nil || m["currency"] != "EUR" || m["amount"] != int64(1999) {
		t.Fatalf("v1 bytes as generic v2: %v, %v", m, err)
	}

	// v3 is refused at preflight, with the subject, its level and reasons.
	v3, err := avro.NewAvro[map[string]any](reg, payV3)
	if err != nil {
		t.Fatal(err)
	}
	err = v3.Preflight(ctx, topic)
	var ie *avro.IncompatibleSchemaError
	if !errors.As(err, &ie) {
		t.Fatalf("v3 preflight: want IncompatibleSchemaError, got %v", err)
	}
	if ie.Subject != subject || ie.Level != "FULL" || len(ie.Messages) == 0 {
		t.Fatalf("v3 verdict: %+v", ie)
	}
	if !strings.Contains(err.Error(), subject) || !strings.Contains(err.Error(), "FULL") {
		t.Fatalf("message lacks subject or level: %v", err)
	}
	t.Logf("registry reasons: %q", ie.Messages)
	// Auto-registering v3 is refused by the registry too.
	_, err = v3.Serialize(topic, map[string]any{"id": "x", "amount": "1", "kind": "CARD", "merchant": "m"})
	if !errors.Is(err, avro.ErrSchemaRejected) {
		t.Fatalf("registering v3: %v", err)
	}

	// A subject without its own level falls back to the global level.
	other := testutil.TopicName(t, "other")
	o1, _ := avro.NewAvro[PayV1](reg, payV1)
	if _, err := o1.Serialize(other, PayV1{ID: "a", Kind: "CARD"}); err != nil {
		t.Fatal(err)
	}
	global, err := reg.CompatibilityLevel(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	level, err := reg.CompatibilityLevel(ctx, other+"-value")
	if err != nil || level != global {
		t.Fatalf("fallback level %q, %v; global %q", level, err, global)
	}
	if global != "NONE" {
		err = v3.Preflight(ctx, other)
		if !errors.As(err, &ie) || ie.Level != global {
			t.Fatalf("v3 preflight on %s: %v", other, err)
		}
	}
}

func TestRegistryUseLatestAndKeySubjects(t *testing.T) {
	base := testutil.RegistryURL(t)
	reg := newTestRegistry(t, base)
	topic := testutil.TopicName(t, "keys")
	key, err := avro.NewAvro[string](reg, `"string"`, avro.AsKey())
	if err != nil {
		t.Fatal(err)
	}
	val, _ := avro.NewAvro[PayV2](reg, payV2)
	kb, err := key.Serialize(topic, "customer-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := val.Serialize(topic, PayV2{ID: "x", Kind: "CARD", Currency: "SEK"}); err != nil {
		t.Fatal(err)
	}
	if k, err := key.Deserialize(topic, kb); err != nil || k != "customer-1" {
		t.Fatalf("key: %q, %v", k, err)
	}
	// A v1 app that uses the latest version writes v2 data.
	latest, _ := avro.NewAvro[PayV1](newTestRegistry(t, base), payV1, avro.UseLatest())
	if err := latest.Preflight(context.Background(), topic); err != nil {
		t.Fatalf("use-latest preflight: %v", err)
	}
	b, err := latest.Serialize(topic, PayV1{ID: "l", Amount: 3, Kind: "WIRE"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := val.Deserialize(topic, b)
	if err != nil || got != (PayV2{ID: "l", Amount: 3, Kind: "WIRE", Currency: "EUR"}) {
		t.Fatalf("got %+v, %v", got, err)
	}
}

// countingTransport counts the HTTP requests that reach the registry.
type countingTransport struct {
	base  http.RoundTripper
	count atomic.Int64
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.count.Add(1)
	return c.base.RoundTrip(r)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach base.
func (c *countingTransport) CloseIdleConnections() {
	c.base.(*http.Transport).CloseIdleConnections()
}

func TestRegistrySteadyStreamMakesNoCalls(t *testing.T) {
	base := testutil.RegistryURL(t)
	ct := &countingTransport{base: http.DefaultTransport.(*http.Transport).Clone()}
	client := &http.Client{Transport: ct, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	reg, err := avro.NewRegistry(base, avro.WithHTTPClient(client), avro.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	topic := testutil.TopicName(t, "steady")
	w, _ := avro.NewAvro[PayV1](reg, payV1)
	r, _ := avro.NewAvro[PayV2](reg, payV2)
	b, err := w.Serialize(topic, PayV1{ID: "warm", Kind: "CARD"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Deserialize(topic, b); err != nil {
		t.Fatal(err)
	}
	warm := ct.count.Load()
	for i := 0; i < 1000; i++ {
		b, err := w.Serialize(topic, PayV1{ID: "x", Amount: int64(i), Kind: "WIRE"})
		if err != nil {
			t.Fatal(err)
		}
		v, err := r.Deserialize(topic, b)
		if err != nil || v.Amount != int64(i) || v.Currency != "EUR" {
			t.Fatalf("record %d: %+v, %v", i, v, err)
		}
	}
	if n := ct.count.Load() - warm; n != 0 {
		t.Fatalf("1000 records made %d registry calls after warm-up (%d)", n, warm)
	}
}
