package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/testutil"
)

// cli runs the command line in-process and returns its exit status and
// outputs. The environment is env (KAFKA_BROKERS of the test process is
// not seen).
func cli(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	t.Logf("brook %s -> exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errOut.String())
	return code, out.String(), errOut.String()
}

// norm collapses runs of white space, so tabular output can be matched
// line by line whatever the column widths.
func norm(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// wantLines fails unless the normalised output has a line for each of
// lines: equal to it, or starting with it when it ends in "(".
func wantLines(t *testing.T, out string, lines ...string) {
	t.Helper()
	n := "\n" + norm(out) + "\n"
	for _, l := range lines {
		want := "\n" + norm(l)
		if !strings.HasSuffix(l, "(") {
			want += "\n"
		}
		if !strings.Contains(n, want) {
			t.Errorf("output has no line %q", norm(l))
		}
	}
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// admin returns a cluster admin for b, closed when the test ends.
func admin(t *testing.T, b *testutil.Broker) sarama.ClusterAdmin {
	t.Helper()
	a, err := sarama.NewClusterAdmin(b.Addrs(), b.SaramaConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// committedOffset is a committed offset and its metadata.
type committedOffset struct {
	Offset   int64
	Metadata string
}

// committedOffsets returns the group's committed offsets, by topic and
// partition (only partitions with one).
func committedOffsets(t *testing.T, a sarama.ClusterAdmin, group string) map[string]map[int32]committedOffset {
	t.Helper()
	resp, err := a.ListConsumerGroupOffsets(group, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[int32]committedOffset{}
	for topic, parts := range resp.Blocks {
		for p, blk := range parts {
			if blk == nil || blk.Offset < 0 {
				continue
			}
			if out[topic] == nil {
				out[topic] = map[int32]committedOffset{}
			}
			out[topic][p] = committedOffset{blk.Offset, blk.Metadata}
		}
	}
	return out
}

// topicsWithPrefix lists the cluster's topics that start with prefix.
func topicsWithPrefix(t *testing.T, a sarama.ClusterAdmin, prefix string) []string {
	t.Helper()
	topics, err := a.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		if strings.HasPrefix(name, prefix) {
			out = append(out, name)
		}
	}
	return out
}

// waitGroup waits until the group's state satisfies ok.
func waitGroup(t *testing.T, a sarama.ClusterAdmin, group string, ok func(state string, members int) bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		d, err := a.DescribeConsumerGroups([]string{group})
		if err == nil && len(d) == 1 && (errors.Is(d[0].Err, sarama.ErrNoError) || errors.Is(d[0].Err, sarama.ErrGroupIDNotFound)) &&
			ok(d[0].State, len(d[0].Members)) {
			return
		}
		if time.Now().After(deadline) {
			if err == nil && len(d) == 1 {
				t.Fatalf("group %s: state %s with %d members (%v) did not become as expected", group, d[0].State, len(d[0].Members), d[0].Err)
			}
			t.Fatalf("group %s: %v", group, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
