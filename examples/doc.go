// Package examples holds runnable brook applications, one per folder; each
// runs with `go run ./examples/NAME` and needs no infrastructure by default:
//
//   - enrichment: two instances of one application on an embedded broker
//     and schema registry join Avro transactions with a table of customer
//     profiles (stream–table join) and a global table of merchants
//     (global-table join by merchant id, from a topic with another
//     partition count), in the Streams DSL, and answer interactive
//     queries over HTTP, routed between instances.
//   - velocity: the card-velocity check of README.md in the Streams DSL,
//     exactly-once on an embedded broker: duplicate payments dropped,
//     10-minute tumbling counts per card with one minute of grace, final
//     counts once each window closes, alerts, and late records on a side
//     topic.
//   - minimal: declares a small topology and prints its description; the
//     program whose binary size docs/DESIGN.md tracks. It stays on the
//     Processor API: that figure compares the same program before and
//     after a package split that predates the DSL.
//
// enrichment and velocity take --brokers to run against a real cluster.
package examples
