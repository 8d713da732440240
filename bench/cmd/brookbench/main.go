// Command brookbench runs brook's benchmarks side by side with a raw
// sarama pipe, goka and Kafka Streams, and writes the report. scripts/bench
// builds the Kafka Streams peer and runs this; see docs/BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/brookstream/brook/bench/harness"
)

func main() {
	if os.Getenv(harness.WorkerEnv) != "" {
		os.Exit(harness.WorkerMain(os.Args[1:]))
	}
	os.Exit(run())
}

func run() int {
	full := harness.FullOptions()
	var (
		workloads  = flag.String("workloads", strings.Join(harness.AllWorkloads, ","), "workloads to run; the failover workloads F1 (no standby) and F1s (one standby), issue 18, run only when named")
		systems    = flag.String("systems", strings.Join(harness.AllSystems, ","), "systems to run; brook-metrics and brook-lineage (issue 17, B2u and B2z) and brook-nocache (issue 19, B2u, B2z, B3: the record cache off) run only when named, with brook")
		smoke      = flag.Bool("smoke", false, "tiny sizes (the CI smoke pass); size flags still apply")
		records    = flag.Int("records", 0, "records per throughput workload (default 300000, smoke 2000)")
		tableKeys  = flag.Int("table-keys", 0, "B3 table keys (default 1000000)")
		restore    = flag.Int("restore-keys", 0, "B5 changelog keys (default 1000000)")
		zipfKeys   = flag.Int("zipf-keys", 0, "B2z key space (default 1000000)")
		partitions = flag.Int("partitions", 0, "partitions per topic (default 6)")
		rate       = flag.Int("rate", 0, "input records/s of the latency phase (default 5000)")
		latency    = flag.Duration("latency", -1, "length of the latency phase (default 6s; 0 skips it)")
		jsonOut    = flag.String("json", "", "write the JSON report here")
		mdOut      = flag.String("md", "", "write the markdown report here")
		docs       = flag.String("docs", "", "replace the generated section of this markdown file (docs/BENCHMARKS.md)")
		cpFile     = flag.String("kstreams-classpath", "", "file with the Kafka Streams peer's classpath (bench/kstreams/target/classpath.txt)")
		jar        = flag.String("kstreams-jar", "", "the Kafka Streams peer's jar")
		heap       = flag.String("kstreams-heap", "1g", "JVM -Xmx of the Kafka Streams peer")
		workdir    = flag.String("workdir", "", "state, logs and profiles (default: a temp dir)")
		profile    = flag.Bool("profile", false, "write a CPU profile of every brook worker into the work dir")
		timeout    = flag.Duration("run-timeout", 0, "bound of one system on one workload (default 3m)")
		fromJSON   = flag.String("from-json", "", "render the markdown (and -docs) from this JSON report instead of running")
		deadline   = flag.Duration("deadline", -1, "bound of the whole run; later cells are reported as not run (default 18m, 28m with -repeat above 1; 0: none)")
		repeat     = flag.Int("repeat", 1, "run every cell this many times, systems interleaved; the report gives medians")
		verify     = flag.Bool("verify", false, "read back every throughput cell's output and record a digest of it (equal digests: same records)")
		foKeys     = flag.Int("failover-keys", 0, "F1/F1s store keys (default 200000, smoke 2000; issue 18's target names 1000000)")
		foRate     = flag.Int("failover-rate", 0, "F1/F1s input records/s per partition (default 300)")
		session    = flag.Duration("session-timeout", 0, "F1/F1s consumer-group session timeout of every instance, brook and Kafka Streams (default 10s)")
		keepTopics = flag.Bool("keep-topics", false, "keep the run's topics on a real broker (KAFKA_BROKERS); by default they are deleted at the end")
	)
	flag.Parse()
	o := full
	if *smoke {
		o = harness.SmokeOptions()
	}
	o.Workloads = split(*workloads)
	o.Systems = split(*systems)
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setInt(&o.Records, *records)
	setInt(&o.TableKeys, *tableKeys)
	setInt(&o.RestoreKeys, *restore)
	setInt(&o.ZipfKeys, *zipfKeys)
	setInt(&o.Rate, *rate)
	setInt(&o.FailoverKeys, *foKeys)
	setInt(&o.FailoverRate, *foRate)
	if *session > 0 {
		o.SessionTimeout = *session
	}
	if *partitions > 0 {
		o.Partitions = int32(*partitions)
	}
	if *latency >= 0 {
		o.LatencyFor = *latency
	}
	if *timeout > 0 {
		o.RunTimeout = *timeout
	}
	switch {
	case *deadline >= 0:
		o.Deadline = *deadline
	case *repeat > 1:
		// Repeats take about N times as long; the whole run should still
		// finish within 30 minutes (issue 19).
		o.Deadline = 28 * time.Minute
	}
	o.WorkDir, o.Profile = *workdir, *profile
	o.Repeat, o.KeepTopics, o.Verify = *repeat, *keepTopics, *verify
	if o.WorkDir != "" {
		if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	o.WorkerCmd = []string{self}
	if *cpFile != "" && *jar != "" && contains(o.Systems, harness.SysKStreams) {
		cp, err := os.ReadFile(*cpFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		o.JavaCmd = []string{"java", "-Xmx" + *heap, "-cp", *jar + string(filepath.ListSeparator) + strings.TrimSpace(string(cp)), "dev.brook.bench.Peer"}
		if out, err := exec.Command("java", "-version").CombinedOutput(); err == nil {
			o.JavaVersion = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
		}
	}
	o.Logf = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
	}
	var rep *harness.Report
	if *fromJSON != "" {
		b, err := os.ReadFile(*fromJSON)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		rep = new(harness.Report)
		if err := json.Unmarshal(b, rep); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if rep == nil {
		rep, err = harness.Run(ctx, o)
	}
	if rep == nil {
		fmt.Fprintln(os.Stderr, "brookbench:", err)
		return 1
	}
	md := rep.Markdown()
	js, _ := json.MarshalIndent(rep, "", "  ")
	if *jsonOut != "" {
		if err := os.WriteFile(*jsonOut, append(js, '\n'), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if *mdOut != "" {
		if err := os.WriteFile(*mdOut, []byte(md), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	if *docs != "" {
		if err := replaceSection(*docs, md, string(js)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	fmt.Print(md)
	if err != nil {
		fmt.Fprintln(os.Stderr, "brookbench:", err)
		return 1
	}
	return 0
}

const (
	beginMark = "<!-- brookbench:begin (generated by scripts/bench -docs; do not edit by hand) -->"
	endMark   = "<!-- brookbench:end -->"
)

// replaceSection puts md and the JSON report between the markers of path.
func replaceSection(path, md, js string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q … %q section", path, beginMark, endMark)
	}
	body := beginMark + "\n\n" + md + "\n<details><summary>JSON report</summary>\n\n```json\n" + js + "\n```\n\n</details>\n\n"
	return os.WriteFile(path, []byte(s[:i]+body+s[j:]), 0o644)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}
