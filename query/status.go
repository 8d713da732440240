package query

import (
	"context"
	"slices"
	"time"

	"github.com/brookstream/brook/internal/assign"
	"github.com/brookstream/brook/internal/runtime"
)

// Status is a snapshot of one instance of an application for operators:
// what the status page (GET /status/ui) shows and GET /status returns as
// JSON. It is taken by StatusOf (topology's App.Status). Lists are never
// nil, so the JSON always has them (possibly empty).
type Status struct {
	// ApplicationID is the application (the consumer group).
	ApplicationID string `json:"application_id"`
	// Endpoint is this instance's query endpoint (Config.QueryEndpoint).
	Endpoint string `json:"endpoint"`
	// State is the instance's state: "created", "rebalancing",
	// "restoring", "running", "error" or "stopped".
	State string `json:"state"`
	// Guarantee is "at_least_once" or "exactly_once".
	Guarantee string `json:"guarantee"`
	// Time is when the snapshot was taken.
	Time time.Time `json:"time"`
	// Generation is the consumer-group generation of the assignment
	// below; -1 before the first assignment.
	Generation int32 `json:"generation"`
	// Instances are the group's instances and their tasks, from the
	// current assignment.
	Instances []Instance `json:"instances"`
	// Tasks are this instance's tasks and their states (and "global" for
	// the global tables, when the topology has any).
	Tasks []TaskState `json:"tasks"`
	// Partitions are the input partitions of this instance's running
	// tasks: committed offset, position, log end offset and lag.
	Partitions []PartitionState `json:"partitions"`
	// Restores are the last restore of each store partition of this
	// instance's tasks (in progress or done).
	Restores []RestoreState `json:"restores"`
	// Stores are the sizes of the stores of this instance's running
	// tasks and of its global tables.
	Stores []StoreSize `json:"stores"`
	// KeyValueStores are the key-value stores a key can be looked up in
	// (GET /stores/{store}/keys/{key}), with how keys are written.
	KeyValueStores []LookupStore `json:"key_value_stores"`
	// RecentWarnings are the last 50 records this instance logged at
	// warning level or above, oldest first.
	RecentWarnings []LogEntry `json:"recent_warnings"`
	// Problems says what could not be measured for this snapshot (the
	// brokers did not answer the end-offset request, a store folder could
	// not be read); the figures concerned are marked where they are.
	Problems []string `json:"problems"`
}

// The Status.Guarantee values.
const (
	GuaranteeAtLeastOnce = "at_least_once"
	GuaranteeExactlyOnce = "exactly_once"
)

// The TaskState.State values.
const (
	// TaskRunning: the task is open and processing (and queryable).
	TaskRunning = "running"
	// TaskRestoring: the task is assigned here and restoring its stores
	// from their changelogs.
	TaskRestoring = "restoring"
	// TaskAssigned: the task is assigned here but not open: the group is
	// rebalancing or the task is being set up.
	TaskAssigned = "assigned"
	// TaskStopped: the instance has stopped (Status.State "stopped" or
	// "error"); the task was assigned here when it stopped.
	TaskStopped = "stopped"
)

// The TaskState.Role values.
const (
	// RoleActive: the task is assigned here to process.
	RoleActive = runtime.RoleActive
	// RoleStandby: this instance keeps a standby copy of the task's
	// stores (topology.Config.NumStandbyReplicas).
	RoleStandby = runtime.RoleStandby
	// RoleWarmup: this instance warms the task's stores up, to take the
	// task over once caught up.
	RoleWarmup = runtime.RoleWarmup
)

// TaskState is one task of this instance.
type TaskState struct {
	// Task is "<sub-topology>_<partition>", or GlobalTaskName.
	Task string `json:"task"`
	// SubTopology and Partition identify the task (-1 and -1 for the
	// global tables).
	SubTopology int32 `json:"sub_topology"`
	Partition   int32 `json:"partition"`
	// Role is RoleActive, RoleStandby or RoleWarmup ("active" for the
	// global tables).
	Role string `json:"role"`
	// State is TaskRunning, TaskRestoring, TaskAssigned or TaskStopped.
	// A standby or warm-up copy is TaskRestoring until it has reached
	// its changelogs' ends once, TaskRunning while it follows them.
	State string `json:"state"`
	// RestoredRecords is how many changelog records the task's stores
	// restored when it last opened (for the global tables: at start-up);
	// for a standby or warm-up copy, how many it has applied since it
	// started here.
	RestoredRecords int64 `json:"restored_records"`
	// Lag is the sum of the lag of its input partitions (Partitions);
	// for a standby or warm-up copy, how far its stores are behind their
	// changelogs: the end offsets (last stable offsets under
	// exactly-once) minus the local offsets, summed.
	Lag int64 `json:"lag"`
}

