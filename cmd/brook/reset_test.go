package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/runtime"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/testutil"
	"github.com/brookstream/brook/topology"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestResetCommandLine: bad command lines exit with status 2 and say
// what is wrong, before connecting anywhere; help exits with 0.
func TestResetCommandLine(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	// 127.0.0.1:1 would refuse connections: every case must fail before.
	const b = "--bootstrap-server=127.0.0.1:1"
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string // in stderr (stdout for help)
	}{
		{"no command", nil, nil, exitUsage, "Usage:"},
		{"unknown command", nil, []string{"rest"}, exitUsage, `unknown command "rest"`},
		{"help", nil, []string{"help"}, exitOK, "brook reset --application-id"},
		{"reset help", nil, []string{"help", "reset"}, exitOK, "-to-datetime string"},
		{"reset -h", nil, []string{"reset", "-h"}, exitOK, "--execute"},
		{"no application id", nil, []string{"reset", b}, exitUsage, "--application-id is required"},
		{"bad application id", nil, []string{"reset", b, "--application-id", "a/b"}, exitUsage, `ApplicationID "a/b" has the character '/'`},
		{"no brokers", nil, []string{"reset", "--application-id", "app"}, exitUsage, "no brokers: give --bootstrap-server or set KAFKA_BROKERS"},
		{"different brokers", nil, []string{"reset", "--application-id", "app", "--brokers", "h:1", "--bootstrap-server", "h:2"}, exitUsage, "name different brokers"},
		{"two targets", nil, []string{"reset", b, "--application-id", "app", "--to-earliest", "--to-latest"}, exitUsage, "give one target, not --to-earliest and --to-latest"},
		{"bad datetime", nil, []string{"reset", b, "--application-id", "app", "--to-datetime", "yesterday"}, exitUsage, `--to-datetime "yesterday" is not an RFC 3339 time`},
		{"datetime without zone", nil, []string{"reset", b, "--application-id", "app", "--to-datetime", "2026-01-02T15:04:05"}, exitUsage, "is not an RFC 3339 time"},
		{"bad timestamp", nil, []string{"reset", b, "--application-id", "app", "--to-timestamp", "-5"}, exitUsage, `--to-timestamp "-5" is not a non-negative number`},
		{"execute and dry run", nil, []string{"reset", b, "--application-id", "app", "--execute", "--dry-run"}, exitUsage, "--execute and --dry-run exclude each other"},
		{"unknown flag", nil, []string{"reset", b, "--application-id", "app", "--force"}, exitUsage, "flag provided but not defined: -force"},
		{"extra argument", nil, []string{"reset", b, "--application-id", "app", "now"}, exitUsage, `unexpected argument "now"`},
		{"certificate without CA", nil, []string{"reset", b, "--application-id", "app", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, exitUsage, "--tls-cert and --tls-key need --tls-ca"},
		{"CA not PEM", nil, []string{"reset", b, "--application-id", "app", "--tls-ca", notPEM}, exitUsage, "holds no PEM certificate"},
		{"SASL without user", nil, []string{"reset", b, "--application-id", "app", "--sasl-mechanism", "PLAIN"}, exitUsage, "--sasl-mechanism needs --sasl-user"},
		{"SASL mechanism", map[string]string{"BROOK_SASL_PASSWORD": "x"}, []string{"reset", b, "--application-id", "app", "--sasl-mechanism", "GSSAPI", "--sasl-user", "u"}, exitUsage, `SASL.Mechanism "GSSAPI" is not supported`},
		{"zero timeout", nil, []string{"reset", b, "--application-id", "app", "--timeout", "0s"}, exitUsage, "--timeout 0s must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.env, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d", code, tc.code)
			}
			if !strings.Contains(out+errOut, tc.want) {
				t.Errorf("output does not say %q", tc.want)
			}
		})
	}
}

