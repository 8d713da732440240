package topology

import (
	"context"

	"github.com/brookstream/brook/query"
)

// Status returns a snapshot of this instance for operators: its state,
// the group's instances and their tasks, this instance's tasks and their
// states, per input partition the committed offset, position, log end
// offset and lag, the restores of its stores, the stores' sizes and the
// last warnings it logged; it is query.StatusOf(ctx, a). ctx bounds the
// request for the partitions' end offsets. The query handler serves it as
// GET /status and draws it at GET /status/ui (docs/OPERATIONS.md).
func (a *App) Status(ctx context.Context) query.Status { return query.StatusOf(ctx, a) }
