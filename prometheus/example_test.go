package brookprom_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"

	"github.com/brookstream/brook/metrics"
	brookprom "github.com/brookstream/brook/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// An App configured with Metrics: reg registers itself with reg; here a
// made-up source stands in for it. The Registry's Apps are served on
// /metrics in Prometheus' text format.
func ExampleRegister() {
	reg := metrics.NewRegistry()
	unregister, _ := reg.Register("payments", func(s *metrics.AppSnapshot) {
		s.State = "running"
		s.Partitions = []metrics.PartitionSnapshot{{Task: "0_0", Topic: "card-transactions", Partition: 0, Assigned: true,
			Position: 1200, Committed: 1100, End: 1250, Lag: 50, CommittedLag: 150}}
	})
	defer unregister()

	pr := prometheus.NewRegistry()
	if err := brookprom.Register(pr, reg); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(pr, promhttp.HandlerOpts{}))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "brook_consumer_lag_records{") {
			fmt.Println(line)
		}
	}
	// Output:
	// brook_consumer_lag_records{application_id="payments",partition="0",task="0_0",topic="card-transactions"} 50
}