// TestResetUnknownApplication: an application id with no group, no
// internal topics and no local state has nothing to reset, with or
// without --execute; the brokers may come from KAFKA_BROKERS.
func TestResetUnknownApplication(t *testing.T) {
	b := testutil.NewBroker(t)
	appID := testutil.TopicName(t, "nobody")
	for _, execute := range []bool{false, true} {
		args := []string{"reset", "--application-id", appID, "--state-dir", t.TempDir()}
		if execute {
			args = append(args, "--execute")
		}
		code, out, _ := cli(t, map[string]string{"KAFKA_BROKERS": strings.Join(b.Addrs(), ",")}, args...)
		if code != exitOK || !strings.Contains(out, `Nothing to reset for application "`+appID+`"`) || !strings.Contains(out, "no local state at") {
			t.Errorf("execute=%v: exit %d, want 0 and a nothing-to-reset message", execute, code)
		}
	}
}

// TestResetRefusesWhileRunning: while an instance of the application is
// a member of its group, the reset refuses (exit status 3), with and
// without --execute, naming the group, its member count and the member's
// client id, and changes nothing; the dry run still prints its plan.
func TestResetRefusesWhileRunning(t *testing.T) {
	b := testutil.NewBroker(t)
	a := admin(t, b)
	in, hoursOut, cardsOut := testutil.TopicName(t, "payments"), testutil.TopicName(t, "hours"), testutil.TopicName(t, "cards")
	b.CreateTopic(t, in, 2, nil)
	b.CreateTopic(t, hoursOut, 2, nil)
	b.CreateTopic(t, cardsOut, 2, nil)
	b.Produce(t, in, &sarama.ProducerMessage{Key: sarama.StringEncoder("m0"), Value: sarama.StringEncoder("c0"), Partition: 0})
	appID, stateDir := testutil.TopicName(t, "app"), t.TempDir()
	app, err := topology.NewApp(resetTopology(t, in, hoursOut, cardsOut), topology.Config{
		ApplicationID: appID, Brokers: b.Addrs(), StateDir: stateDir, CommitInterval: 100 * time.Millisecond, Logger: testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- app.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitGroup(t, a, appID, func(state string, members int) bool { return state == "Stable" && members == 1 })
	// The first record's offset is committed.
	deadline := time.Now().Add(30 * time.Second)
	for committedOffsets(t, a, appID)[in][0].Offset != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the application did not commit its input offset: %v", committedOffsets(t, a, appID))
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := committedOffsets(t, a, appID)
	topics := topicsWithPrefix(t, a, appID)
	if len(topics) != 3 {
		t.Fatalf("the application's topics are %v, want 3", topics)
	}
	stateBefore := stateEntries(t, filepath.Join(stateDir, appID))

	args := []string{"reset", "--application-id", appID, "--bootstrap-server", strings.Join(b.Addrs(), ","), "--state-dir", stateDir}
	for _, execute := range []bool{false, true} {
		a := args
		if execute {
			a = append(a, "--execute")
		}
		code, out, errOut := cli(t, nil, a...)
		if code != exitRefused {
			t.Errorf("execute=%v: exit %d, want %d", execute, code, exitRefused)
		}
		want := `consumer group "` + appID + `" is Stable with 1 active member(s) (brook-` + appID + "@"
		if !strings.Contains(errOut, want) || !strings.Contains(errOut, "stop every instance of the application") {
			t.Errorf("execute=%v: the error does not say %q and what to do", execute, want)
		}
		wantLines(t, out, "CLIENT ID HOST MEMBER ID", "Internal topics to delete (3):")
		if strings.Contains(out, "Dry run: nothing was changed") || strings.Contains(out, "Reset done") {
			t.Errorf("execute=%v: the refused reset claims it finished", execute)
		}
	}
	if got := topicsWithPrefix(t, a, appID); !slices.Equal(got, topics) {
		t.Errorf("the refused reset changed the topics: %v, were %v", got, topics)
	}
	if got := committedOffsets(t, a, appID); got[in][0] != before[in][0] || got[in][1] != before[in][1] {
		t.Errorf("the refused reset changed the committed offsets: %v, were %v", got, before)
	}
	if got := stateEntries(t, filepath.Join(stateDir, appID)); !slices.Equal(got, stateBefore) {
		t.Errorf("the refused reset changed the state folder: %v, was %v", got, stateBefore)
	}
}

// TestResetStateFolderRefusals: --execute refuses (exit status 3) before
// changing anything when the state folder's lock is held (an instance
// runs on this host) or when the folder holds entries brook does not
// write there (a wrong --state-dir).
func TestResetStateFolderRefusals(t *testing.T) {
	b := testutil.NewBroker(t)
	a := admin(t, b)
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, appDir string)
		want    string
	}{
		{"locked", func(t *testing.T, appDir string) {
			release, err := runtime.LockStateDir(appDir)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { release() })
		}, "is in use by another App in this process (pid "},
		{"foreign entries", func(t *testing.T, appDir string) {
			if err := os.WriteFile(filepath.Join(appDir, "notes.txt"), []byte("mine"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "holds entries brook does not write there (notes.txt)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			appID, stateDir := testutil.TopicName(t, "app"), t.TempDir()
			changelog := appID + "-counts-changelog"
			b.CreateTopic(t, changelog, 1, map[string]string{"cleanup.policy": "compact"})
			appDir := filepath.Join(stateDir, appID)
			if err := os.MkdirAll(filepath.Join(appDir, "0_0"), 0o755); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, appDir)
			code, _, errOut := cli(t, nil, "reset", "--application-id", appID, "--bootstrap-server", strings.Join(b.Addrs(), ","),
				"--state-dir", stateDir, "--execute")
			if code != exitRefused || !strings.Contains(errOut, appDir) || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, want %d and an error naming %s and saying %q", code, exitRefused, appDir, tc.want)
			}
			if got := topicsWithPrefix(t, a, appID); !slices.Equal(got, []string{changelog}) {
				t.Errorf("the refused reset deleted topics: %v left", got)
			}
			if _, err := os.Stat(filepath.Join(appDir, "0_0")); err != nil {
				t.Errorf("the refused reset changed the state folder: %v", err)
			}
		})
	}
}

