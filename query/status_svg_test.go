package query_test

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/brookstream/brook/processor"
	"github.com/brookstream/brook/query"
	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/topology"
)

// svgItem is a box of the drawing: its kind and name, and the band
// (sub-topology) it sits in.
type svgItem struct{ band, kind, name string }

// readSVG parses the topology drawing and returns its boxes, its arrows
// (band, from, to) and its store links (band, node, store).
func readSVG(t *testing.T, body []byte) (items []svgItem, edges, links [][3]string) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(body)))
	band := ""
	depth := 0
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the topology is not well-formed XML: %v\n%s", err, body)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 && e.Name.Local != "svg" {
				t.Fatalf("root element %s, want svg", e.Name.Local)
			}
			switch {
			case attr(e, "class") == "band":
				band = attr(e, "data-name")
			case strings.HasPrefix(attr(e, "class"), "item "):
				items = append(items, svgItem{band, attr(e, "data-kind"), attr(e, "data-name")})
			case attr(e, "class") == "edge":
				edges = append(edges, [3]string{band, attr(e, "data-from"), attr(e, "data-to")})
			case attr(e, "class") == "store-link":
				links = append(links, [3]string{band, attr(e, "data-from"), attr(e, "data-to")})
			}
		case xml.EndElement:
			depth--
		}
	}
	return items, edges, links
}

// TestStatusTopologySVG draws a topology with two sub-topologies joined
// by a repartition topic, stores of every keeping, a sink with a topic
// per record and a global table, and checks that the drawing has every
// box and arrow of the graph, and nothing else.
func TestStatusTopologySVG(t *testing.T) {
	b := topology.New()
	orders := topology.Stream(b, "orders", "orders-in", serde.String(), serde.String())
	customers := topology.GlobalTable(b, "customers", "customers-in", serde.String(), serde.String())
	joined := topology.JoinGlobal(orders, customers, "with-customer",
		func(k, v string) (string, error) { return v, nil },
		func(k, v, c string) (string, error) { return v + "@" + c, nil })
	byCustomer := topology.GroupBy(joined, "by-customer", func(k, v string) (string, error) { return v, nil }, serde.String())
	counts := topology.Count(byCustomer, "order-counts")
	topology.Count(orders.GroupByKey(), "per-order", topology.InMemory())
	counts.ToStream("count-changes").To("to-out", "counts-out", serde.String(), topology.ChangeSerde(serde.Int64()))
	orders.ToTopicFunc("route", func(r processor.Record[string, string]) (string, error) { return "routed-" + r.Key, nil }, serde.String(), serde.String())
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	app, err := topology.NewApp(topo, topology.Config{ApplicationID: "svg-app", Brokers: []string{"127.0.0.1:1"}, StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.QueryHandler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/status/topology.svg")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/svg+xml; charset=utf-8" {
		t.Fatalf("GET /status/topology.svg: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	items, edges, links := readSVG(t, body)

	// What the drawing must hold, from the topology's own description.
	desc := strings.ReplaceAll(topo.Describe(), "<application-id>", "svg-app")
	t.Log("\n" + desc)
	want := map[svgItem]bool{}
	wantEdges := map[[3]string]bool{}
	wantLinks := map[[3]string]bool{}
	band := ""
	node := ""
	kindOf := map[string]string{"Source:": "source", "Processor:": "processor", "Sink:": "sink"}
	for _, line := range strings.Split(desc, "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "Sub-topology":
			band = f[1]
		case len(f) >= 2 && kindOf[f[0]] != "":
			node = f[1]
			want[svgItem{band, kindOf[f[0]], node}] = true
			switch f[0] {
			case "Source:":
				for _, tp := range strings.Split(strings.Trim(between(line, "(topics: [", "])"), " "), ", ") {
					want[svgItem{band, topicKind(tp), tp}] = true
					wantEdges[[3]string{band, tp, node}] = true
				}
			case "Sink:":
				tp := between(line, "(topic: ", ")")
				want[svgItem{band, topicKind(tp), tp}] = true
				wantEdges[[3]string{band, node, tp}] = true
			case "Processor:":
				for _, s := range strings.Split(between(line, "(stores: [", "])"), ", ") {
					if s != "" {
						want[svgItem{band, "store", s}] = true
						wantLinks[[3]string{band, node, s}] = true
					}
				}
			}
		case len(f) == 2 && f[0] == "-->":
			wantEdges[[3]string{band, node, f[1]}] = true
		}
	}
	// The global table: its topic and its store, in a band of their own.
	want[svgItem{"global", "topic", "customers-in"}] = true
	want[svgItem{"global", "store", "customers"}] = true
	wantEdges[[3]string{"global", "customers-in", "customers"}] = true

	got := map[svgItem]bool{}
	for _, it := range items {
		if got[it] {
			t.Errorf("drawn twice: %+v", it)
		}
		got[it] = true
	}
	check := func(what string, got, want map[[3]string]bool) {
		for k := range want {
			if !got[k] {
				t.Errorf("%s %v missing", what, k)
			}
		}
		for k := range got {
			if !want[k] {
				t.Errorf("%s %v drawn but not in the topology", what, k)
			}
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("box %+v missing", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("box %+v drawn but not in the topology", k)
		}
	}
	set := func(l [][3]string) map[[3]string]bool {
		m := map[[3]string]bool{}
		for _, e := range l {
			m[e] = true
		}
		return m
	}
	check("arrow", set(edges), wantEdges)
	check("store link", set(links), wantLinks)
	// The repartition topic joins the two sub-topologies: written by one,
	// read by the other, dashed in both.
	var internal []string
	for it := range got {
		if it.kind == "internal-topic" {
			internal = append(internal, it.band)
		}
	}
	slices.Sort(internal)
	if !slices.Equal(internal, []string{"0", "1"}) {
		t.Errorf("the repartition topic is drawn in bands %v, want 0 and 1", internal)
	}
	if !strings.Contains(string(body), "svg-app-by-customer-repartition") {
		t.Errorf("the repartition topic is not named with the application id")
	}

	// The status of an App that has not run: created, nothing assigned,
	// nothing measured, nothing wrong.
	resp, err = http.Get(srv.URL + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var s query.Status
	err = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s.State != "created" || s.Generation != -1 || len(s.Instances) != 0 || len(s.Partitions) != 0 || len(s.Problems) != 0 ||
		len(s.Tasks) != 1 || s.Tasks[0] != (query.TaskState{Task: "global", SubTopology: -1, Partition: -1, Role: query.RoleActive, State: query.TaskAssigned}) {
		t.Fatalf("status before Run: %+v", s)
	}
	if len(s.KeyValueStores) != 3 { // customers, order-counts, per-order
		t.Fatalf("key-value stores: %+v", s.KeyValueStores)
	}
}

func between(s, from, to string) string {
	_, rest, _ := strings.Cut(s, from)
	v, _, _ := strings.Cut(rest, to)
	return v
}

func topicKind(name string) string {
	if strings.Contains(name, "-repartition") {
		return "internal-topic"
	}
	return "topic"
}

// TestStatusOfNilApp: a snapshot of nothing says why.
func TestStatusOfNilApp(t *testing.T) {
	s := query.StatusOf(t.Context(), nil)
	if s.State != "unknown" || len(s.Problems) != 1 || !strings.Contains(s.Problems[0], "needs an App") {
		t.Fatalf("%+v", s)
	}
}
