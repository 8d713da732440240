// recentlog.go: the ring of the instance's recent warnings and errors
// (RecentWarnings), which the status page shows with their action, and
// the slog.Handler every log record of the runtime passes to fill it.

package runtime

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// recentLogSize is how many warnings and errors RecentWarnings keeps.
const recentLogSize = 50

// maxAttrLen bounds each attribute value RecentWarnings keeps.
const maxAttrLen = 2000

// LogRecord is one record of the instance's log at warning level or
// above, as RecentWarnings keeps it.
type LogRecord struct {
	Time    time.Time
	Level   slog.Level
	Message string
	// Action is the record's "action" attribute: what the operator should
	// do ("" when the record has none).
	Action string
	// Attrs are the record's other attributes in order, group names
	// joined to keys with dots, values as text (cut at 2000 bytes).
	Attrs []LogAttr
}

// LogAttr is one attribute of a LogRecord.
type LogAttr struct {
	Key, Value string
}

// recentLog is a ring of the last recentLogSize warnings and errors.
type recentLog struct {
	mu   sync.Mutex
	buf  []LogRecord
	next int
	full bool
}

func (l *recentLog) add(rec LogRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.buf == nil {
		l.buf = make([]LogRecord, recentLogSize)
	}
	l.buf[l.next] = rec
	l.next = (l.next + 1) % len(l.buf)
	if l.next == 0 {
		l.full = true
	}
}

// records returns the kept records, oldest first.
func (l *recentLog) records() []LogRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.full {
		return slices.Clone(l.buf[:l.next])
	}
	return append(slices.Clone(l.buf[l.next:]), l.buf[:l.next]...)
}

// RecentWarnings returns the last 50 records the instance logged at
// warning level or above, oldest first, whatever level the App's own
// logger lets through.
func (r *Runtime) RecentWarnings() []LogRecord { return r.status.recent.records() }

// recentHandler is a slog.Handler that passes every record to the App's
// handler and keeps those at warning level or above in a recentLog.
type recentHandler struct {
	inner slog.Handler
	log   *recentLog
	// attrs are the attributes added with WithAttrs, already flattened;
	// prefix is the group path ("a.b.") of attributes added later.
	attrs  []LogAttr
	prefix string
}

// newRecentHandler wraps inner so that log keeps its warnings.
func newRecentHandler(inner slog.Handler, log *recentLog) *recentHandler {
	return &recentHandler{inner: inner, log: log}
}

// Enabled implements slog.Handler: warnings are always wanted (they are
// kept even when inner drops them).
func (h *recentHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (h *recentHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		kept := LogRecord{Time: rec.Time, Level: rec.Level, Message: rec.Message}
		attrs := slices.Clone(h.attrs)
		rec.Attrs(func(a slog.Attr) bool {
			attrs = flattenAttr(attrs, h.prefix, a)
			return true
		})
		for _, a := range attrs {
			if a.Key == "action" && kept.Action == "" {
				kept.Action = a.Value
				continue
			}
			kept.Attrs = append(kept.Attrs, a)
		}
		h.log.add(kept)
	}
	if !h.inner.Enabled(ctx, rec.Level) {
		return nil
	}
	return h.inner.Handle(ctx, rec)
}

// WithAttrs implements slog.Handler.
func (h *recentHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.inner = h.inner.WithAttrs(as)
	c.attrs = slices.Clone(h.attrs)
	for _, a := range as {
		c.attrs = flattenAttr(c.attrs, h.prefix, a)
	}
	return &c
}

// WithGroup implements slog.Handler.
func (h *recentHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	c := *h
	c.inner = h.inner.WithGroup(name)
	c.prefix = h.prefix + name + "."
	return &c
}

// flattenAttr appends a (a group's members one by one) to out, with
// prefix before its key.
func flattenAttr(out []LogAttr, prefix string, a slog.Attr) []LogAttr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, m := range v.Group() {
			out = flattenAttr(out, p, m)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	s := v.String()
	if len(s) > maxAttrLen {
		s = strings.ToValidUTF8(s[:maxAttrLen], "") + "…"
	}
	return append(out, LogAttr{Key: prefix + a.Key, Value: s})
}
