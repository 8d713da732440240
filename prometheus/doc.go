// Package brookprom serves a brook App's measurements (package
// github.com/brookstream/brook/metrics) to Prometheus, with
// github.com/prometheus/client_golang:
//
//	import (
//		"github.com/prometheus/client_golang/prometheus"
//		"github.com/prometheus/client_golang/prometheus/promhttp"
//		brookprom "github.com/brookstream/brook/prometheus"
//	)
//
//	reg := metrics.NewRegistry()
//	app, err := topology.NewApp(topo, topology.Config{..., Metrics: reg})
//	if err := brookprom.Register(prometheus.DefaultRegisterer, reg); err != nil { ... }
//	http.Handle("/metrics", promhttp.Handler())
//
// The package's import path ends in "prometheus" and its name is brookprom,
// so that it reads apart from client_golang's own prometheus package.
//
// # Its own module
//
// This package is its own module, github.com/brookstream/brook/prometheus,
// with client_golang pinned in its go.mod; brook's module does not require
// client_golang or anything it pulls in (prometheus/common, client_model,
// procfs, protobuf). A program that does not use Prometheus therefore has
// none of them in its module graph, its go.sum or its version selection,
// and one that does picks this module's version of them without brook's
// core module constraining it (the same reason franz-go ships kprom as a
// module of its own). Inside the repository, go.mod replaces the core
// module with "../" so that both are developed and tested together; a
// replace directive has no effect on programs that require this module,
// which get the core at the version this module's go.mod requires.
//
// # Collected on scrape
//
// The Collector takes one metrics.Registry Snapshot per scrape and turns
// it into constant metrics: counters stay counters, histograms keep their
// buckets (in seconds), and the gauges (lag, states, sizes) are as the
// App last saw them (end offsets are listed every few seconds). Nothing is
// measured twice and nothing runs between scrapes.
//
// # Names
//
// Every metric starts with brook_, counters end in _total, durations are
// histograms in seconds (_seconds), sizes in bytes (_bytes). Labels:
// application_id on every metric, then task, topic, partition, node, store,
// reason, route, status and state as they apply; never a record key. The
// list, with what each means and the alerts worth setting, is in
// docs/OPERATIONS.md, "Metrics".
package brookprom
