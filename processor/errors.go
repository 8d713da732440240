package processor

import (
	"fmt"
	"log/slog"
	"time"
)

// HandlerResponse is an error handler's decision.
type HandlerResponse int

const (
	// Fail stops processing: the task returns the error; the Kafka
	// runtime commits the records before the failed one (and every other
	// task's work), nothing of the failed record and nothing past it. It
	// is the zero value and the default when no handler is configured.
	Fail HandlerResponse = iota
	// Continue drops the failed record (or the failed branch of its
	// processing) and goes on with the next one.
	Continue
)

// String returns "fail" or "continue".
func (r HandlerResponse) String() string {
	if r == Continue {
		return "continue"
	}
	return "fail"
}

// ErrorContext describes a failure to an error handler. The task core,
// the Kafka runtime and the TestDriver fill it the same way.
type ErrorContext struct {
	// Topic, Partition and Offset locate the source record being
	// processed. During punctuation Topic is "" and Offset is -1.
	Topic     string
	Partition int32
	Offset    int64
	// Key and Value are the source record's raw bytes as consumed (nil
	// during punctuation). A dead-letter handler can republish them.
	Key, Value []byte
	// Headers and Timestamp are the source record's.
	Headers   Headers
	Timestamp time.Time
	// TaskID is the task that failed.
	TaskID TaskID
	// Node is the topology node where the error happened.
	Node string
	// ApplicationID is the application's id ("" where the runtime does
	// not know it); dead-letter records carry it in their lineage headers.
	ApplicationID string
	// Err is the error.
	Err error
	// Produce sends a record through the task's producer: the same path
	// as sink records, so under exactly-once it joins the task's
	// transaction, and in the Kafka runtime, like the record's sink
	// output, it is sent only if the record's processing goes on (the
	// handler answers Continue). A
	// dead-letter handler uses it. It is nil only in ErrorContexts built
	// outside a task, such as a production handler's for a record the
	// broker refused.
	Produce func(ProducedRecord) error

	// topicProbe is set only by DeadLetterHandler.OutputTopics.
	topicProbe *string
}

// DeserializationHandler decides what happens to a source record whose key
// or value cannot be deserialized (or whose timestamp cannot be
// extracted).
//
// No handler (deserialization, processing or production) is asked about a
// failure that matches serde.ErrRegistryUnavailable: an unavailable schema
// registry says nothing about the record. The task returns such a failure
// as the record's error (a *DeserializationError, *ProcessingError or
// *ProductionError wrapping it) and the application stops, committing only
// up to the record.
type DeserializationHandler func(ec ErrorContext) HandlerResponse

// ProcessingHandler decides what happens when a processor's Process or a
// punctuator returns an error.
type ProcessingHandler func(ec ErrorContext) HandlerResponse

// ProductionHandler decides what happens when a sink cannot serialize a
// record or the producer cannot send it. out is the record the sink tried
// to send; its Key and Value are nil when serialization failed.
type ProductionHandler func(ec ErrorContext, out ProducedRecord) HandlerResponse

// ProducedRecord is a record a sink hands to the producer.
type ProducedRecord struct {
	Topic string
	// Partition is the partition chosen by the sink's partitioner, or -1
	// to let the producer's default partitioner choose.
	Partition int32
	Key       []byte
	Value     []byte
	Timestamp time.Time
	Headers   Headers
}

// LogAndContinue returns a handler (usable as a DeserializationHandler or a
// ProcessingHandler) that logs the failure at warning level and drops the
// record. A nil logger uses slog.Default().
func LogAndContinue(logger *slog.Logger) func(ErrorContext) HandlerResponse {
	if logger == nil {
		logger = slog.Default()
	}
	return func(ec ErrorContext) HandlerResponse {
		logger.Warn("brook: skipping record after error", "action", "the record is not processed: fix what produced it, or use processor.DeadLetter to keep such records for replay",
			"topic", ec.Topic, "partition", ec.Partition, "offset", ec.Offset,
			"task", ec.TaskID.String(), "node", ec.Node, "error", ec.Err)
		return Continue
	}
}

// DeserializationError is returned when a source record cannot be
// deserialized and the handler (or the default) says Fail.
type DeserializationError struct {
	// Node is the source node.
	Node string
	// Topic, Partition and Offset locate the bad record.
	Topic     string
	Partition int32
	Offset    int64
	// Part is "key", "value" or "timestamp".
	Part string
	// Err is the serde's (or timestamp extractor's) error.
	Err error
}

// Error implements error.
func (e *DeserializationError) Error() string {
	return fmt.Sprintf("processor: source %q: cannot deserialize %s of record at topic %q partition %d offset %d: %v",
		e.Node, e.Part, e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the serde's error.
func (e *DeserializationError) Unwrap() error { return e.Err }

// ProcessingError is returned when a processor or punctuator fails and the
// handler (or the default) says Fail.
type ProcessingError struct {
	// Node is the processor node that failed.
	Node string
	// TaskID is the task it ran in.
	TaskID TaskID
	// Punctuation is true when a punctuator failed; Topic, Partition and
	// Offset are then empty/-1.
	Punctuation bool
	// Topic, Partition and Offset locate the source record being
	// processed.
	Topic     string
	Partition int32
	Offset    int64
	// Err is the processor's error.
	Err error
}

// Error implements error.
func (e *ProcessingError) Error() string {
	if e.Punctuation {
		return fmt.Sprintf("processor: node %q (task %s): punctuation failed: %v", e.Node, e.TaskID, e.Err)
	}
	return fmt.Sprintf("processor: node %q (task %s): processing record at topic %q partition %d offset %d: %v",
		e.Node, e.TaskID, e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the processor's error.
func (e *ProcessingError) Unwrap() error { return e.Err }

// ProductionError is returned when a sink cannot serialize or send a record
// and the handler (or the default) says Fail.
type ProductionError struct {
	// Node is the sink node.
	Node string
	// OutputTopic is the topic the record was for.
	OutputTopic string
	// Topic, Partition and Offset locate the source record whose
	// processing produced it (Offset -1 during punctuation).
	Topic     string
	Partition int32
	Offset    int64
	// Err is the serde's or producer's error.
	Err error
}

// Error implements error.
func (e *ProductionError) Error() string {
	return fmt.Sprintf("processor: sink %q: cannot produce to topic %q (source record topic %q partition %d offset %d): %v",
		e.Node, e.OutputTopic, e.Topic, e.Partition, e.Offset, e.Err)
}

// Unwrap returns the underlying error.
func (e *ProductionError) Unwrap() error { return e.Err }
