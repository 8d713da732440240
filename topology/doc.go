// Package topology declares and runs brook topologies.
//
// It owns the type-checked builder (sources, processors, sinks, stores),
// validation and Describe, the Streams DSL over that builder (KStream and
// KTable handles: type-keeping operations are methods, type-changing ones
// package functions, since Go has no method type parameters; grouping,
// aggregations, windows and stream–stream joins; see docs/DSL.md), and the App that runs a topology on Kafka
// through a consumer group. Interactive queries (typed views of the
// stores, the HTTP handler, forwarding between instances) live in package
// query; App keeps the entry points to them (App.QueryHandler,
// QueryKeyValue, App.Instances).
//
// topology must not know LevelDB or Avro details: it talks to stores through
// package store's interfaces and to serdes through serde.Serde.
package topology
