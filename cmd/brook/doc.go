// Command brook holds operators' tools for brook applications.
//
// Install it with
//
//	go install github.com/brookstream/brook/cmd/brook@<version>
//
// or run it from a checkout of the module with go run
// github.com/brookstream/brook/cmd/brook.
//
// # reset
//
//	brook reset --application-id <id> [--to-earliest | --to-latest | --to-datetime <RFC 3339> | --to-timestamp <ms>]
//	            [--input-topics a,b] [--state-dir <dir>] [--keep-topics x,y] [--execute]
//	            [--bootstrap-server host:port,...] [--tls-ca f --tls-cert f --tls-key f] [--sasl-mechanism m --sasl-user u]
//
// reset makes an application process its input again from a chosen point
// with empty state, like Kafka Streams' kafka-streams-application-reset.
// It works on the application's consumer group, whose id is the
// application id (topology.Config.ApplicationID), and:
//
//   - resets the group's committed offsets of every partition of its input
//     topics (those the group has committed offsets for, other than its
//     internal topics, plus --input-topics) to the earliest offset
//     (default), the latest, or the first offset at or after a time; the
//     offsets are committed with empty metadata, which clears the stream
//     time brook keeps there ("brook:v1:<ms>"), so the application starts
//     its stream time again from the first record it reads;
//   - deletes the group's committed offsets of its internal topics, then
//     the internal topics themselves: every topic named
//     "<application-id>-...-changelog", "-repartition",
//     "-subscription-registration-topic" or "-subscription-response-topic",
//     except those it keeps and says why (--keep-topics, topics that look
//     like another application's when a consumer group "<application-id>-..."
//     matches them, a global table's topic found in the local state, a
//     "-changelog" topic the group reads as input); it waits until the
//     deletions show in the cluster's metadata;
//   - wipes the local state folder <state-dir>/<application-id> when
//     --state-dir is given, after taking the lock a running instance holds
//     on it.
//
// By default it is a dry run: it prints exactly what it would do (topics
// with their partition counts, each input partition's committed offset
// and target offset, the state folder) and changes nothing. --execute
// does it. It refuses, in both modes, while the group has active members,
// naming them; run it after stopping every instance of the application.
//
// Connection: --bootstrap-server (or --brokers), default $KAFKA_BROKERS;
// TLS with --tls-ca, and a client certificate with --tls-cert and
// --tls-key; SASL with --sasl-mechanism (PLAIN, SCRAM-SHA-256 or
// SCRAM-SHA-512) and --sasl-user, the password from $BROOK_SASL_PASSWORD
// or --sasl-password-file. The clients are configured as an App's
// (topology.Config.SaramaConfig).
//
// Exit status: 0 when done (or nothing to do), 1 on an error, 2 on a bad
// command line, 3 when it refused (active group members, a locked or
// unrecognised state folder). See docs/OPERATIONS.md.
package main
