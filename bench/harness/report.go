package harness

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
)

// Machine describes the host.
type Machine struct {
	Cores    int     `json:"cores"`
	MemoryGB float64 `json:"memory_gb"`
	CPU      string  `json:"cpu"`
	OS       string  `json:"os"`
}

func machine() Machine {
	m := Machine{Cores: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var kb float64
			if _, err := fmt.Sscanf(sc.Text(), "MemTotal: %f kB", &kb); err == nil {
				m.MemoryGB = kb / (1 << 20)
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

func versions(o Options) map[string]string {
	v := map[string]string{"go": runtime.Version(), "kafka-streams": "4.1.1 (bench/kstreams/pom.xml)"}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			switch d.Path {
			case "github.com/IBM/sarama", "github.com/lovoo/goka", "github.com/syndtr/goleveldb", "github.com/twmb/franz-go/pkg/kfake":
				v[d.Path] = d.Version
			}
		}
	}
	if o.JavaVersion != "" {
		v["java"] = o.JavaVersion
	}
	return v
}

var workloadTitle = map[string]string{
	"B0":  "B0 raw sarama pipe (ceiling)",
	"B1":  "B1 stateless map + sink",
	"B2u": "B2 count per key, uniform keys",
	"B2z": "B2 count per key, Zipf keys",
	"B3":  "B3 stream-table join",
	"B4":  "B4 10-min tumbling window count",
	"B5":  "B5 restore (cold / warm)",
	"B6":  "B6 interactive-query GET during B2",
	"B7":  "B7 exactly-once on B2",
	"B8":  "B8 stream-stream join (auth/capture)",
	"F1":  "F1 failover, no standby",
	"F1s": "F1s failover, one standby",
}

func f0(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", x)
}

func f1(x float64) string {
	if x == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", x)
}

// spread renders v, a median over repeats, with the smallest and
// largest of runs (each run's figure, 0 for a run without) when at least
// two runs have figures: "141082 (120333–150000)"; else as f renders it.
func spread(v float64, runs []float64, f func(float64) string) string {
	var lo, hi float64
	n := 0
	for _, x := range runs {
		if x <= 0 {
			continue
		}
		if n == 0 || x < lo {
			lo = x
		}
		hi = max(hi, x)
		n++
	}
	if v == 0 || n < 2 {
		return f(v)
	}
	return fmt.Sprintf("%s (%s–%s)", f(v), f(lo), f(hi))
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Markdown renders the report: the context, one table of every cell with
// ratios (with repeats, records/s, p99 and cold restore keys/s as the
// median with the runs' min–max), and the targets of issues 15–19 with
// the measured distance.
func (r *Report) Markdown() string {
	var sb strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	p("Run of %s, %.0f s. Broker: %s.\n\n", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Seconds, r.Broker)
	p("Machine: %d cores (%s), %.1f GB RAM, %s.\n\n", r.Machine.Cores, r.Machine.CPU, r.Machine.MemoryGB, r.Machine.OS)
	var vs []string
	for _, k := range []string{"go", "github.com/IBM/sarama", "github.com/lovoo/goka", "github.com/syndtr/goleveldb", "github.com/twmb/franz-go/pkg/kfake", "kafka-streams", "java"} {
		if v, ok := r.Versions[k]; ok {
			vs = append(vs, k+" "+v)
		}
	}
	p("Versions: %s.\n\n", strings.Join(vs, ", "))
	p("Producer settings (every system): acks=%s, linger %d ms (sarama Flush.Frequency), batch %d bytes (sarama Flush.Bytes), idempotent=%v, compression=%s.\n\n",
		r.Producer.Acks, r.Producer.LingerMs, r.Producer.BatchBytes, r.Producer.Idempotent, r.Producer.Compression)
	var sizes []string
	for k, v := range r.Sizes {
		if f, ok := v.(float64); ok && f == float64(int64(f)) {
			v = int64(f) // read back from JSON
		}
		sizes = append(sizes, fmt.Sprintf("%s=%v", k, v))
	}
	sort.Strings(sizes)
	p("Sizes: %s.\n\n", strings.Join(sizes, ", "))
	var keys []string
	for k := range r.Configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	p("Configs:\n\n")
	for _, k := range keys {
		p("- %s: %s\n", k, r.Configs[k])
	}
	p("\n")

	b0 := 0.0
	if c, ok := r.Cell("B0", SysSarama); ok {
		b0 = c.RecordsPerSec
	}
	p("| workload | system | records/s | ÷ B0 | brook ÷ this | p50 ms | p99 ms | p99.9 ms | brook p99 ÷ this | restore cold keys/s | warm keys/s | brook cold ÷ this | peak RSS MB | brook RSS ÷ this | CPU µs/record | note |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, w := range AllWorkloads {
		brook, _ := r.Cell(w, SysBrook)
		for _, c := range r.Cells {
			if c.Workload != w {
				continue
			}
			note := c.Note
			if c.Missing != "" {
				note = "**missing:** " + c.Missing
			}
			if c.LatencyMissing != "" {
				note = strings.TrimPrefix(note+"; latency: "+c.LatencyMissing, "; ")
			}
			vsBrook := func(a, b float64) string {
				if c.System == SysBrook {
					return ""
				}
				return ratio(a, b)
			}
			// Runs holds records/s, or for B5 (no records/s) the cold
			// restore rates.
			rps, cold := spread(c.RecordsPerSec, c.Runs, f0), f0(c.ColdKeysPerSec)
			if c.RecordsPerSec == 0 {
				rps, cold = f0(0), spread(c.ColdKeysPerSec, c.Runs, f0)
			}
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				workloadTitle[w], c.System, rps, ratio(c.RecordsPerSec, b0),
				vsBrook(brook.RecordsPerSec, c.RecordsPerSec), f1(c.P50Ms), spread(c.P99Ms, c.P99Runs, f1), f1(c.P999Ms), vsBrook(brook.P99Ms, c.P99Ms),
				cold, f0(c.WarmKeysPerSec), vsBrook(brook.ColdKeysPerSec, c.ColdKeysPerSec),
				f0(c.PeakRSSMB), vsBrook(brook.PeakRSSMB, c.PeakRSSMB), f1(c.CPUUsPerRecord), strings.ReplaceAll(note, "|", "/"))
		}
	}
	p("\n")
	r.failoverMarkdown(p)
	p("### Targets (issues 15–19)\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range r.Targets() {
		p("| %s | %s | %s |\n", t.Target, t.Measured, t.Met)
	}
	return sb.String()
}

// pairedRatio is a's figure over b's (records/s; B5: cold keys/s): with
// repeats (Runs of the same length: run i of each is round i), the median
// of the per-round ratios, which a drift in the machine's load over the
// run moves less than a ratio of medians; else the ratio of the two
// cells. 0 if either has no figure.
func pairedRatio(a, b Cell) float64 {
	v, _ := ratioOf(a, b)
	return v
}

// ratioOf is pairedRatio with, when a and b have repeats but cannot be
// paired by round, why it fell back to the ratio of the medians ("" when
// it did not).
func ratioOf(a, b Cell) (float64, string) {
	av, bv := runMetric(a), runMetric(b)
	if av == 0 || bv == 0 {
		return 0, ""
	}
	if len(a.Runs) < 2 && len(b.Runs) < 2 {
		return av / bv, ""
	}
	if len(a.Runs) != len(b.Runs) {
		return av / bv, fmt.Sprintf("ratio of medians: %d and %d runs, not paired by round", max(1, len(a.Runs)), max(1, len(b.Runs)))
	}
	var rs []float64
	for i := range a.Runs {
		if a.Runs[i] > 0 && b.Runs[i] > 0 {
			rs = append(rs, a.Runs[i]/b.Runs[i])
		}
	}
	if len(rs) == 0 {
		return av / bv, "ratio of medians: no round with figures for both"
	}
	return median(rs), ""
}

// Target is one of the report's targets with the measured value.
type Target struct {
	Target, Measured, Met string
}

// Targets evaluates on the report the targets of issue 19 (brook against
// the raw pipe, its peers and raw goleveldb, its p99 latency against
// Kafka Streams', exactly-once against at-least-once), issues 15 and 16
// (the DSL against the hand-written processors), issue 17 (metrics and
// lineage headers on against off), B6's query latency and issue 18's
// failover targets. With repeats, ratios between cells are the medians of
// the per-round ratios (pairedRatio) and latencies the medians over the
// runs.
func (r *Report) Targets() []Target {
	cell := func(w, s string) Cell {
		c, _ := r.Cell(w, s) // a cell not run has no figure, as a missing one
		return c
	}
	var out []Target
	add := func(name string, got, want float64) {
		t := Target{Target: name, Measured: "–", Met: "n/a (cell missing)"}
		if got > 0 {
			t.Measured = fmt.Sprintf("%.2f", got)
			t.Met = "yes"
			if got < want {
				t.Met = "**no**"
			}
		}
		out = append(out, t)
	}
	// at least want × b's figure, a over b.
	atLeast := func(name string, a, b Cell, want float64) {
		got, how := ratioOf(a, b)
		add(name, got, want)
		if how != "" {
			out[len(out)-1].Measured += " (" + how + ")"
		}
	}
	brook := func(w string) Cell { return cell(w, SysBrook) }
	// Issue 19.
	atLeast("B1 brook ≥ 0.9 × B0", brook("B1"), cell("B0", SysSarama), 0.9)
	atLeast("B2u brook ≥ 0.8 × B0", brook("B2u"), cell("B0", SysSarama), 0.8)
	for _, w := range []string{"B2u", "B2z", "B3"} {
		atLeast(w+" brook ≥ 3 × goka", brook(w), cell(w, SysGoka), 3)
	}
	atLeast("B3 brook ≥ 2 × Kafka Streams", brook("B3"), cell("B3", SysKStreams), 2)
	for _, w := range []string{"B2u", "B2z"} {
		atLeast(w+" brook ≥ 1 × Kafka Streams", brook(w), cell(w, SysKStreams), 1)
	}
	atLeast("B5 cold brook ≥ 3 × goka", brook("B5"), cell("B5", SysGoka), 3)
	atLeast("B5 cold brook ≥ 1 × Kafka Streams", brook("B5"), cell("B5", SysKStreams), 1)
	atLeast("B5 cold brook ≥ 0.8 × raw goleveldb batch writes", brook("B5"), cell("B5", SysLevelDB), 0.8)
	for _, w := range []string{"B1", "B2u", "B3"} {
		b, k := brook(w), cell(w, SysKStreams)
		t := Target{Target: w + " brook p99 latency ≤ Kafka Streams' (brook ÷ Kafka Streams ≤ 1)", Measured: "–", Met: "n/a (cell missing)"}
		if b.Missing == "" && k.Missing == "" && b.P99Ms > 0 && k.P99Ms > 0 {
			got := b.P99Ms / k.P99Ms
			t.Measured = fmt.Sprintf("%.2f (%.1f ms ÷ %.1f ms)", got, b.P99Ms, k.P99Ms)
			t.Met = map[bool]string{true: "yes", false: "**no**"}[got <= 1]
		}
		out = append(out, t)
	}
	// B7 and B2u are different workloads, run one after the other: their
	// runs pair by round (run i of each is round i).
	atLeast("B7 brook exactly-once ≥ 0.85 × at-least-once (B2u)", brook("B7"), brook("B2u"), 0.85)
	// Issues 15 and 16: the DSL within 5 % of the hand-written
	// processors, on the same input in the same run.
	for _, w := range []string{"B2u", "B2z", "B3", "B4"} {
		atLeast(w+" brook-dsl ≥ 0.95 × brook", cell(w, SysBrookDSL), brook(w), 0.95)
	}
	// Issue 17: metrics within 5 % of none, lineage headers within
	// 10 %, same run; listed only when the systems ran (-systems names
	// them).
	for _, w := range []string{"B2u", "B2z"} {
		if c, ok := r.Cell(w, SysBrookMetrics); ok {
			atLeast(w+" brook-metrics ≥ 0.95 × brook", c, brook(w), 0.95)
		}
		if c, ok := r.Cell(w, SysBrookLineage); ok {
			atLeast(w+" brook-lineage ≥ 0.90 × brook", c, brook(w), 0.90)
		}
	}
	b6 := Target{Target: "B6 p99 < 2 ms over HTTP on loopback", Measured: "–", Met: "n/a (cell missing)"}
	if c, ok := r.Cell("B6", SysBrook); ok && c.Missing == "" && c.P99Ms > 0 {
		b6.Measured = fmt.Sprintf("%.2f ms", c.P99Ms)
		b6.Met = map[bool]string{true: "yes", false: "**no**"}[c.P99Ms < 2]
	}
	out = append(out, b6)
	return append(out, r.failoverTargets()...)
}
