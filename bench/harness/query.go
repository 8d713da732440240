package harness

import (
	"context"
	"encoding/json"

	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brookstream/brook/topology"
	"github.com/lovoo/goka"
)

// serveQueries serves h on ln until ctx ends, announcing the address to
// the harness, and runs run meanwhile.
func serveQueries(ctx context.Context, ln net.Listener, h http.Handler, run func(context.Context) error) error {
	if ln == nil {
		return run(ctx)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // owned by serveQueries: serves until Shutdown
		defer wg.Done()
		_ = srv.Serve(ln)
	}()
	emit(os.Stdout, event{Event: "query", Addr: ln.Addr().String()})
	err := run(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_ = srv.Shutdown(sctx)
	cancel()
	wg.Wait()
	return err
}

// listenQuery opens the query listener of a worker, if it has one.
func listenQuery(a workerArgs) (net.Listener, error) {
	if a.queryAddr == "" {
		return nil, nil
	}
	return net.Listen("tcp", a.queryAddr)
}

// runWithQuery runs app until ctx ends, serving its interactive-query
// handler when the worker has a query address (B6).
func runWithQuery(ctx context.Context, app *topology.App, ln net.Listener) error {
	var h http.Handler
	if ln != nil {
		h = app.QueryHandler()
	}
	return serveQueries(ctx, ln, h, app.Run)
}

// runGokaWithQuery runs proc until ctx ends. goka has no HTTP query
// server: for B6 a net/http handler answers GET /stores/{store}/keys/{key}
// from Processor.Get, with JSON as brook's handler does.
func runGokaWithQuery(ctx context.Context, proc *goka.Processor, ln net.Listener) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stores/{store}/keys/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		v, err := proc.Get(key)
		switch {
		case err != nil:
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		case v == nil:
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "no key " + key})
		default:
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]any{"key": key, "value": v})
		}
	})
	return serveQueries(ctx, ln, mux, proc.Run)
}

// queryLoad is B6's client: one goroutine GETting random keys from a
// worker's query endpoint back to back, on a keep-alive connection.
type queryLoad struct {
	keys  *keyGen
	phase atomic.Int32 // 1: full-speed B2, 2: fixed-rate B2

	mu     sync.Mutex
	lats   [3][]time.Duration
	other  int // answers other than 200 and 404 (503 while restoring)
	errs   int
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (q *queryLoad) start(addr string) {
	ctx, cancel := context.WithCancel(context.Background())
	q.cancel = cancel
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	cl := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	q.wg.Add(1)
	go func() { // owned by queryLoad.stop
		defer q.wg.Done()
		defer tr.CloseIdleConnections()
		for ctx.Err() == nil {
			url := fmt.Sprintf("http://%s/stores/counts/keys/%s", addr, q.keys.next())
			t0 := time.Now()
			resp, err := cl.Get(url)
			if err != nil {
				q.mu.Lock()
				q.errs++
				q.mu.Unlock()
				time.Sleep(10 * time.Millisecond)
				continue
			}
			_, _ = drain(resp)
			d := time.Since(t0)
			q.mu.Lock()
			switch resp.StatusCode {
			case http.StatusOK, http.StatusNotFound:
				q.lats[q.phase.Load()] = append(q.lats[q.phase.Load()], d)
			default:
				q.other++
			}
			q.mu.Unlock()
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()
}

func (q *queryLoad) stop() {
	if q.cancel != nil {
		q.cancel()
		q.wg.Wait()
	}
}

// quantiles returns p50, p99 in ms and the count of phase's answers.
func (q *queryLoad) quantiles(phase int) (float64, float64, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.lats[phase]
	if len(l) == 0 {
		return 0, 0, 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	at := func(f float64) float64 {
		return float64(l[min(len(l)-1, int(f*float64(len(l))))].Microseconds()) / 1000
	}
	return at(0.5), at(0.99), len(l)
}

func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	return io.Copy(io.Discard, resp.Body)
}
