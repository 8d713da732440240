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
// Every member receives only its own part of the assignment, so no group
// message grows with the group beyond one entry per member. Interactive
// queries need the whole assignment (which member and query endpoint runs
// which task); Strategy.Routing assembles it on demand from the group
// coordinator's description of the group (DescribeGroups), where every
// member's endpoint (in its subscription) and tasks (in its assignment)
// already are. docs/ASSIGNMENT.md gives the reasons and the figures.
//
// # How it plugs into sarama (v1.61.1)
//
// The runtime creates one Strategy per application instance, sets
// sarama.Config.Consumer.Group.Rebalance.GroupStrategies to it, and
// consumes Strategy.Topics(). The strategy declares no rebalance protocol,
// so sarama uses the eager one: before each rebalance every member gives
// up all its partitions, and stickiness means it gets the same tasks back
// (with its local state still warm). A rebalance then runs as follows.
//
//  1. Join. Before every JoinGroup, sarama calls SubscriptionUserData on
//     each member (the Strategy implements
//     sarama.SubscriptionUserDataBalanceStrategy) and sends the bytes as
//     the UserData of the member's ConsumerGroupMemberMetadata for the
//     protocol StrategyName. They are a MemberData: the member's query
//     endpoint, the generation and tasks of the last assignment it
//     received (remembered by the strategy, since under the eager protocol
//     the runtime has already closed them), and warm state: one sum of the
//     restored changelog offsets that Config.State reports per task, for
//     its tasks and a bounded number of others.
//  2. Plan. sarama calls Plan on the group leader only, with every
//     member's metadata (subscribed topics and UserData) and the partitions
//     of every subscribed topic (fresh from a metadata refresh). Plan
//     checks co-partitioning (a *PartitionCountError names the topics and
//     their counts), balances the tasks and expands them to topic
//     partitions.
//  3. Sync. Still on the leader, sarama calls AssignmentData once per
//     member in the plan and sends the bytes with that member's partitions
//     as the UserData of its ConsumerGroupMemberAssignment. They hold the
//     generation and every sub-topology's partition count (which key
//     routing needs), and nothing about other members. sarama sends
//     members missing from the plan an empty assignment without user
//     data, so Plan lists every member, even those without tasks.
//  4. Receive. On every member, after SyncGroup, sarama decodes its
//     ConsumerGroupMemberAssignment: its Topics become the session's
//     Claims() (and one ConsumerGroupClaim per partition in ConsumeClaim),
//     and sarama calls OnAssignment (the Strategy implements
//     sarama.OnAssignmentBalanceStrategy) before it creates the session, so
//     before the handler's Setup. OnAssignment decodes the user data and
//     turns the partitions into tasks; Local returns them. The runtime's
//     Setup tells the strategy its member id (SetMemberID).
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
// The byte formats of MemberData and MemberAssignment are described in
// codec.go; they are versioned and later versions only append fields.
package assign
