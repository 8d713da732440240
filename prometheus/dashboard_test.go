package brookprom_test

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/brookstream/brook/metrics"
	brookprom "github.com/brookstream/brook/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// TestDashboardQueriesExistingMetrics: every metric the Grafana dashboard
// in docs/grafana queries is one the collector exports (histograms by
// their _bucket, _count and _sum series), so a renamed metric cannot leave
// an empty panel behind; and every panel has a query.
func TestDashboardQueriesExistingMetrics(t *testing.T) {
	raw, err := os.ReadFile("../docs/grafana/brook-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Type    string `json:"type"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}

	exported := map[string]bool{}
	ch := make(chan *prometheus.Desc, 100)
	brookprom.NewCollector(metrics.NewRegistry()).Describe(ch)
	close(ch)
	name := regexp.MustCompile(`fqName: "([a-z_]+)"`)
	for d := range ch {
		m := name.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read the name of %s", d)
		}
		exported[m[1]] = true
	}
	if len(exported) < 20 {
		t.Fatalf("the collector describes only %d metrics", len(exported))
	}

	used := regexp.MustCompile(`brook_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range used.FindAllString(tg.Expr, -1) {
				queried++
				base := n
				for _, suf := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(n, suf); ok && exported[b] && !exported[n] {
						base = b
					}
				}
				if !exported[base] {
					t.Errorf("panel %q queries %s, which the collector does not export", p.Title, n)
				}
			}
		}
	}
	if queried < 20 {
		t.Fatalf("the dashboard queries only %d metrics", queried)
	}
}
