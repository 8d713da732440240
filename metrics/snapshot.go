package metrics

import "time"

// Snapshot is every registered App's measurements at one moment.
type Snapshot struct {
	// Apps are the registered Apps, by application id.
	Apps []AppSnapshot
}

// AppSnapshot is one App's measurements.
type AppSnapshot struct {
	// ApplicationID is the App's Config.ApplicationID.
	ApplicationID string
	// State is the App's state: "created", "rebalancing", "restoring",
	// "running", "error" or "stopped".
	State string
	// Tasks are the tasks this instance has run, by task id.
	Tasks []TaskSnapshot
	// Partitions are the input partitions this instance has consumed, by
	// task, topic and partition.
	Partitions []PartitionSnapshot
	// Nodes are the topology's nodes in the tasks this instance has run,
	// by task and node.
	Nodes []NodeSnapshot
	// Stores are the stores of the tasks open now, by task and store.
	Stores []StoreSnapshot
	// Restores are the store partitions this instance has restored, by
	// task, store and partition.
	Restores []RestoreSnapshot
	// Commits times every commit round: a worker committing its tasks
	// (at-least-once: producer flush, store flush, offset commit,
	// checkpoints; exactly-once: one transaction per task). Its Count is
	// the number of commits.
	Commits Histogram
	// Rebalances times every rebalance, from the moment the instance
	// stopped processing for it (or started joining) until the group gave
	// it its new assignment; restoring comes after and is measured by
	// Restores. Its Count is the number of completed rebalances.
	Rebalances Histogram
	// Queries are the interactive-query HTTP requests answered by the
	// App's query handler, by route and status.
	Queries []QuerySnapshot
}

// Task states, as TaskSnapshot.State reports them.
const (
	// TaskRestoring: the task is assigned here and its stores are
	// restoring; it processes nothing yet.
	TaskRestoring = "restoring"
	// TaskRunning: the task is open and processing.
	TaskRunning = "running"
	// TaskClosed: the task ran here earlier and is closed now (a
	// rebalance moved it or it is about to be reopened).
	TaskClosed = "closed"
)

// TaskSnapshot is one task's measurements on this instance.
type TaskSnapshot struct {
	// Task is the task id, "<sub-topology>_<partition>".
	Task string
	// State is TaskRestoring, TaskRunning or TaskClosed.
	State string
	// RecordsProcessed counts the records the task took from its queue
	// and processed (including records an error handler dropped).
	RecordsProcessed int64
	// ProcessLatency times each record: from taking it off the task's
	// queue to handing its output to the producer.
	ProcessLatency Histogram
	// TransactionsCommitted and TransactionsAborted count the task's
	// Kafka transactions under exactly-once (zero under at-least-once).
	TransactionsCommitted, TransactionsAborted int64
	// Fenced counts the times the task was found owned by another
	// instance (exactly-once: a fenced producer or a stale generation).
	Fenced int64
}

// PartitionSnapshot is one input partition of a task.
type PartitionSnapshot struct {
	Task      string
	Topic     string
	Partition int32
	// RecordsConsumed counts the records fetched from the partition into
	// the task's queue.
	RecordsConsumed int64
	// Assigned reports that the partition's task is open here now; the
	// offsets and lags below describe it only then.
	Assigned bool
	// Position is the offset of the next record the task will process
	// (-1: unknown).
	Position int64
	// Committed is the last offset this instance committed for the
	// partition, or the committed offset it started from (-1: unknown).
	Committed int64
	// End is the partition's end offset as last seen: the high watermark,
	// or the last stable offset under exactly-once (read_committed), where
	// records of open transactions cannot be read yet (-1: unknown).
	End int64
	// Lag is End − Position: how many offsets are left to process (0
	// when the only offsets left hold transaction markers or aborted
	// records, which no consumer ever receives). -1 when End or Position
	// is unknown.
	Lag int64
	// CommittedLag is End − Committed, with the same rule: what a restart
	// would process again plus what is left (-1: unknown).
	CommittedLag int64
}

// NodeSnapshot is one node of one task.
type NodeSnapshot struct {
	Task string
	Node string
	// Kind is "source", "processor" or "sink".
	Kind string
	// RecordsProcessed counts the records the node received (for a
	// source: raw records it was handed to deserialize).
	RecordsProcessed int64
	// RecordsProduced counts, for a sink, the records it handed to the
	// producer.
	RecordsProduced int64
	// EndToEndLatency times, for a sink, each record it produced: the
	// wall-clock time at which the task began the work that produced it
	// (processing a record, or a punctuation) minus the record's
	// timestamp. It tells how old results are when they leave.
	EndToEndLatency Histogram
	// DeadLettered counts the records an error handler wrote elsewhere
	// (processor.DeadLetter: to its dead-letter topic) for a failure at
	// this node, and let processing continue.
	DeadLettered int64
	// Dropped counts the records the node dropped, by reason.
	Dropped Drops
}

// Drops counts dropped records by reason (DropReason).
type Drops struct {
	// Late: too late for their window (a closed time, session or sliding
	// window, or a stream–stream join window).
	Late int64
	// Duplicate: dropped by DropDuplicates as duplicates.
	Duplicate int64
	// NullKey and NullValue: records an aggregation or a join cannot take.
	NullKey, NullValue int64
	// Error: records whose failure an error handler answered with
	// Continue without writing them anywhere.
	Error int64
}

