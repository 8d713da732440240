// Package assign is brook's consumer-group assignor: a sarama
// BalanceStrategy that assigns tasks instead of bare partitions.
//
// A task is (sub-topology, partition number). It covers that partition of
// every co-partitioned source topic of the sub-topology, so all of them go
// to one member together. Tasks are spread evenly (member task counts
// differ by at most one), stay with their previous owner across rebalances
// when balance allows, and when a task has to move it goes to the member
// with the most restored state for it. Planning is near-linear in the
// number of tasks and members.
//
// The leader also places standby replicas (Config.Standbys) and, when
// the runtime gives it the changelogs' end offsets (Config.EndOffsets),
// warm-up copies in the manner of Kafka Streams' KIP-441; see "Standbys
// and warm-ups" below.
//
// Every member receives only its own part of the assignment, so no group
// message grows with the group beyond one entry per member. Interactive
// queries need the whole assignment (which member and query endpoint runs
// which task); Strategy.Routing assembles it on demand from the group
// coordinator's description of the group (DescribeGroups), where every
// member's endpoint (in its subscription) and tasks (in its assignment)
// already are, standby and warm-up tasks included.
// docs/ASSIGNMENT.md gives the reasons and the figures.
//
// # How it plugs into sarama (v1.61.1)
//
// The runtime creates one Strategy per application instance, sets
// sarama.Config.Consumer.Group.Rebalance.GroupStrategies to it, and
// consumes Strategy.Topics(). The strategy declares its rebalance
// protocols (SupportedProtocols): eager only by default, cooperative and
// eager with Config.Cooperative (see "Cooperative rebalancing" below).
// Under the eager protocol, before each rebalance every member gives up
// all its partitions, and stickiness means it gets the same tasks back
// (with its local state still warm). A rebalance then runs as follows.
//
//  1. Join. Before every JoinGroup, sarama calls SubscriptionUserData on
//     each member (the Strategy implements
//     sarama.SubscriptionUserDataBalanceStrategy) and sends the bytes as
//     the UserData of the member's ConsumerGroupMemberMetadata for the
//     protocol StrategyName. They are a MemberData: the member's query
//     endpoint, the generation and tasks of the last assignment it
//     received (remembered by the strategy, since under the eager protocol
//     the runtime has already closed them), the tasks withheld for it
//     then, and warm state: one sum of the restored changelog offsets
//     that Config.State reports per task, for its tasks and a bounded
//     number of others. A member on the cooperative protocol also sends,
//     in sarama's own fields, the partitions it still holds
//     (OwnedPartitions) and their generation.
//  2. Plan. sarama calls Plan on the group leader only, with every
//     member's metadata (subscribed topics, UserData, OwnedPartitions)
//     and the partitions of every subscribed topic (fresh from a metadata
//     refresh). Plan checks co-partitioning (a *PartitionCountError names
//     the topics and their counts), balances the tasks, withholds those
//     another member still holds, and expands the rest to topic
//     partitions.
//  3. Sync. Still on the leader, sarama calls AssignmentData once per
//     member in the plan and sends the bytes with that member's partitions
//     as the UserData of its ConsumerGroupMemberAssignment. They hold the
//     generation and every sub-topology's partition count (which key
//     routing needs), the member's standby, warm-up and withheld
//     (pending) tasks, and nothing about other members. sarama sends
//     members missing from the plan an empty assignment without user
//     data, so Plan lists every member, even those without tasks.
//  4. Receive. On every member, after SyncGroup, sarama decodes its
//     ConsumerGroupMemberAssignment: its Topics become the session's
//     Claims() (and one ConsumerGroupClaim per partition in ConsumeClaim),
//     and sarama calls OnAssignment (the Strategy implements
//     sarama.OnAssignmentBalanceStrategy) before it creates the session, so
//     before the handler's Setup. OnAssignment decodes the user data and
//     turns the partitions into tasks; Local returns them. The runtime's
//     Setup tells the strategy its member id (SetMemberID). On the
//     cooperative protocol only a session's first round ends in Setup:
//     sarama runs later rounds inside the session, calling OnAssignment,
//     ending the claims of revoked partitions and starting those of added
//     ones, so Local changes during the session.
//  5. Route. When a query needs a task this member does not run, Routing
//     describes the group once per generation (Config.Describe) and
//     checks that the group is stable and that every member's assignment
//     belongs to this member's generation.
//
// sarama also keeps a received assignment's UserData as the member's next
// static user data; SubscriptionUserData replaces that on every join. If it
// ever failed, sarama would send those assignment bytes instead, which the
// leader's decoder rejects by their kind byte, treating the member as new.
//
// # Cooperative rebalancing
//
// With Config.Cooperative the strategy supports sarama's cooperative
// protocol (KIP-429), which sarama uses when every strategy configured
// on the member supports it. A member then keeps its session and its
// partitions while the group rebalances: retained tasks never stop. What
// changes:
//
//   - Withholding (leader). A member reports the partitions it holds
//     (OwnedPartitions); eager members report none. After balancing, a
//     task planned on member B is withheld from B when another member
//     still holds a partition of it that B does not: none of the task's
//     partitions go to B in this round, so no partition ever has two
//     owners, and a task's partitions are never split. The member holding
//     the task finds it missing from its new assignment and gives it up.
//     PlanReport.Withheld counts the withheld tasks; the leader logs them
//     at Info. The leader withholds whatever its own Config.Cooperative
//     says, so a group may switch protocols member by member.
//   - The follow-up (sarama). A member that gave up partitions rejoins at
//     once, which makes the whole group rebalance again. Nobody holds the
//     withheld task any more, and the leader gives it to its target: the
//     withholding plan sent B its withheld tasks (MemberAssignment.Pending),
//     B reports them back (MemberData.Pending), and the leader counts that
//     as a claim like ownership. Without it the task would be planned
//     afresh, and the member that just gave it up, still the warmest, could
//     take it back (a ping-pong). Since the claims of the follow-up are the
//     first plan's assignment again, the follow-up completes the moves and
//     changes nothing else, unless members report something new meanwhile
//     (a join, a warm-up that caught up, warm state a member did not report
//     before). While its target stays in the group, a withheld task does
//     not go back to the member that gave it up (if the target leaves
//     first, the task is planned afresh).
//   - Ownership by the protocol and by brook's data. A member's previous
//     tasks, for stickiness, are MemberData.Owned: the tasks of the last
//     assignment it received. On the cooperative protocol they equal what
//     it reports holding; when they differ (it could not read its last
//     assignment), the leader logs a warning and counts both, since the
//     member does run what it holds.
//   - Copies of a task given up (runtime). The plan that moves a task away
//     may give its previous owner a standby of it (it is the warmest), or,
//     rarely, a warm-up. OnAssignment accepts that: the task is not among
//     the member's new Tasks. The runtime must close the active task
//     (finish processing, commit, close its stores) before it opens the
//     copy over the same stores.
//   - Pending tasks (runtime). MemberAssignment.Pending needs nothing from
//     the runtime: the strategy reports the tasks at the next join, which
//     the follow-up makes happen at once.
//   - Queries. Every round is a generation with its own assignments, and
//     Routing keeps requiring one generation throughout; a withheld task
//     has no owner until the follow-up, so a query for it is not ready
//     until then.
//   - Upgrading. A leader of an older brook does not withhold: it would
//     give a cooperative member's tasks to others while that member still
//     runs them, and an older member does not report its pending tasks.
//     So turn Config.Cooperative on only once every instance runs a brook
//     that withholds (a rolling restart with it off, then one with it on),
//     and run one brook version per application id.
//
// # Standbys and warm-ups
//
// A standby of a task is a copy of its stores on another member, kept
// current from the task's changelogs without processing, so that the
// task can fail over there and restore only the tail. A warm-up is the
// same kind of copy, placed because the member is meant to take the task
// over. The leader plans both; the runtime runs them. What each side
// does:
//
//   - Placement (leader). Each stateful task (TaskGroup.Stateless false)
//     gets up to Config.Standbys standbys on distinct members that may
//     run it, never on the member running it or warming it up. Previous
//     standbys stay where they are, then members with restored state for
//     the task are preferred, warmest first, then the least loaded;
//     standby counts per member differ by at most one where the
//     exclusions allow. With fewer members than Standbys+1, as many as
//     possible are placed (PlanReport.MissingStandbys counts the rest).
//   - Warm-ups (leader, only with Config.EndOffsets). After balancing,
//     the leader asks EndOffsets for the stateful tasks whose target is
//     not their previous owner (none in a steady rebalance). A member's
//     lag for a task is the end offsets summed minus its reported sum
//     (MemberData.Warm; nothing reported: the whole sum); the previous
//     owner and tasks without end offsets are caught up by definition.
//     When the target lags more than Config.AcceptableRecoveryLag and the
//     previous owner, or else the warmest member, is caught up, the task
//     stays active there and the target gets a warm-up, at most
//     Config.MaxWarmups across the group (continuing warm-ups first).
//     When nobody is caught up the target gets the task at once. The
//     next plans send a task back to the member warming it up, so a
//     warm-up ends where it started, and move it once its lag is within
//     bound. If EndOffsets fails, the plan is made without warm-ups and
//     the error is logged and kept in LastPlan (an *EndOffsetsError).
//   - Failover. When a member leaves, its tasks go to the members with
//     the most restored state, which are their standbys; with warm-ups,
//     a caught-up standby wins even over the balanced target.
//   - Running them (runtime). After OnAssignment, Local returns the
//     member's Tasks (to process), Standby and Warmup (to restore and
//     keep current from the changelogs: read_committed under
//     exactly-once, no processing, no commits of source offsets). Their
//     restored offsets must be in LocalState.Restored like those of
//     active tasks: the next subscription reports them, which is what
//     keeps standbys sticky and makes the leader prefer them.
//   - Probing rebalances (runtime). A member whose assignment has
//     warm-ups also has ProbingRebalance > 0: it should make the group
//     rebalance (with sarama: end the session and call Consume again,
//     which rejoins) once that long has passed without a rebalance, or
//     earlier as soon as all its warm-ups are within
//     AcceptableRecoveryLag. Only members with warm-ups are told, so at
//     most MaxWarmups members trigger it.
//   - Queries. Routing's Assignment lists each host's Standby and
//     Warmup tasks; Assignment.Standbys(t) and Warmups(t) find the
//     members with a copy of t, for queries that may be served from a
//     standby with its lag stated.
//   - Reporting. LastPlan describes the leader's last plan: standbys
//     placed and missing, warm-ups, tasks held back, the probing delay,
//     an EndOffsets failure and the planning time.
//
// Defaults: Standbys 0, AcceptableRecoveryLag 10,000 offsets and
// MaxWarmups 2 (Kafka Streams' defaults), ProbingInterval one minute
// (Kafka Streams: ten; see DefaultProbingInterval), EndOffsetsTimeout 5 s.
// Only the leader's settings count; every instance should have the same.
//
// The byte formats of MemberData and MemberAssignment are described in
// codec.go; they are versioned and later versions only append fields
// (version 2 added the standby and warm-up sets and the probing delay,
// version 3 the pending tasks; earlier payloads still decode).
package assign