// TestResetFindsTopics: which topics a reset deletes and which offsets
// it resets. Deleted: every topic named "<app>-...<suffix>" for the four
// internal suffixes, and the group's offsets on them. Kept, each with its reason: a topic named by
// --keep-topics, a topic named by --input-topics (reset instead), a
// "-changelog" topic the group has offsets on (reset instead), a topic
// in the global tables' checkpoint, and a topic whose name starts with
// another existing group's id "<app>-other-". Not touched: topics of
// other prefixes. --to-latest commits each input partition's end.
func TestResetFindsTopics(t *testing.T) {
	b := testutil.NewBroker(t)
	a := admin(t, b)
	appID, stateDir := testutil.TopicName(t, "app"), t.TempDir()
	other := appID + "-other"
	internal := []string{
		appID + "-counts-changelog",
		appID + "-rekey-repartition",
		appID + "-fk-subscription-registration-topic",
		appID + "-fk-subscription-response-topic",
	}
	kept := map[string]string{
		appID + "-kept-changelog":   "named by --keep-topics",
		appID + "-named-changelog":  "named by --input-topics: its offsets are reset instead",
		appID + "-read-changelog":   "the group reads it as an input topic (it has committed offsets there): its offsets are reset instead",
		appID + "-rates-changelog":  "a global table reads it (it is in the global tables' checkpoint): it is the user's topic",
		other + "-counts-changelog": `it may belong to application "` + other + `" (a consumer group with that id exists); if it is this application's, delete it by hand`,
	}
	unrelated := []string{appID + "-changelog", appID + "x-counts-changelog"}
	input := appID + "-input"
	for _, topic := range slices.Concat(internal, slices.Collect(mapKeys(kept)), unrelated, []string{input}) {
		b.CreateTopic(t, topic, 2, nil)
	}
	for _, topic := range []string{input, appID + "-named-changelog", appID + "-read-changelog"} {
		var msgs []*sarama.ProducerMessage
		for i := range 5 {
			msgs = append(msgs, &sarama.ProducerMessage{Value: sarama.StringEncoder("v"), Partition: int32(i % 2)})
		}
		b.Produce(t, topic, msgs...)
	}
	commit := func(group string, offs map[string]map[int32]sarama.OffsetAndMetadata) {
		t.Helper()
		resp, err := a.AlterConsumerGroupOffsets(group, offs, nil)
		if err != nil {
			t.Fatal(err)
		}
		for topic, parts := range resp.Errors {
			for p, kerr := range parts {
				if kerr != sarama.ErrNoError {
					t.Fatalf("commit %s %s/%d: %v", group, topic, p, kerr)
				}
			}
		}
	}
	at := func(o int64) sarama.OffsetAndMetadata {
		return sarama.OffsetAndMetadata{Offset: o, Metadata: "brook:v1:1767225600000", LeaderEpoch: -1}
	}
	commit(appID, map[string]map[int32]sarama.OffsetAndMetadata{
		input:                        {0: at(1)},
		appID + "-read-changelog":    {1: at(2)},
		appID + "-rekey-repartition": {0: at(0), 1: at(0)},
	})
	commit(other, map[string]map[int32]sarama.OffsetAndMetadata{input: {0: at(0)}})
	globalDir := filepath.Join(stateDir, appID, "global")
	if err := os.MkdirAll(globalDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := store.WriteCheckpoint(globalDir, map[store.TopicPartition]int64{{Topic: appID + "-rates-changelog", Partition: 0}: 3}); err != nil {
		t.Fatal(err)
	}

	args := []string{"reset", "--application-id", appID, "--bootstrap-server", strings.Join(b.Addrs(), ","), "--state-dir", stateDir,
		"--to-latest", "--keep-topics", appID + "-kept-changelog", "--input-topics", appID + "-named-changelog"}
	code, out, _ := cli(t, nil, args...)
	if code != exitOK {
		t.Fatalf("dry run: exit %d", code)
	}
	lines := []string{"Internal topics to delete (4):",
		"TOPIC PARTITION COMMITTED TARGET STREAM TIME",
		input + " 0 1 3 brook:v1:1767225600000",
		input + " 1 none 2 -",
		appID + "-named-changelog 0 none 3 -",
		appID + "-named-changelog 1 none 2 -",
		appID + "-read-changelog 0 none 3 -",
		appID + "-read-changelog 1 2 2 brook:v1:1767225600000",
		appID + "-rekey-repartition 0 0 internal topic, deleted",
		appID + "-rekey-repartition 1 0 internal topic, deleted",
		"Topics named like internal topics that are kept (5):",
		"Local state:",
		filepath.Join(stateDir, appID) + " to wipe: global (",
	}
	for _, topic := range internal {
		lines = append(lines, topic+" 2 partitions")
	}
	for topic, why := range kept {
		lines = append(lines, topic+": "+why)
	}
	wantLines(t, out, lines...)
	for _, topic := range unrelated {
		if strings.Contains(out, topic+" ") || strings.Contains(out, topic+":") {
			t.Errorf("the plan names %s, which is not the application's", topic)
		}
	}

	if code, _, _ := cli(t, nil, append(args, "--execute")...); code != exitOK {
		t.Fatalf("reset --execute: exit %d", code)
	}
	want := slices.Sorted(slices.Values(slices.Concat(slices.Collect(mapKeys(kept)), unrelated, []string{input})))
	if got := topicsWithPrefix(t, a, appID); !slices.Equal(got, want) {
		t.Errorf("topics after the reset: %v, want %v", got, want)
	}
	got := committedOffsets(t, a, appID)
	wantOffsets := map[string]map[int32]committedOffset{
		input:                      {0: {3, ""}, 1: {2, ""}},
		appID + "-named-changelog": {0: {3, ""}, 1: {2, ""}},
		appID + "-read-changelog":  {0: {3, ""}, 1: {2, ""}},
	}
	if !equalOffsets(got, wantOffsets) {
		t.Errorf("committed offsets after the reset: %v, want %v", got, wantOffsets)
	}
	if got := committedOffsets(t, a, other); got[input][0].Offset != 0 {
		t.Errorf("the reset changed group %s's offsets: %v", other, got)
	}
}

func mapKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestResetOverTLSAndSASL: the reset connects as an App does, with TLS
// (CA and client certificate files) and SASL/SCRAM, the password from
// $BROOK_SASL_PASSWORD or --sasl-password-file; a wrong password fails
// with status 1 and an error that says to check the credentials.
func TestResetOverTLSAndSASL(t *testing.T) {
	s := testutil.NewSecureKafka(t)
	b := s.Broker(t, "SCRAM-SHA-512")
	appID := testutil.TopicName(t, "app")
	b.CreateTopic(t, appID+"-counts-changelog", 1, nil)
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte(s.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"reset", "--application-id", appID, "--bootstrap-server", strings.Join(s.Brokers, ","),
		"--tls-ca", s.CAFile, "--tls-cert", s.CertFile, "--tls-key", s.KeyFile, "--sasl-mechanism", "SCRAM-SHA-512", "--sasl-user", s.User}
	code, out, _ := cli(t, map[string]string{"BROOK_SASL_PASSWORD": s.Password}, args...)
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	wantLines(t, out, appID+"-counts-changelog 1 partitions")
	code, out, _ = cli(t, nil, append(args, "--sasl-password-file", pwFile)...)
	if code != exitOK {
		t.Fatalf("with --sasl-password-file: exit %d", code)
	}
	wantLines(t, out, appID+"-counts-changelog 1 partitions")

	code, _, errOut := cli(t, map[string]string{"BROOK_SASL_PASSWORD": "wrong"}, append(args, "--timeout", "10s")...)
	if code != exitError || !strings.Contains(errOut, "connect to Kafka at") || !strings.Contains(errOut, "SASL") {
		t.Errorf("wrong password: exit %d, want %d and an error about the SASL credentials", code, exitError)
	}
}

// TestResetToTimeAfterTheLastRecord: a partition with no record at or
// after the time is reset to its end, and the plan says why; a partition
// with one is reset to it.
func TestResetToTimeAfterTheLastRecord(t *testing.T) {
	b := testutil.NewBroker(t)
	a := admin(t, b)
	appID, in := testutil.TopicName(t, "app"), testutil.TopicName(t, "in")
	b.CreateTopic(t, in, 2, nil)
	at := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var msgs []*sarama.ProducerMessage
	for i := range 4 {
		// Partition 0: at-2m, at-1m, at, at+1m; partition 1: at-4m.
		msgs = append(msgs, &sarama.ProducerMessage{Value: sarama.StringEncoder("v"), Timestamp: at.Add(time.Duration(i-2) * time.Minute)})
	}
	msgs = append(msgs, &sarama.ProducerMessage{Value: sarama.StringEncoder("v"), Partition: 1, Timestamp: at.Add(-4 * time.Minute)})
	b.Produce(t, in, msgs...)
	if _, err := a.AlterConsumerGroupOffsets(appID, map[string]map[int32]sarama.OffsetAndMetadata{
		in: {0: {Offset: 4, LeaderEpoch: -1}, 1: {Offset: 1, LeaderEpoch: -1}}}, nil); err != nil {
		t.Fatal(err)
	}
	code, out, _ := cli(t, nil, "reset", "--application-id", appID, "--bootstrap-server", strings.Join(b.Addrs(), ","),
		"--to-datetime", at.Format(time.RFC3339Nano))
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	wantLines(t, out, in+" 0 4 2 -", in+" 1 1 1 - (no record at or after the time: the end)")
}

// TestResetRetriesWhileTheCoordinatorLoads: a group coordinator that
// answers COORDINATOR_LOAD_IN_PROGRESS (as Kafka does for a while after
// it starts, or after the coordinator moves) to describing the group,
// fetching, committing and deleting its offsets is an outage, not a
// failure: the reset retries until it answers. The embedded broker is the
// one that can answer with an injected error code.
func TestResetRetriesWhileTheCoordinatorLoads(t *testing.T) {
	b := testutil.NewBroker(t)
	c := b.Embedded()
	if c == nil {
		t.Skip("needs the embedded broker to inject COORDINATOR_LOAD_IN_PROGRESS; on real Kafka TestResetOverTLSAndSASL run against a freshly started broker meets it")
	}
	a := admin(t, b)
	appID, in := testutil.TopicName(t, "app"), testutil.TopicName(t, "in")
	b.CreateTopic(t, in, 1, nil)
	b.CreateTopic(t, appID+"-rekey-repartition", 1, nil)
	b.Produce(t, in, &sarama.ProducerMessage{Value: sarama.StringEncoder("v")}, &sarama.ProducerMessage{Value: sarama.StringEncoder("v")})
	if _, err := a.AlterConsumerGroupOffsets(appID, map[string]map[int32]sarama.OffsetAndMetadata{
		in: {0: {Offset: 2, Metadata: "brook:v1:1", LeaderEpoch: -1}}, appID + "-rekey-repartition": {0: {Offset: 0, LeaderEpoch: -1}}}, nil); err != nil {
		t.Fatal(err)
	}
	const loading = 14 // COORDINATOR_LOAD_IN_PROGRESS
	var mu sync.Mutex
	injected := map[kmsg.Key]int{}
	inject := func(key kmsg.Key, answer func(kmsg.Request) kmsg.Response) {
		c.ControlKey(int16(key), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c.KeepControl()
			mu.Lock()
			defer mu.Unlock()
			if injected[key] >= 2 {
				return nil, nil, false
			}
			injected[key]++
			return answer(req), nil, true
		})
	}
	inject(kmsg.DescribeGroups, func(r kmsg.Request) kmsg.Response {
		req := r.(*kmsg.DescribeGroupsRequest)
		resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
		for _, g := range req.Groups {
			d := kmsg.NewDescribeGroupsResponseGroup()
			d.Group, d.ErrorCode = g, loading
			resp.Groups = append(resp.Groups, d)
		}
		return resp
	})
	inject(kmsg.OffsetFetch, func(r kmsg.Request) kmsg.Response {
		req := r.(*kmsg.OffsetFetchRequest)
		resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
		resp.ErrorCode = loading
		for _, g := range req.Groups {
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group, rg.ErrorCode = g.Group, loading
			resp.Groups = append(resp.Groups, rg)
		}
		return resp
	})
	inject(kmsg.OffsetCommit, func(r kmsg.Request) kmsg.Response {
		req := r.(*kmsg.OffsetCommitRequest)
		resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
		for _, rt := range req.Topics {
			t := kmsg.NewOffsetCommitResponseTopic()
			t.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				p := kmsg.NewOffsetCommitResponseTopicPartition()
				p.Partition, p.ErrorCode = rp.Partition, loading
				t.Partitions = append(t.Partitions, p)
			}
			resp.Topics = append(resp.Topics, t)
		}
		return resp
	})
	inject(kmsg.OffsetDelete, func(r kmsg.Request) kmsg.Response {
		resp := r.(*kmsg.OffsetDeleteRequest).ResponseKind().(*kmsg.OffsetDeleteResponse)
		resp.ErrorCode = loading
		return resp
	})
	code, _, _ := cli(t, nil, "reset", "--application-id", appID, "--bootstrap-server", strings.Join(b.Addrs(), ","), "--execute", "--timeout", "30s")
	if code != exitOK {
		t.Fatalf("exit %d, want 0", code)
	}
	mu.Lock()
	for _, key := range []kmsg.Key{kmsg.DescribeGroups, kmsg.OffsetFetch, kmsg.OffsetCommit, kmsg.OffsetDelete} {
		if injected[key] != 2 {
			t.Errorf("%s answered COORDINATOR_LOAD_IN_PROGRESS %d times, want 2", key.Name(), injected[key])
		}
	}
	mu.Unlock()
	want := map[string]map[int32]committedOffset{in: {0: {0, ""}}}
	if got := committedOffsets(t, a, appID); !equalOffsets(got, want) {
		t.Errorf("committed offsets after the reset: %v, want %v", got, want)
	}
	if got := topicsWithPrefix(t, a, appID); len(got) != 0 {
		t.Errorf("topics %v remain", got)
	}
}