// PartitionState is where one input partition of a running task stands.
type PartitionState struct {
	Task      string `json:"task"`
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	// Committed is the group's committed offset: the last one this
	// instance committed, or the one the task started from; -1 when the
	// group has none yet.
	Committed int64 `json:"committed"`
	// Position is the offset of the next record the task processes: the
	// end when only transaction markers (and, under exactly-once,
	// aborted records) lie between it and the end.
	Position int64 `json:"position"`
	// End is the log end offset and EndKind what it is:
	// "high_watermark" (at-least-once), "last_stable_offset"
	// (exactly-once: records of open transactions cannot be read yet),
	// both listed from the partition's leader when the snapshot was
	// taken (reused for half a second), or "last_fetch" when listing
	// failed: the high watermark of the consumer's last fetch (see
	// Status.Problems).
	End     int64  `json:"end"`
	EndKind string `json:"end_kind"`
	// Lag is End - Position, never negative: 0 when every record below
	// the end is processed, also on a partition that ends with
	// transaction markers (gaps of more than 32 offsets are not read, and
	// count the markers inside them).
	Lag int64 `json:"lag"`
}

// RestoreState is the last restore of one store partition of a task of
// this instance.
type RestoreState struct {
	Task      string `json:"task"`
	Store     string `json:"store"`
	Partition int32  `json:"partition"`
	// Restored of Total changelog offsets were read (compacted changelogs
	// have gaps, so this counts offsets, not records;
	// TaskState.RestoredRecords counts records).
	Restored int64 `json:"restored"`
	Total    int64 `json:"total"`
	// Done reports that the restore finished.
	Done bool `json:"done"`
}

// StoreSize is the size of one store of a running task (or of a global
// table, task GlobalTaskName).
type StoreSize struct {
	Task  string `json:"task"`
	Store string `json:"store"`
	// Kind is "key-value", "window", "session", "ttl" or "versioned".
	Kind string `json:"kind"`
	// Keys is the number of keys of an in-memory store; absent for a
	// persistent one (LevelDB keeps no count, and counting reads every
	// key).
	Keys *int64 `json:"keys,omitempty"`
	// BytesOnDisk is the size of a persistent store's folder, measured
	// when the snapshot was taken; absent for an in-memory store.
	BytesOnDisk *int64 `json:"bytes_on_disk,omitempty"`
}

// LookupStore is a key-value store whose keys can be looked up.
type LookupStore struct {
	Store string `json:"store"`
	// KeyFormat says how a key is written in the URL ("string", "int64
	// (decimal)", "JSON", ...).
	KeyFormat string `json:"key_format"`
}

// LogEntry is one record of the instance's log at warning level or
// above.
type LogEntry struct {
	Time time.Time `json:"time"`
	// Level is "WARN" or "ERROR" (or "ERROR+4" and the like for custom
	// levels).
	Level   string `json:"level"`
	Message string `json:"message"`
	// Action is what the operator should do: every warning brook logs
	// has one ("" for records without an "action" attribute).
	Action string `json:"action"`
	// Attrs are the record's other attributes, group names joined to keys
	// with dots.
	Attrs []LogAttr `json:"attrs"`
}

// LogAttr is one attribute of a LogEntry, its value as text.
type LogAttr struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// StatusOf takes a snapshot of app's instance. It lists the input
// partitions' end offsets from their leaders (ctx bounds that) and
// measures the stores' folders on disk; what it cannot measure is said in
// Status.Problems, never an error: the snapshot matters most when
// something is wrong. A nil App, or one not made by topology.NewApp,
// gives a Status whose Problems say so.
func StatusOf(ctx context.Context, app App) Status {
	a, err := handleOf(app, "StatusOf")
	if err != nil {
		return Status{State: "unknown", Generation: -1, Time: time.Now(), Instances: []Instance{}, Tasks: []TaskState{},
			Partitions: []PartitionState{}, Restores: []RestoreState{}, Stores: []StoreSize{}, KeyValueStores: []LookupStore{},
			RecentWarnings: []LogEntry{}, Problems: []string{err.Error()}}
	}
	return a.status(ctx)
}

