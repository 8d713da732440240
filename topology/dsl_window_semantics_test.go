package topology_test

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/brookstream/brook/serde"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
)

// inputRecord is one line of testdata/window-input.tsv.
type inputRecord struct {
	partition int
	offset    int64
	key       string
	value     string
	ts        int64
	kind      string
}

// readWindowInput reads the Kafka Streams reference input, per partition
// in offset order.
func readWindowInput(t *testing.T, path string) map[int][]inputRecord {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[int][]inputRecord{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // header
		}
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 7 {
			t.Fatalf("%s:%d: %d columns", path, line+1, len(c))
		}
		p, err1 := strconv.Atoi(c[1])
		off, err2 := strconv.ParseInt(c[2], 10, 64)
		ts, err3 := strconv.ParseInt(c[5], 10, 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s:%d: bad numbers", path, line+1)
		}
		out[p] = append(out[p], inputRecord{partition: p, offset: off, key: c[3], value: c[4], ts: ts, kind: c[6]})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, recs := range out {
		slices.SortFunc(recs, func(a, b inputRecord) int { return int(a.offset - b.offset) })
	}
	return out
}

// finalCountTopology is the reference pipeline: groupByKey, 5-minute
// tumbling windows with 1 minute grace, count, suppress until the window
// closes.
func finalCountTopology(t testing.TB, in, out string) *topology.Topology {
	t.Helper()
	b := topology.New()
	cards := topology.Stream(b, "cards", in, serde.String(), serde.String())
	counts := topology.WindowedBy(cards.GroupByKey(), topology.Tumbling(5*time.Minute).Grace(time.Minute)).Count("counts")
	counts.Suppress("finals", topology.UntilWindowCloses()).ToStream("finals-stream").
		To("out", out, topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	return topo
}

// groupedByKey renders output lines "key\tvalue\tts" grouped by record key
// (sorted), each key's lines in output order: the reference files' form.
func groupedByKey(lines map[string][]string) []string {
	keys := make([]string, 0, len(lines))
	for k := range lines {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []string
	for _, k := range keys {
		out = append(out, lines[k]...)
	}
	return out
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestWindowCountFinalMatchesKafkaStreams runs the reference input
// (testdata/window-input.tsv, from /work/shared/semantics) through
// GroupByKey → WindowedBy(Tumbling(5m).Grace(1m)) → Count →
// Suppress(UntilWindowCloses) and compares the finals with what Kafka
// Streams 4.1.1 produced, line for line: key@start-end, count, timestamp.
// Kafka Streams ran one task per input partition, each with its own stream
// time; the TestDriver runs partition 0 only, so each input partition
// goes through its own driver, in offset order.
func TestWindowCountFinalMatchesKafkaStreams(t *testing.T) {
	in := readWindowInput(t, "testdata/window-input.tsv")
	want := readLines(t, "testdata/window-count-5m-grace1m-final.kafka-streams.tsv")
	lines := map[string][]string{}
	for p := range 3 {
		recs := in[p]
		if len(recs) == 0 {
			t.Fatalf("no input for partition %d", p)
		}
		d, err := testutil.NewTestDriver(finalCountTopology(t, "diff-cards", "finals"))
		if err != nil {
			t.Fatal(err)
		}
		src := testutil.NewInputTopic(d, "diff-cards", serde.String(), serde.String())
		out := testutil.NewOutputTopic(d, "finals", topology.WindowedSerde(serde.String()), topology.ChangeSerde(serde.Int64()))
		for _, r := range recs {
			if err := src.Pipe(r.key, r.value, time.UnixMilli(r.ts)); err != nil {
				t.Fatalf("partition %d offset %d: %v", p, r.offset, err)
			}
		}
		got, err := out.ReadRecords()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			if r.Value.Deleted {
				t.Fatalf("final for %v is a deletion", r.Key)
			}
			lines[r.Key.Key] = append(lines[r.Key.Key], fmt.Sprintf("%v\t%d\t%d", r.Key, r.Value.Value, r.Timestamp.UnixMilli()))
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	got := groupedByKey(lines)
	if len(got) != len(want) {
		t.Errorf("%d finals, Kafka Streams produced %d", len(got), len(want))
	}
	diffs := 0
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			if diffs++; diffs <= 10 {
				t.Errorf("line %d: brook %q, Kafka Streams %q", i+1, g, w)
			}
		}
	}
	if diffs > 0 {
		t.Fatalf("%d lines differ from Kafka Streams", diffs)
	}
}
