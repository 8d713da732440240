package query

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/brookstream/brook/internal/task"
)

// The routes of window stores:
//
//	GET /stores/{store}/windows/{key}?from=&to=&limit=&token=
//	    the key's windows with starts in [from, to], by start; forwarded
//	    to the key's owner like a key
//	GET /stores/{store}/windows?from=&to=&limit=&token=
//	    every key's windows with starts in [from, to], of every instance,
//	    by serialized key then start; gathered like a key range

// windowsAnswer is the answer of GET /stores/{store}/windows.
type windowsAnswer struct {
	Store   string        `json:"store"`
	Entries []windowEntry `json:"entries"`
	// Next and More page as in rangeAnswer.
	Next string `json:"next,omitempty"`
	More bool   `json:"more"`
}

// windowKeyAnswer is the answer of GET /stores/{store}/windows/{key}.
type windowKeyAnswer struct {
	Store     string          `json:"store"`
	Key       json.RawMessage `json:"key"`
	Entries   []windowEntry   `json:"entries"`
	Partition int32           `json:"partition"`
	Task      string          `json:"task"`
	Host      string          `json:"host"`
	Next      string          `json:"next,omitempty"`
	More      bool            `json:"more"`
}

// windowToken returns the continuation token of a page of windows, ""
// on the last page.
func windowToken(entries []windowEntry, more bool) string {
	if !more || len(entries) == 0 {
		return ""
	}
	return encodeToken(entries[len(entries)-1].sk)
}

// lookupWindow returns the named window store's spec and querier; a
// store of another kind is a 404 that says where its data is.
func (h *queryHandler) lookupWindow(name string) (*task.StoreSpec, windowCodec, *apiError) {
	spec, q, e := h.lookup(name)
	if e != nil {
		return nil, nil, e
	}
	wq, ok := q.(windowCodec)
	if !ok {
		return nil, nil, wrongKind(spec, "window")
	}
	return spec, wq, nil
}

// parseWindowTime reads a time bound of a window query: epoch
// milliseconds (an optionally signed integer) or RFC 3339 with at most
// millisecond precision.
func parseWindowTime(name, text string) (int64, error) {
	digits := strings.TrimPrefix(text, "-")
	if digits != "" && strings.Trim(digits, "0123456789") == "" {
		ms, err := strconv.ParseInt(text, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s=%s: epoch milliseconds out of range", name, text)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, text)
	if err != nil && strings.Count(text, " ") == 1 {
		// A "+" offset that was not escaped in the query string reads as
		// a space; RFC 3339 has no space, so it can only be that.
		t, err = time.Parse(time.RFC3339Nano, strings.Replace(text, " ", "+", 1))
	}
	if err != nil {
		return 0, fmt.Errorf("%s=%q is neither RFC 3339 (2024-05-01T12:00:00Z, 2024-05-01T14:00:00.250%%2B02:00) nor epoch milliseconds (1714564800000)", name, text)
	}
	if t.Nanosecond()%int(time.Millisecond) != 0 {
		return 0, fmt.Errorf("%s=%s is finer than a millisecond; window starts are whole milliseconds", name, text)
	}
	return t.UnixMilli(), nil
}

// windowBounds reads the parameters of a window query: the start
// interval [from, to] in ms (unbounded sides absent), the page size, and
// the position after which the page starts (nil: the first page).
func (h *queryHandler) windowBounds(spec *task.StoreSpec, vals url.Values) (from, to int64, limit int, after []byte, e *apiError) {
	bad := func(format string, args ...any) *apiError {
		return &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: ", spec.Name) + fmt.Sprintf(format, args...)}
	}
	from, to = math.MinInt64, math.MaxInt64
	var err error
	if vals.Has("from") {
		if from, err = parseWindowTime("from", vals.Get("from")); err != nil {
			return 0, 0, 0, nil, bad("%v", err)
		}
	}
	if vals.Has("to") {
		if to, err = parseWindowTime("to", vals.Get("to")); err != nil {
			return 0, 0, 0, nil, bad("%v", err)
		}
	}
	if vals.Has("prefix") {
		return 0, 0, 0, nil, bad("window queries take from, to, limit and token, not prefix")
	}
	if t := vals.Get("token"); t != "" {
		if after, err = decodeToken(t); err != nil {
			return 0, 0, 0, nil, bad("%v", err)
		}
		if _, _, err := parseWindowSortKey(after); err != nil {
			return 0, 0, 0, nil, bad("%v", err)
		}
	}
	limit = h.cfg.defaultLimit
	if s := vals.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return 0, 0, 0, nil, bad("limit must be a positive integer")
		}
		limit = min(n, h.cfg.maxLimit)
	}
	return from, to, limit, after, nil
}

