// Package testutil helps test brook topologies and the code around them.
//
// It owns the TestDriver (runs a topology with no broker, deterministic
// clocks; Restart starts it again from what it committed: logged stores
// restored from their changelogs, stream time from the committed offsets),
// the test broker (an in-process kfake cluster by default, a real
// cluster when KAFKA_BROKERS is set), a broker with TLS and SASL
// (NewSecureKafka: an in-process kfake cluster, or the SASL_SSL listener of
// scripts/kafka named by KAFKA_SASL_BROKERS), unique topic names,
// produce/consume helpers, and schema-registry helpers (SCHEMA_REGISTRY_URL,
// an embedded registry, and a proxy that takes a registry down mid-test).
//
// testutil is for tests and examples only: library code must not import it.
package testutil
