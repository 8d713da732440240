// Package metrics is brook's measurement surface: what a running App
// measures about itself, as plain Go values, with no dependency beyond the
// standard library. An adapter turns it into a monitoring system's format;
// the Prometheus one lives in its own module,
// github.com/brookstream/brook/prometheus, so that programs that do not
// use Prometheus do not link it.
//
// # Use
//
//	reg := metrics.NewRegistry()
//	app, err := topology.NewApp(topo, topology.Config{..., Metrics: reg})
//	...
//	snap := reg.Snapshot() // any time, from any goroutine
//
// An App configured with a Registry registers itself with it (NewApp) and
// leaves it when closed (App.Close). One Registry may serve several Apps
// of different applications; two instances of the same application in
// one process need a Registry each. Without a Registry (Config.Metrics
// nil) the App measures nothing and pays nothing for it.
//
// # Design: counters the runtime updates, read by Snapshot
//
// The App keeps its own counters and histograms and updates them as it
// works; Snapshot copies them, and computes the gauges that describe the
// present (consumer lag, task states, restore progress, store sizes) at
// that moment. This is a pull model, chosen over hook interfaces that the
// runtime would call for every event (franz-go's kgo hooks):
//
//   - Cost per record is a few uncontended atomic adds on counters that
//     were looked up once, when the task opened: no interface call, no
//     label map lookup, no allocation, and no user code on the processing
//     goroutine that could block it.
//   - The gauges an operator wants most (lag per partition, store sizes)
//     are states, not events: they are worked out when someone asks, as a
//     Prometheus collector does on scrape.
//   - One source of truth serves every consumer: the Prometheus adapter, a
//     status page, tests, or a program's own logging.
//
// What a hook interface would add (reacting to each event as it happens)
// costs every App on its hot path whether or not anyone listens; a
// program that wants events can poll Snapshot.
//
// # Labels
//
// Measurements are labelled by application id, task ("<sub-topology>_<partition>"),
// topic and partition, node, store, and for queries the route and HTTP
// status, never by record key: the number of series depends on the
// topology and the partition counts, not on the data.
//
// # Units
//
// Durations are time.Duration (the Prometheus adapter reports seconds),
// offsets and counts are int64, sizes are bytes. Counters only grow for as
// long as the App is registered; a restarted App (a new App value) starts
// again from zero, as a restarted process does.
package metrics
