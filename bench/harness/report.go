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

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

// Markdown renders the report: the context, one table of every cell with
// ratios, and the targets of issue 9 with the measured distance.
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
	p("| workload | system | records/s | ÷ B0 | brook ÷ this | p50 ms | p99 ms | brook p99 ÷ this | restore cold keys/s | warm keys/s | brook cold ÷ this | peak RSS MB | brook RSS ÷ this | CPU µs/record | note |\n")
	p("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
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
			p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				workloadTitle[w], c.System, f0(c.RecordsPerSec), ratio(c.RecordsPerSec, b0),
				vsBrook(brook.RecordsPerSec, c.RecordsPerSec), f1(c.P50Ms), f1(c.P99Ms), vsBrook(brook.P99Ms, c.P99Ms),
				f0(c.ColdKeysPerSec), f0(c.WarmKeysPerSec), vsBrook(brook.ColdKeysPerSec, c.ColdKeysPerSec),
				f0(c.PeakRSSMB), vsBrook(brook.PeakRSSMB, c.PeakRSSMB), f1(c.CPUUsPerRecord), strings.ReplaceAll(note, "|", "/"))
		}
	}
	p("\n")
	r.failoverMarkdown(p)
	p("### Targets (issues 9, 15 and 16)\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range r.Targets() {
		p("| %s | %s | %s |\n", t.Target, t.Measured, t.Met)
	}
	return sb.String()
}

// pairedRatio is a's records/s over b's: with repeats (Runs of the same
// length, run alternately), the median of the per-round ratios, which a
// drift in the machine's load over the run moves less than a ratio of
// medians; else the ratio of the two cells. 0 if either has no figure.
func pairedRatio(a, b Cell) float64 {
	if a.Missing != "" || b.Missing != "" || a.RecordsPerSec == 0 || b.RecordsPerSec == 0 {
		return 0
	}
	if len(a.Runs) < 2 || len(a.Runs) != len(b.Runs) {
		return a.RecordsPerSec / b.RecordsPerSec
	}
	var rs []float64
	for i := range a.Runs {
		if a.Runs[i] > 0 && b.Runs[i] > 0 {
			rs = append(rs, a.Runs[i]/b.Runs[i])
		}
	}
	return median(rs)
}

// Target is one of issue 9's targets with the measured value.
type Target struct {
	Target, Measured, Met string
}

// Targets evaluates the targets of issue 9 (brook against its peers),
// issues 15 and 16 (the DSL against the hand-written processors) and
// issue 17 (metrics and lineage headers on against off) on the report.
func (r *Report) Targets() []Target {
	get := func(w, s string, f func(Cell) float64) float64 {
		c, ok := r.Cell(w, s)
		if !ok || c.Missing != "" {
			return 0
		}
		return f(c)
	}
	rps := func(c Cell) float64 { return c.RecordsPerSec }
	cold := func(c Cell) float64 { return c.ColdKeysPerSec }
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
	div := func(a, b float64) float64 {
		if a == 0 || b == 0 {
			return 0
		}
		return a / b
	}
	add("B1 brook ≥ 0.8 × B0", div(get("B1", SysBrook, rps), get("B0", SysSarama, rps)), 0.8)
	for _, w := range []string{"B2u", "B2z", "B3"} {
		add(w+" brook ≥ 3 × goka", div(get(w, SysBrook, rps), get(w, SysGoka, rps)), 3)
		add(w+" brook ≥ 1 × Kafka Streams", div(get(w, SysBrook, rps), get(w, SysKStreams, rps)), 1)
	}
	add("B5 cold brook ≥ 3 × goka", div(get("B5", SysBrook, cold), get("B5", SysGoka, cold)), 3)
	add("B5 cold brook ≥ 1 × Kafka Streams", div(get("B5", SysBrook, cold), get("B5", SysKStreams, cold)), 1)
	add("B5 cold brook ≥ 0.8 × raw goleveldb batch writes", div(get("B5", SysBrook, cold), get("B5", SysLevelDB, cold)), 0.8)
	add("B7 brook exactly-once ≥ 0.7 × at-least-once", div(get("B7", SysBrook, rps), get("B2u", SysBrook, rps)), 0.7)
	// Issues 15 and 16: the DSL within 5 % of the hand-written
	// processors, on the same input in the same run.
	for _, w := range []string{"B2u", "B2z", "B3", "B4"} {
		dsl, _ := r.Cell(w, SysBrookDSL)
		hand, _ := r.Cell(w, SysBrook)
		add(w+" brook-dsl ≥ 0.95 × brook", pairedRatio(dsl, hand), 0.95)
	}
	// Issue 17: metrics within 5 % of none, lineage headers within
	// 10 %, same run; listed only when the systems ran (-systems names
	// them).
	for _, w := range []string{"B2u", "B2z"} {
		hand, _ := r.Cell(w, SysBrook)
		if c, ok := r.Cell(w, SysBrookMetrics); ok {
			add(w+" brook-metrics ≥ 0.95 × brook", pairedRatio(c, hand), 0.95)
		}
		if c, ok := r.Cell(w, SysBrookLineage); ok {
			add(w+" brook-lineage ≥ 0.90 × brook", pairedRatio(c, hand), 0.90)
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
