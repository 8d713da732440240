// Package topology declares and runs brook topologies.
//
// It owns the type-checked builder (sources, processors, sinks, stores),
// validation and Describe, the Streams DSL over that builder (KStream and
// KTable handles: type-keeping operations are methods, type-changing ones
// package functions, since Go has no method type parameters: stateless
// operations, repartitioning and grouping, aggregations, time and session
// windows with emit-final and late-record streams, duplicate removal,
// global tables and joins; docs/DSL.md documents each), and the App that
// runs a topology on Kafka through a consumer group. Interactive queries (typed views of the
// stores, the HTTP handler, forwarding between instances) live in package
// query; App keeps the entry points to them (App.QueryHandler,
// QueryKeyValue, QueryWindow, App.Instances). An App reports its
// measurements to Config.Metrics (package metrics; the Prometheus adapter
// is module github.com/brookstream/brook/prometheus) and tells whether it
// has processed its input up to the end offsets of a moment
// (App.CaughtUp, App.WaitCaughtUp; docs/OPERATIONS.md).
//
// topology must not know LevelDB or Avro details: it talks to stores through
// package store's interfaces and to serdes through serde.Serde.
package topology