// Add adds n to the count of reason.
func (d *Drops) Add(reason DropReason, n int64) {
	switch reason {
	case DropLate:
		d.Late += n
	case DropDuplicate:
		d.Duplicate += n
	case DropNullKey:
		d.NullKey += n
	case DropNullValue:
		d.NullValue += n
	case DropError:
		d.Error += n
	}
}

// Get returns the count of reason.
func (d Drops) Get(reason DropReason) int64 {
	switch reason {
	case DropLate:
		return d.Late
	case DropDuplicate:
		return d.Duplicate
	case DropNullKey:
		return d.NullKey
	case DropNullValue:
		return d.NullValue
	case DropError:
		return d.Error
	}
	return 0
}

// DropReason says why a node dropped a record.
type DropReason int

// The reasons, in the order DropReasons lists them.
const (
	DropLate DropReason = iota
	DropDuplicate
	DropNullKey
	DropNullValue
	DropError
)

// DropReasons returns every DropReason.
func DropReasons() []DropReason {
	return []DropReason{DropLate, DropDuplicate, DropNullKey, DropNullValue, DropError}
}

// String returns the reason's label value: "late", "duplicate",
// "null_key", "null_value" or "error".
func (r DropReason) String() string {
	switch r {
	case DropLate:
		return "late"
	case DropDuplicate:
		return "duplicate"
	case DropNullKey:
		return "null_key"
	case DropNullValue:
		return "null_value"
	case DropError:
		return "error"
	}
	return "unknown"
}

// StoreSnapshot is the size of one store of an open task.
type StoreSnapshot struct {
	Task  string
	Store string
	// Keys is the number of keys the store held when last counted (-1:
	// not counted yet). A persistent store is counted by reading it
	// through, at most once a minute and less often for large stores, so
	// that counting never takes more than about 1% of a core; an
	// in-memory store is counted at every refresh.
	Keys int64
	// KeysAt is when Keys was counted.
	KeysAt time.Time
	// DiskBytes is the size of the store's files on disk (0 for an
	// in-memory store).
	DiskBytes int64
	// Persistent reports a LevelDB store (false: in memory).
	Persistent bool
}

// RestoreSnapshot is one store partition's restores on this instance.
type RestoreSnapshot struct {
	// Task is the task id, or GlobalTask for a global table.
	Task      string
	Store     string
	Partition int32
	// Records counts the changelog records applied by every restore of
	// this store partition on this instance.
	Records int64
	// Remaining is how many changelog offsets the restore in progress
	// still has to read (0 when none is in progress). Like Kafka Streams'
	// remaining-records metric it counts offsets, compacted-away ones and
	// transaction markers included.
	Remaining int64
	// Restoring reports a restore in progress.
	Restoring bool
	// Started is when the last restore began; Done when it ended (zero
	// while it runs).
	Started, Done time.Time
	// LastRecords counts the records the last (or current) restore
	// applied; LastRecords over Done−Started (or over the time since
	// Started) is its rate.
	LastRecords int64
}

// QuerySnapshot is one route and status of the interactive-query HTTP
// handler.
type QuerySnapshot struct {
	// Route is the route's path pattern, such as
	// "/stores/{store}/keys/{key}"; "unknown" for a path of no route.
	Route string
	// Status is the HTTP status code answered.
	Status int
	// Latency times each request; its Count is the number of requests.
	Latency Histogram
}

// Histogram is a distribution of durations in buckets.
type Histogram struct {
	// Bounds are the buckets' inclusive upper bounds, ascending.
	Bounds []time.Duration
	// Counts holds one count per bucket (not cumulative): Counts[i]
	// counts the observations d with Bounds[i-1] < d <= Bounds[i];
	// Counts[len(Bounds)] those above the last bound.
	Counts []uint64
	// Count is the number of observations (the sum of Counts).
	Count uint64
	// Sum is the sum of the observations.
	Sum time.Duration
}

// Quantile estimates the q-quantile (0 <= q <= 1) by linear interpolation
// within the bucket that holds it, as Prometheus' histogram_quantile does.
// It returns 0 for an empty histogram, and the last bound for a quantile
// beyond it.
func (h Histogram) Quantile(q float64) time.Duration {
	if h.Count == 0 || len(h.Counts) == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := q * float64(h.Count)
	var cum float64
	for i, c := range h.Counts {
		prev := cum
		cum += float64(c)
		if cum < rank || c == 0 {
			continue
		}
		if i >= len(h.Bounds) {
			if len(h.Bounds) == 0 {
				return 0
			}
			return h.Bounds[len(h.Bounds)-1]
		}
		lo := time.Duration(0)
		if i > 0 {
			lo = h.Bounds[i-1]
		}
		hi := h.Bounds[i]
		return lo + time.Duration(float64(hi-lo)*(rank-prev)/float64(c))
	}
	if len(h.Bounds) == 0 {
		return 0
	}
	return h.Bounds[len(h.Bounds)-1]
}

// GlobalTask is the Task label of the measurements of global tables
// (topology.GlobalTable), which belong to no task.
const GlobalTask = "global"
