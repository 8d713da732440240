package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/brookstream/brook/topology"
)

// usageError is a bad command line (exit status 2).
type usageError struct {
	msg string
	// printed says the flag package already printed the problem.
	printed bool
}

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// errHelp is returned when -h asked for the flags (exit status 0).
var errHelp = errors.New("help requested")

// member is an active member of the application's consumer group.
type member struct {
	ClientID, Host, MemberID string
}

// activeGroupError refuses a reset while the application's consumer group
// has members or is rebalancing: a running instance would commit over
// the reset offsets and write to the topics being deleted.
type activeGroupError struct {
	Group   string
	State   string
	Members []member
}

func (e *activeGroupError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "consumer group %q is %s with %d active member(s)", e.Group, e.State, len(e.Members))
	if len(e.Members) > 0 {
		var names []string
		for _, m := range e.Members {
			names = append(names, fmt.Sprintf("%s@%s", m.ClientID, strings.TrimPrefix(m.Host, "/")))
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(names, ", "))
	}
	b.WriteString("; stop every instance of the application and run the reset again once the group is Empty")
	return b.String()
}

// foreignStateError refuses to wipe a state folder that holds entries
// brook does not write there: a wrong --state-dir or application id would
// otherwise delete someone else's files.
type foreignStateError struct {
	Dir     string
	Entries []string
}

func (e *foreignStateError) Error() string {
	return fmt.Sprintf("state folder %s holds entries brook does not write there (%s); check --state-dir and --application-id, or remove the folder by hand",
		e.Dir, strings.Join(e.Entries, ", "))
}

// topicError is a failure on one topic or partition, named.
type topicError struct {
	Op        string
	Topic     string
	Partition int32 // -1: the whole topic
	Err       error
}

func (e *topicError) Error() string {
	if e.Partition < 0 {
		return fmt.Sprintf("%s of topic %s: %v", e.Op, e.Topic, e.Err)
	}
	return fmt.Sprintf("%s of %s partition %d: %v", e.Op, e.Topic, e.Partition, e.Err)
}

func (e *topicError) Unwrap() error { return e.Err }

// refused reports an error that is a refusal to act (exit status 3).
func refused(err error) bool {
	var ag *activeGroupError
	var fs *foreignStateError
	var locked *topology.StateDirLockedError
	return errors.As(err, &ag) || errors.As(err, &fs) || errors.As(err, &locked)
}