// windowsOfKey answers GET /stores/{store}/windows/{key}.
func (h *queryHandler) windowsOfKey(w http.ResponseWriter, r *http.Request) {
	spec, q, e := h.lookupWindow(r.PathValue("store"))
	if e != nil {
		h.fail(w, e)
		return
	}
	hops, e := h.hops(r)
	if e != nil {
		h.fail(w, e)
		return
	}
	text := r.PathValue("key")
	k, err := q.parseKey(text)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: %v (keys are %s)", spec.Name, err, q.keyFormat())})
		return
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: "bad query string: " + err.Error()})
		return
	}
	from, to, limit, after, e := h.windowBounds(spec, vals)
	if e != nil {
		h.fail(w, e)
		return
	}
	topic := h.a.serdeTopic(spec)
	kb, err := q.keyBytes(topic, k)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: %v", spec.Name, err)})
		return
	}
	if after != nil {
		tk, ts, _ := parseWindowSortKey(after)
		if !bytes.Equal(tk, kb) {
			h.fail(w, &apiError{Status: http.StatusBadRequest, Error: fmt.Sprintf("store %q: the token continues the windows of another key", spec.Name)})
			return
		}
		if ts == math.MaxInt64 {
			from, to = 1, 0 // nothing after the last possible start
		} else {
			from = max(from, ts+1)
		}
	}
	loc, err := h.a.locate(r.Context(), spec, kb)
	if err != nil {
		h.fail(w, h.errorFor(err))
		return
	}
	if !loc.local {
		h.forward(w, r, loc.host, hops)
		return
	}
	entries := []windowEntry{}
	more := false
	if from <= to {
		entries, more, err = q.localFetch(h.a.rt, loc.task, spec.Name, topic, k, from, to, limit)
		if err != nil {
			h.fail(w, h.errorFor(h.a.queryErr(spec.Name, err)))
			return
		}
	}
	kj, err := q.keyJSON(k)
	if err != nil {
		kj, _ = json.Marshal(text)
	}
	h.reply(w, http.StatusOK, windowKeyAnswer{Store: spec.Name, Key: kj, Entries: entries,
		Partition: loc.task.Partition, Task: loc.task.String(), Host: h.a.endpoint(),
		Next: windowToken(entries, more), More: more})
}

// allWindows answers GET /stores/{store}/windows.
func (h *queryHandler) allWindows(w http.ResponseWriter, r *http.Request) {
	spec, q, e := h.lookupWindow(r.PathValue("store"))
	if e != nil {
		h.fail(w, e)
		return
	}
	hops, e := h.hops(r)
	if e != nil {
		h.fail(w, e)
		return
	}
	vals, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		h.fail(w, &apiError{Status: http.StatusBadRequest, Error: "bad query string: " + err.Error()})
		return
	}
	from, to, limit, after, e := h.windowBounds(spec, vals)
	if e != nil {
		h.fail(w, e)
		return
	}
	if from > to {
		h.reply(w, http.StatusOK, windowsAnswer{Store: spec.Name, Entries: []windowEntry{}})
		return
	}
	topic := h.a.serdeTopic(spec)
	local := func() ([]windowEntry, bool, *apiError) {
		tasks, err := h.a.localTasksOf(spec)
		if err != nil {
			return nil, false, h.errorFor(err)
		}
		entries, more, err := q.localFetchAll(h.a.rt, tasks, spec.Name, topic, from, to, after, limit)
		if err != nil {
			return nil, false, h.errorFor(h.a.queryErr(spec.Name, err))
		}
		return entries, more, nil
	}
	all, more, e := gatherPages(h, r, spec, vals, limit, hops, local, func(body []byte) ([]windowEntry, bool, error) {
		var wa windowsAnswer
		if err := json.Unmarshal(body, &wa); err != nil {
			return nil, false, err
		}
		for i := range wa.Entries {
			wa.Entries[i].sk = windowSortKey(wa.Entries[i].KeyBytes, wa.Entries[i].StartMs)
		}
		return wa.Entries, wa.More, nil
	})
	if e != nil {
		h.fail(w, e)
		return
	}
	if all == nil {
		all = []windowEntry{}
	}
	h.reply(w, http.StatusOK, windowsAnswer{Store: spec.Name, Entries: all, Next: windowToken(all, more), More: more})
}
