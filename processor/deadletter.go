package processor

import (
	"errors"
	"log/slog"
	"strconv"
	"time"
)

// Headers a dead-letter record carries besides the original record's own
// and the lineage header (HeaderLineage), which names the failed source
// record, the application and the node where the error happened. (Before
// the lineage header, dead-letter records had brook.dlq.topic,
// brook.dlq.partition, brook.dlq.offset and brook.dlq.node headers; read
// the source record's location with LineageOf now.)
const (
	// HeaderDLQError holds the error message.
	HeaderDLQError = "brook.dlq.error"
	// HeaderDLQTimestamp is the source record's timestamp in Unix
	// milliseconds.
	HeaderDLQTimestamp = "brook.dlq.timestamp"
	// HeaderDLQTime is when the record was dead-lettered, in Unix
	// milliseconds.
	HeaderDLQTime = "brook.dlq.time"
)

// DeadLetterRecord builds the dead-letter record for a failure: the
// original key and value bytes, unchanged, on topic, with the original
// headers (less any lineage header they had) followed by the lineage
// header of the failed record (ec's topic, partition, offset, application
// id and node) and the brook.dlq.* headers. The partition is
// the source partition when the dead-letter topic is expected to mirror
// the source's partitioning, else -1 (key hash); DeadLetter uses -1.
func DeadLetterRecord(topic string, ec ErrorContext, now time.Time) ProducedRecord {
	msg := "<nil>"
	if ec.Err != nil {
		msg = ec.Err.Error()
	}
	h := Lineage{ApplicationID: ec.ApplicationID, Node: ec.Node, Topic: ec.Topic, Partition: ec.Partition, Offset: ec.Offset}.AppendTo(ec.Headers)
	h = append(h,
		Header{Key: HeaderDLQError, Value: []byte(msg)},
		Header{Key: HeaderDLQTimestamp, Value: strconv.AppendInt(nil, ec.Timestamp.UnixMilli(), 10)},
		Header{Key: HeaderDLQTime, Value: strconv.AppendInt(nil, now.UnixMilli(), 10)},
	)
	ts := ec.Timestamp
	if ts.IsZero() {
		ts = now
	}
	return ProducedRecord{Topic: topic, Partition: -1, Key: ec.Key, Value: ec.Value, Timestamp: ts, Headers: h}
}

// TopicWriter is implemented by error handlers that write records to
// topics of their own, such as the handler DeadLetter returns.
// topology.WithDeserializationHandler and topology.WithProcessingHandler
// remember those topics, and the Kafka runtime checks before joining its
// consumer group that each of them exists, as it does for source and sink
// topics: a missing dead-letter topic is a start-up error, not a failure
// at the first bad record.
type TopicWriter interface {
	// OutputTopics returns the topics the handler writes to.
	OutputTopics() []string
}

// DeadLetterHandler is the handler DeadLetter returns: a function usable
// wherever a DeserializationHandler or a ProcessingHandler is, that also
// reports its dead-letter topic (it implements TopicWriter). Make one with
// DeadLetter; a function converted to DeadLetterHandler by hand reports no
// topic.
type DeadLetterHandler func(ErrorContext) HandlerResponse

// OutputTopics returns the handler's dead-letter topic.
func (h DeadLetterHandler) OutputTopics() []string {
	if h == nil {
		return nil
	}
	// A handler made by DeadLetter answers a probe with its topic and
	// does nothing else; the probe marks the call as not an error.
	var topic string
	h(ErrorContext{Offset: -1, Err: errTopicProbe, topicProbe: &topic})
	if topic == "" {
		return nil
	}
	return []string{topic}
}

// errTopicProbe is the Err of the ErrorContext OutputTopics passes.
var errTopicProbe = errors.New("processor: asking the handler for its topic; no record failed")

// DeadLetter returns a handler, usable as a DeserializationHandler or a
// ProcessingHandler, that writes the failed source record's original
// bytes to topic with the lineage header and the brook.dlq.* headers
// (DeadLetterRecord) and continues. If the
// dead-letter record cannot be sent (or the failure happened during
// punctuation, where there is no source record), it answers Fail: a
// record is never dropped silently. An unavailable schema registry never
// reaches it (see DeserializationHandler): good records are not
// dead-lettered because of an outage. A nil logger uses slog.Default().
//
// The handler reports topic through OutputTopics, so the Kafka runtime
// refuses to start (a *topology.MissingTopicsError) when topic does not
// exist, before it consumes anything.
func DeadLetter(topic string, logger *slog.Logger) DeadLetterHandler {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ec ErrorContext) HandlerResponse {
		if ec.topicProbe != nil {
			*ec.topicProbe = topic
			return Fail
		}
		if ec.Produce == nil || ec.Offset < 0 {
			return Fail
		}
		if err := ec.Produce(DeadLetterRecord(topic, ec, time.Now())); err != nil {
			logger.Error("brook: dead-letter record could not be sent", "dlq", topic,
				"topic", ec.Topic, "partition", ec.Partition, "offset", ec.Offset, "err", err)
			return Fail
		}
		logger.Warn("brook: record sent to the dead-letter topic", "action", "inspect the dead-letter record (its brook.lineage header names the source record) and replay it once the cause is fixed", "dlq", topic,
			"topic", ec.Topic, "partition", ec.Partition, "offset", ec.Offset, "err", ec.Err)
		return Continue
	}
}
