package runtime

import (
	"errors"
	"testing"

	"github.com/brookstream/brook/internal/assign"
)

// TestTaskErrorNamesTaskOnce: an error the task package made already
// names the task, so the runtime does not name it a second time.
func TestTaskErrorNamesTaskOnce(t *testing.T) {
	id := assign.TaskID{Group: 0, Partition: 1}
	inner := errors.New("task: 0_1: closed")
	for _, c := range []struct {
		what string
		err  error
		want string
	}{
		{"", inner, "brook: task: 0_1: closed"},
		{"commit", inner, "brook: commit: task: 0_1: closed"},
		{"", errors.New(`processor: node "count": boom`), `brook: task 0_1: processor: node "count": boom`},
		{"punctuate", errors.New("boom"), "brook: task 0_1: punctuate: boom"},
		{"", errors.New("task: 0_2: closed"), "brook: task 0_1: task: 0_2: closed"},
	} {
		got := taskError(id, c.what, c.err)
		if got.Error() != c.want || !errors.Is(got, c.err) {
			t.Errorf("taskError(%q, %q) = %q, want %q wrapping it", c.what, c.err, got, c.want)
		}
	}
}
