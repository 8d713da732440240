package harness

import (
	"fmt"
	"strings"
)

// failoverMarkdown renders the failover cells (F1, F1s), if any, as their
// own table: their figures are not the throughput table's.
func (r *Report) failoverMarkdown(p func(format string, args ...any)) {
	var cells []Cell
	for _, w := range FailoverWorkloads {
		for _, c := range r.Cells {
			if c.Workload == w {
				cells = append(cells, c)
			}
		}
	}
	if len(cells) == 0 {
		return
	}
	p("### Failover (issue 18)\n\n")
	p("Three instances, exactly-once, one SIGKILLed, then a fourth (empty) started; gaps are per task (input partition) in the output's processing times. ")
	p("Failover: SIGKILL → the last of the killed instance's tasks processing again (median of the runs, min–max). Gaps with repeats: the largest over the runs.\n\n")
	p("| workload | system | standbys | store keys | session timeout s | failover s | runs s | retained tasks' largest gap, failover ms | survivors' tasks' largest gap, failover ms | largest gap, scale-out ms | retained tasks' largest gap, scale-out ms | steady largest gap ms | restored on failover (%% of store) | restored on scale-out | lost / duplicated | peak RSS MB | note |\n")
	p("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|\n")
	for _, c := range cells {
		note := c.Note
		if c.Missing != "" {
			note = strings.TrimPrefix("**missing:** "+c.Missing+"; "+note, "; ")
		}
		runs := "–"
		if len(c.Runs) > 1 {
			var lo, hi float64
			var vs []string
			for _, v := range c.Runs {
				vs = append(vs, secs(v))
				if v > 0 && (lo == 0 || v < lo) {
					lo = v
				}
				hi = max(hi, v)
			}
			runs = fmt.Sprintf("%s–%s (%s)", secs(lo), secs(hi), strings.Join(vs, ", "))
		}
		restored := "–"
		if c.FailoverMs > 0 && c.StoreKeys > 0 {
			restored = fmt.Sprintf("%d (%.2f %%)", c.FailoverRestored, 100*float64(c.FailoverRestored)/float64(c.StoreKeys))
		}
		exact := "–"
		if c.Output != "" || c.Lost > 0 || c.Duplicated > 0 {
			exact = fmt.Sprintf("%d / %d", c.Lost, c.Duplicated)
		}
		scaleRestored := "–"
		if c.ScaleOutGapMs > 0 {
			scaleRestored = fmt.Sprintf("%d", c.ScaleOutRestored)
		}
		p("| %s | %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			workloadTitle[c.Workload], c.System, c.Standbys, c.StoreKeys, secs(c.SessionTimeoutMs), secs(c.FailoverMs), runs,
			gapOf(c.FailoverRetainedGapMs, c.FailoverRetained, c.FailoverMs), f0(c.FailoverOthersGapMs), f0(c.ScaleOutGapMs),
			gapOf(c.ScaleOutRetainedGapMs, c.ScaleOutRetained, c.ScaleOutGapMs), f0(c.SteadyGapMs),
			restored, scaleRestored, exact, f0(c.PeakRSSMB), strings.ReplaceAll(note, "|", "/"))
	}
	p("\n")
}

// gapOf renders the largest gap of n retained tasks, "none retained"
// when the phase (measured: its other figure) kept no task in place.
func gapOf(gap float64, n int, measured float64) string {
	switch {
	case measured == 0:
		return "–"
	case n == 0:
		return "none retained"
	}
	return fmt.Sprintf("%s (%d tasks)", f0(gap), n)
}

func secs(msv float64) string {
	if msv == 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", msv/1000)
}

// failoverTargets are issue 18's targets, for the failover cells of the
// report (none when no failover workload ran).
func (r *Report) failoverTargets() []Target {
	var out []Target
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, w := range FailoverWorkloads {
		for _, sys := range systemsOf[w] {
			c, ok := r.Cell(w, sys)
			if !ok {
				continue
			}
			pre := fmt.Sprintf("%s %s: ", w, sys)
			missing := c.Missing != "" || c.FailoverMs == 0
			if w == "F1s" {
				t := Target{Target: pre + "a killed instance's tasks process again within the session timeout + 1 s", Measured: "–", Met: "n/a (cell missing)"}
				if !missing {
					bound := c.SessionTimeoutMs + 1000
					t.Measured = fmt.Sprintf("%.1f s (bound %.0f s)", c.FailoverMs/1000, bound/1000)
					t.Met = yes(c.FailoverMs <= bound)
				}
				out = append(out, t)
				t = Target{Target: pre + "failover restores under 1 % of the store", Measured: "–", Met: "n/a (cell missing)"}
				if !missing && c.StoreKeys > 0 {
					f := float64(c.FailoverRestored) / float64(c.StoreKeys)
					t.Measured = fmt.Sprintf("%.2f %% (%d of %d)", 100*f, c.FailoverRestored, c.StoreKeys)
					t.Met = yes(f < 0.01)
				}
				out = append(out, t)
			}
			t := Target{Target: pre + fmt.Sprintf("retained tasks never pause during a rebalance (largest gap ≤ %d ms)", pauseThreshold.Milliseconds()), Measured: "–", Met: "n/a (cell missing)"}
			if !missing && c.ScaleOutGapMs > 0 {
				t.Measured = fmt.Sprintf("failover %s, scale-out %s", gapOf(c.FailoverRetainedGapMs, c.FailoverRetained, c.FailoverMs), gapOf(c.ScaleOutRetainedGapMs, c.ScaleOutRetained, c.ScaleOutGapMs))
				limit := float64(pauseThreshold.Milliseconds())
				t.Met = yes(c.FailoverRetainedGapMs <= limit && c.ScaleOutRetainedGapMs <= limit)
			}
			out = append(out, t)
			t = Target{Target: pre + "no record lost or duplicated (exactly-once)", Measured: "–", Met: "n/a (cell missing)"}
			if c.Output != "" || c.Lost > 0 || c.Duplicated > 0 {
				t.Measured = fmt.Sprintf("%d lost, %d duplicated", c.Lost, c.Duplicated)
				t.Met = yes(c.Lost == 0 && c.Duplicated == 0)
			}
			out = append(out, t)
		}
	}
	return out
}
