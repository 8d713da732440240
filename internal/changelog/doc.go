// Package changelog is the Kafka side of state-store changelogging and
// restore, built on sarama:
//
//   - [Producer] wraps a sarama AsyncProducer: Send queues a record, Flush
//     waits for every acknowledgement and returns the failures, Acked gives
//     the next offset per partition (what checkpoints record). The runtime
//     sends sink and changelog records through it, shared under
//     at-least-once and one transactional producer per task under
//     exactly-once. [ProducerConfig] builds the sarama configuration of
//     every such producer (partitioner and transactional id are
//     parameters).
//   - [EnsureTopic] creates a changelog topic compacted with the task's
//     partition count, or checks an existing one; a wrong partition count
//     or cleanup policy is a [*TopicMismatchError].
//   - [Reader] implements store.ChangelogReader: it reads one partition
//     from an offset to the end offset with plain Fetch requests, so it
//     knows exactly where the log ends even when the tail is transaction
//     markers or aborted records. The isolation level is a parameter:
//     read_committed reads up to the last stable offset.
//
// The store package stays free of Kafka clients; the runtime wires these
// types into it.
package changelog
