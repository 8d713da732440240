// Package changelog is the Kafka side of state-store changelogging and
// restore, built on sarama:
//
//   - [Writer] implements store.ChangelogWriter over a sarama SyncProducer
//     or AsyncProducer it owns, with Flush (wait for every acknowledgement)
//     and Offsets (the next offset per changelog partition, for
//     checkpoints).
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
