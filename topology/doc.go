// Package topology declares and runs brook topologies.
//
// It owns the type-checked builder (sources, processors, sinks, stores),
// validation and Describe, the runtime App that runs a topology on Kafka
// through a consumer group, and the interactive-query HTTP handler.
//
// topology must not know LevelDB or Avro details: it talks to stores through
// package store's interfaces and to serdes through serde.Serde.
package topology