func (a Handle) status(ctx context.Context) Status {
	rt := a.rt
	s := Status{
		ApplicationID: rt.ApplicationID(), Endpoint: rt.Endpoint(), State: rt.State().String(),
		Guarantee: GuaranteeAtLeastOnce, Time: time.Now(), Generation: -1,
		Instances: []Instance{}, Tasks: []TaskState{}, Partitions: []PartitionState{}, Restores: []RestoreState{},
		Stores: []StoreSize{}, KeyValueStores: []LookupStore{}, RecentWarnings: []LogEntry{}, Problems: []string{},
	}
	if rt.ExactlyOnce() {
		s.Guarantee = GuaranteeExactlyOnce
	}
	if ins, gen, err := a.instances(ctx); err == nil {
		s.Instances, s.Generation = ins, gen
	} else if rt.State() == runtime.Running {
		// Before the first assignment there are no instances to list;
		// once running, not knowing them is worth saying.
		s.Problems = append(s.Problems, "instances of the group: "+err.Error())
	}

	parts, err := rt.PartitionStatus(ctx)
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	lag := map[assign.TaskID]int64{}
	for _, p := range parts {
		s.Partitions = append(s.Partitions, PartitionState{Task: p.Task.String(), Topic: p.Topic, Partition: p.Partition,
			Committed: p.Committed, Position: p.Position, End: p.End, EndKind: p.EndKind, Lag: p.Lag})
		lag[p.Task] += p.Lag
	}
	s.Tasks = a.taskStates(s.State, lag)

	for _, r := range rt.RestoreHistory() {
		s.Restores = append(s.Restores, RestoreState{Task: r.Task.String(), Store: r.Store, Partition: r.Partition,
			Restored: r.Restored, Total: r.Total, Done: r.Done})
	}

	sizes, err := rt.StoreSizes()
	if err != nil {
		s.Problems = append(s.Problems, err.Error())
	}
	for _, z := range sizes {
		out := StoreSize{Task: taskName(z.Task), Store: z.Store}
		if spec := rt.Graph().Stores[z.Store]; spec != nil {
			out.Kind = spec.Kind
		}
		if z.Keys >= 0 {
			out.Keys = &z.Keys
		}
		if z.Bytes >= 0 {
			out.BytesOnDisk = &z.Bytes
		}
		s.Stores = append(s.Stores, out)
	}

	for _, name := range a.storeNames() {
		if q, ok := rt.Graph().Stores[name].Query.(kvCodec); ok {
			s.KeyValueStores = append(s.KeyValueStores, LookupStore{Store: name, KeyFormat: q.keyFormat()})
		}
	}

	for _, r := range rt.RecentWarnings() {
		e := LogEntry{Time: r.Time, Level: r.Level.String(), Message: r.Message, Action: r.Action, Attrs: []LogAttr{}}
		for _, at := range r.Attrs {
			e.Attrs = append(e.Attrs, LogAttr{Key: at.Key, Value: at.Value})
		}
		s.RecentWarnings = append(s.RecentWarnings, e)
	}
	return s
}

// taskStates lists this instance's tasks in the current assignment with
// their states, and the global tables as GlobalTaskName.
func (a Handle) taskStates(appState string, lag map[assign.TaskID]int64) []TaskState {
	rt := a.rt
	out := []TaskState{}
	stopped := appState == runtime.Stopped.String() || appState == runtime.Error.String()
	if rt.HasGlobals() {
		ts := TaskState{Task: GlobalTaskName, SubTopology: -1, Partition: -1, Role: RoleActive, State: TaskRestoring, RestoredRecords: rt.GlobalRestoredRecords()}
		switch {
		case stopped:
			ts.State = TaskStopped
		case rt.GlobalsReady():
			ts.State = TaskRunning
		case appState == runtime.Created.String():
			ts.State = TaskAssigned
		}
		out = append(out, ts)
	}
	asg, ok := rt.Strategy().Local()
	if !ok {
		return out
	}
	open := rt.OpenTasks()
	restored := rt.RestoredRecords()
	restoring := map[assign.TaskID]bool{}
	for _, p := range rt.RestoreProgress() {
		for _, id := range asg.Tasks {
			if id.Partition == p.Partition && int(id.Group) < len(rt.Graph().SubTopologies) &&
				slices.Contains(rt.Graph().SubTopologies[id.Group].Stores, p.Store) {
				restoring[id] = true
			}
		}
	}
	for _, id := range asg.Tasks {
		ts := TaskState{Task: id.String(), SubTopology: id.Group, Partition: id.Partition, Role: RoleActive, State: TaskAssigned,
			RestoredRecords: restored[id], Lag: lag[id]}
		_, isOpen := slices.BinarySearchFunc(open, id, assign.TaskID.Compare)
		switch {
		case stopped:
			ts.State = TaskStopped
		case isOpen:
			ts.State = TaskRunning
		case restoring[id]:
			ts.State = TaskRestoring
		}
		out = append(out, ts)
	}
	copies := map[assign.TaskID]runtime.StandbyStatus{}
	for _, c := range rt.StandbyStatus() {
		copies[c.Task] = c
	}
	for _, set := range []struct {
		role  string
		tasks []assign.TaskID
	}{{RoleStandby, asg.Standby}, {RoleWarmup, asg.Warmup}} {
		for _, id := range set.tasks {
			ts := TaskState{Task: id.String(), SubTopology: id.Group, Partition: id.Partition, Role: set.role, State: TaskAssigned}
			c, ok := copies[id]
			switch {
			case stopped:
				ts.State = TaskStopped
			case ok && c.CaughtUp:
				ts.State = TaskRunning
			case ok:
				ts.State = TaskRestoring
			}
			if ok {
				ts.RestoredRecords, ts.Lag = c.Records, c.Lag
			}
			out = append(out, ts)
		}
	}
	return out
}
