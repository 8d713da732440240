package runtime

import (
	"context"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/internal/task"
)

// fakeSession is a consumer group session with fixed claims and no broker.
type fakeSession struct {
	ctx    context.Context
	claims map[string][]int32
}

func (s *fakeSession) Claims() map[string][]int32                  { return s.claims }
func (s *fakeSession) MemberID() string                            { return "member" }
func (s *fakeSession) GenerationID() int32                         { return 1 }
func (s *fakeSession) MarkOffset(string, int32, int64, string)     {}
func (s *fakeSession) Commit()                                     {}
func (s *fakeSession) ResetOffset(string, int32, int64, string)    {}
func (s *fakeSession) MarkMessage(*sarama.ConsumerMessage, string) {}
func (s *fakeSession) Context() context.Context                    { return s.ctx }

func newFakeSession(claims map[string][]int32) *fakeSession {
	return &fakeSession{ctx: context.Background(), claims: claims}
}

// TestSetupFailureAfterASessionDoesNotPanic: a session runs and ends, then
// the next generation's assignment cannot be read (here: a claimed topic
// that no sub-topology reads, as when a rolling upgrade changes the
// topology). Setup fails; sarama then calls Cleanup for that session,
// which must not close the previous session's stop channel again (a
// panic: close of closed channel).
func TestSetupFailureAfterASessionDoesNotPanic(t *testing.T) {
	r, err := New(Config{Graph: &task.Graph{SubTopologies: []*task.SubTopology{{ID: 0, SourceTopics: []string{"in"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	h := &handler{r: r}
	first := newFakeSession(map[string][]int32{})
	if err := h.Setup(first); err != nil {
		t.Fatalf("first Setup: %v", err)
	}
	if err := h.Cleanup(first); err != nil {
		t.Fatalf("first Cleanup: %v", err)
	}

	for i := 0; i < 2; i++ {
		bad := newFakeSession(map[string][]int32{"renamed": {0}})
		if err := h.Setup(bad); err == nil {
			t.Fatal("Setup accepted a claim of a topic no sub-topology reads")
		}
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Fatalf("Cleanup after a failed Setup panicked: %v", p)
				}
			}()
			if err := h.Cleanup(bad); err != nil {
				t.Fatalf("Cleanup after a failed Setup: %v", err)
			}
		}()
	}
	fatal := r.failed()
	if fatal == nil || !strings.Contains(fatal.Error(), "renamed") {
		t.Fatalf("the runtime recorded %v, want a fatal error naming the unreadable claim", fatal)
	}
}
