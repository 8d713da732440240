package testutil_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/brookstream/brook/testutil"
	"github.com/riferrei/srclient"
)

// TestRegistryRejectsIncompatibleSchema proves the registry harness does
// real compatibility checks: a BACKWARD-incompatible change (a new field
// without a default) is refused, a compatible one (with a default) is not.
func TestRegistryRejectsIncompatibleSchema(t *testing.T) {
	url := testutil.RegistryURL(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections() // no keep-alive goroutines left for goleak
	c := srclient.CreateSchemaRegistryClientWithOptions(url, &http.Client{Transport: tr, Timeout: 10 * time.Second}, 4)
	subject := fmt.Sprintf("smoke-%d-value", time.Now().UnixNano())

	v1 := `{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"}]}`
	if _, err := c.CreateSchema(subject, v1, srclient.Avro); err != nil {
		t.Fatalf("register v1 under %s: %v", subject, err)
	}
	level, err := c.GetCompatibilityLevel(subject, true)
	if err != nil {
		t.Fatalf("compatibility level of %s: %v", subject, err)
	}
	if *level != srclient.Backward {
		t.Fatalf("compatibility level %s, want BACKWARD (the registry default)", *level)
	}

	bad := `{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long"}]}`
	ok, err := c.IsSchemaCompatible(subject, bad, "latest", srclient.Avro)
	if err != nil {
		t.Fatalf("compatibility check: %v", err)
	}
	if ok {
		t.Fatal("registry accepted a new field without default as BACKWARD compatible")
	}
	if _, err := c.CreateSchema(subject, bad, srclient.Avro); err == nil {
		t.Fatal("registry registered a BACKWARD-incompatible schema")
	}

	good := `{"type":"record","name":"Payment","fields":[{"name":"id","type":"string"},{"name":"amount","type":"long","default":0}]}`
	ok, err = c.IsSchemaCompatible(subject, good, "latest", srclient.Avro)
	if err != nil {
		t.Fatalf("compatibility check: %v", err)
	}
	if !ok {
		t.Fatal("registry refused a new field with a default")
	}
}
