// Package harness runs brook's benchmarks side by side with its peers —
// a raw sarama pipe (the ceiling), goka and Kafka Streams — on one broker,
// and writes the report (JSON and a markdown table).
//
// The harness process owns the broker (an embedded kfake cluster unless
// KAFKA_BROKERS names a real one), produces every input, and measures each
// system from the outside: throughput from the output topic's end offsets,
// end-to-end latency from the Kafka timestamps of output records at a fixed
// input rate, restore speed from the system's own report of its restore,
// and peak RSS from the finished process's rusage. The failover workloads
// (F1, F1s; failover.go) run three instances of one system, SIGKILL one
// and start a fourth, and measure per task the gaps in the committed
// output's LogAppendTime. Every system runs as a
// separate process (this binary re-executed as a worker, or the JVM for
// Kafka Streams), so RSS and CPU are per system.
package harness
