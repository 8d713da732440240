package runtime

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/task"
	"github.com/brookstream/brook/store"
	"github.com/twmb/franz-go/pkg/kfake"
)

// memberSession is a group session of a given member and generation; only
// MemberID and GenerationID matter to the coordinator requests.
type memberSession struct {
	member string
	gen    int32
}

func (s memberSession) Claims() map[string][]int32                { return nil }
func (s memberSession) MemberID() string                          { return s.member }
func (s memberSession) GenerationID() int32                       { return s.gen }
func (memberSession) MarkOffset(string, int32, int64, string)     {}
func (memberSession) Commit()                                     {}
func (memberSession) ResetOffset(string, int32, int64, string)    {}
func (memberSession) MarkMessage(*sarama.ConsumerMessage, string) {}
func (memberSession) Context() context.Context                    { return context.Background() }

// groupRuntime returns a runtime of application "app" connected to an
// embedded broker with a 3-partition topic "in" and no group member.
func groupRuntime(t *testing.T) *Runtime {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "in"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Metadata.Retry.Backoff = 10 * time.Millisecond
	client, err := sarama.NewClient(c.ListenAddrs(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return &Runtime{cfg: Config{ApplicationID: "app", Sarama: cfg}, client: client, log: slog.New(slog.DiscardHandler)}
}

// TestGroupRequestsReadTheCoordinatorsAnswer: the runtime's own offset
// commit and membership check report what the coordinator says. A member
// the group does not know (or a stale generation) gets an error wrapping
// ErrMembershipLost and the coordinator's answer, so that its tasks are
// closed without a checkpoint; a commit outside any generation (as tools
// make) succeeds and committedOffsets reads it back, with -1 for a
// partition never committed; a refusal that is not about membership is
// not reported as one.
func TestGroupRequestsReadTheCoordinatorsAnswer(t *testing.T) {
	r := groupRuntime(t)
	ctx := context.Background()
	offs := []task.Offset{{Topic: "in", Partition: 0, Offset: 7}, {Topic: "in", Partition: 1, Offset: 3}}

	stale := memberSession{member: "gone", gen: 4}
	err := r.commitOffsets(ctx, stale, offs)
	if !errors.Is(err, ErrMembershipLost) || !errors.Is(err, sarama.ErrIllegalGeneration) {
		t.Fatalf("commit of a stale generation: %v, want ErrMembershipLost and ILLEGAL_GENERATION", err)
	}
	t.Log(err)
	if err := r.checkMembership(ctx, stale); !errors.Is(err, ErrMembershipLost) {
		t.Fatalf("membership check of an unknown member: %v, want ErrMembershipLost", err)
	} else {
		t.Log(err)
	}

	if err := r.commitOffsets(ctx, memberSession{member: "", gen: -1}, offs); err != nil {
		t.Fatalf("commit outside any generation: %v", err)
	}
	got, err := r.committedOffsets(ctx, []store.TopicPartition{{Topic: "in", Partition: 0}, {Topic: "in", Partition: 1}, {Topic: "in", Partition: 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.TopicPartition]int64{{Topic: "in", Partition: 0}: 7, {Topic: "in", Partition: 1}: 3, {Topic: "in", Partition: 2}: -1}
	for tp, w := range want {
		if got[tp] != w {
			t.Errorf("committed offset of %s = %d, want %d (all: %v)", tp, got[tp], w, got)
		}
	}

	err = r.commitOffsets(ctx, memberSession{member: "", gen: -1}, []task.Offset{{Topic: "in", Partition: 0, Offset: 8}, {Topic: "no-such-topic", Partition: 0, Offset: 1}})
	if err == nil || errors.Is(err, ErrMembershipLost) || !strings.Contains(err.Error(), "no-such-topic[0]") {
		t.Fatalf("commit to a topic that does not exist: %v, want an error naming no-such-topic[0] that is not a lost membership", err)
	}
	t.Log(err)
}

// TestForgetTablesKeepsChangelogEntries: after a commit whose store writes
// were applied but whose offsets were not committed, a task's checkpoint
// keeps its changelog entries (restore replays the changelog from there)
// and loses its tables' (their engines may be ahead of the committed
// offset they restore up to, so they restore from the beginning).
func TestForgetTablesKeepsChangelogEntries(t *testing.T) {
	dir := t.TempDir()
	cl := store.TopicPartition{Topic: "app-counts-changelog", Partition: 1}
	tbl := store.TopicPartition{Topic: "rates", Partition: 1}
	tr := &taskRun{
		id: assign.TaskID{Group: 0, Partition: 1}, dir: filepath.Join(dir, "0_1"),
		logged: map[store.TopicPartition]int64{cl: 5, tbl: 9},
		tables: map[store.TopicPartition]bool{tbl: true},
	}
	if err := store.WriteCheckpoint(tr.dir, tr.logged); err != nil {
		t.Fatal(err)
	}
	tr.forgetTables(&Runtime{log: slog.New(slog.DiscardHandler)})
	got, err := store.ReadCheckpoint(tr.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[cl] != 5 {
		t.Fatalf("checkpoint %v, want only %s at 5", got, cl)
	}
}
