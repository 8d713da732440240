// Package processor is brook's Processor API: Record, Processor, the
// processing Context (forwarding, punctuation, store access, record
// metadata, commit requests, logging) and the adapter that turns a plain
// function into a stateless processor.
//
// processor must not import topology; topology imports it.
package processor
