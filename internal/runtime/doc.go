// Package runtime runs a compiled topology on Kafka: it joins the
// application's consumer group with the task assignor (internal/assign),
// creates a task core (internal/task) for each assigned task, restores its
// stores from their changelogs (store.Restore), feeds it records merged in
// timestamp order from its partitions, fires punctuators, and commits.
//
// Commit protocol (at-least-once), per worker, every commit interval or
// when a processor requests it:
//
//  1. confirm the group membership (group.go: a heartbeat with the
//     session's member id and generation);
//  2. flush the producer: every sink and changelog record sent so far is
//     acknowledged; a failure goes to the task that sent it (failure.go),
//     whichever worker's flush saw it;
//  3. flush the stores (task.Commit, overlays);
//  4. commit the consumed offsets to the group with an OffsetCommit
//     request of its own, whose per-partition answer it reads;
//  5. write each task's checkpoint (changelog offsets its data reflects).
//
// A lost membership (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION,
// FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS on the commit, or a
// coordinator that cannot be reached) migrates the worker's tasks
// (loseMembership): their uncommitted work is discarded, nothing more of
// them is written, and the session ends; it is not fatal. The checkpoint
// is also written right after each task's restore, so a crash before the
// first commit does not wipe. A table restores only up to the group's
// committed offset of its source partition (restoreUpTo), as Kafka
// Streams does, so re-processed records see the table as it was.
//
// Record scopes (collector.go): while a record (or a punctuation) is
// processed, its sink records are held, and its changelog and store
// writes (store.Overlay.Mark) can be undone. When it succeeds the sink
// records go to the producer; when it fails (a handler answered Fail)
// they are dropped and the writes rolled back, so every task holds exactly
// the work of the records before the failure. The runtime then stops, but
// first commits every task, under both guarantees: a restart resumes
// exactly at the failed record, with nothing of it applied. A record the
// broker refuses (found at the flush) drops its task's work since the
// last commit instead (the failed record's processing is long over) and
// the other tasks commit; Run returns a *processor.ProductionError naming
// the sink, the output topic and the source record. Other fatal errors
// stop the whole runtime without committing anything more, so a restart
// resumes at or before the record that failed.
//
// Exactly-once (Config.ExactlyOnce; txn.go, commit.go, docs/EXACTLY_ONCE.md):
//
//   - Fencing: every task has its own transactional producer with the id
//     "<application id>-<task id>" (TransactionalID). Opening a task
//     registers the id (InitProducerId) before the task restores: that
//     fences every older producer of the task (a crashed or paused
//     instance) and aborts what it left open. The offsets in each
//     transaction also carry the group generation and member id
//     (KIP-447), so a member that missed a rebalance cannot commit either.
//     Cost: one producer (client, connections, InitProducerId) per task,
//     and one transaction per task per commit.
//   - Commit, per task: wait for the transaction's records (a failed write
//     fails the commit: Kafka cannot commit around it); task.Commit; add
//     the consumed offsets to the transaction; CommitTxn; apply the store
//     overlays to the engines and flush them; write the checkpoint; begin
//     the next transaction (BeginTxn is local, an idle one costs nothing).
//   - State: each persistent store of a task is wrapped in a store.Overlay
//     that keeps writes in memory until their transaction commits. The
//     engine on disk therefore holds committed transactions only, and the
//     checkpoint names the changelog offset it reflects; after a crash
//     (even between CommitTxn and the overlay apply) restore replays the
//     changelog tail from the checkpoint with read_committed, which is
//     idempotent. The checkpoint is also written right after each
//     restore, so a crash before the first commit does not wipe.
//   - Consumers, offset fetches and restores use read_committed. When a
//     session cannot start because a previous owner's open transaction
//     holds offsets of our partitions (UNSTABLE_OFFSET_COMMIT), the
//     runtime registers the transactional ids of its newly assigned tasks,
//     which ends that transaction at once, and joins again.
//   - Errors: a record that fails (handler answered Fail) is rolled back
//     (its held output is never sent, its writes are undone), and every
//     task commits its transaction before the runtime stops: the healthy
//     tasks everything they processed, the failing one the records before
//     the failed record. A write the broker refuses poisons the task's
//     transaction (Kafka cannot commit it): that task's transaction is
//     aborted and its work since the last commit dropped, the other tasks
//     commit, and Run returns a *processor.ProductionError. A fenced task
//     (fenceErrors: stale producer epoch, stale generation; or any other
//     commit failure whose abort the coordinator refuses as fenced,
//     confirmFence) is not fatal: its transaction is aborted, its overlays
//     are discarded, its queue is closed so that its claims return even
//     when blocked on it, the session ends and the instance rejoins, and
//     gets the task back to re-create it if no other instance owns it.
//
// Stopping (shutdown.go): every sarama client dials through a netCutter.
// Once Run's context ends, stopping has Config.ShutdownTimeout (less a
// reserve); past it the cutter closes every connection and refuses new
// ones, which makes the final commit and the closing fail at once, and
// Run returns a *ShutdownTimeoutError naming the tasks whose final commit
// did not complete.
//
// Goroutines: Run owns the consumer-group loop, the producer's result
// reader, the shutdown watch and, with metrics (Config.Meter), the
// monitor that lists end offsets and measures stores (metrics.go), and the
// standby runner, whose copies (one goroutine each) outlive sessions and
// stop after the group closes (standby.go); each group session owns its
// worker goroutines and its probe (probe.go) and waits for them in
// Cleanup. Run returns only after all of them have exited.
//
// Files, one concern each:
//
//   - runtime.go: Config, New, Run, start-up (preflight) and the
//     consumer-group loop;
//   - handler.go: the group handler (Setup, ConsumeClaim, Cleanup);
//   - tasks.go: the task lifecycle (open: store factory, restore, first
//     checkpoint; record scopes; close);
//   - worker.go: the worker loop (process, punctuate, commit when due);
//   - commit.go: the commit paths, at-least-once and exactly-once;
//   - txn.go: the transactional producer of a task, fencing, statistics;
//   - collector.go: the output collector (sink and changelog records);
//   - failure.go: records the producer could not write, attributed to
//     their tasks; dropping a task; fatal commit failures;
//   - group.go: the runtime's own group-coordinator requests (heartbeat,
//     offset commit and fetch) and a lost membership;
//   - producer.go: the partitioner of every producer;
//   - queue.go: a task's record queue, merged in timestamp order;
//   - shutdown.go: the bounded shutdown (netCutter);
//   - connect.go: security (TLS, SASL) checks and connection errors;
//   - guard.go: the start-up dial guard;
//   - lock.go: the state folder's lock;
//   - query.go: what interactive queries read of the running tasks
//     (stores, restore progress, lag);
//   - lag.go: end offsets (ListOffsets), the tails of partitions that hold
//     only transaction markers, and the lag of the open tasks' inputs;
//   - caughtup.go: the caught-up check (MarkEnds, CaughtUp,
//     WaitCaughtUp);
//   - metrics.go: CollectMetrics (the meter's counters plus state, lag and
//     store sizes) and the monitor goroutine.
//   - standby.go: standby and warm-up copies kept current from the
//     changelogs, their status, and the assignor's EndOffsets;
//   - probe.go: probing rebalances (ending the session to rejoin);
//   - status.go: what the status page reads (per-partition committed
//     offset, position and listed end offset, restores, store sizes) and
//     the ring of recent warnings every log record passes (recentlog.go).
package runtime
