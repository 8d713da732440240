package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/brookstream/brook/store"
	"github.com/brookstream/brook/topology"
)

// Suffixes of the internal topics brook names "<application-id>-<name><suffix>":
// changelogs (store.ChangelogTopic), repartition topics and a foreign-key
// join's two topics (task.InternalTopic).
var internalSuffixes = []string{"-changelog", "-repartition", "-subscription-registration-topic", "-subscription-response-topic"}

// internalLooking reports whether topic is named like an internal topic
// of application appID, and returns its suffix.
func internalLooking(appID, topic string) (suffix string, ok bool) {
	rest, ok := strings.CutPrefix(topic, appID+"-")
	if !ok {
		return "", false
	}
	for _, s := range internalSuffixes {
		// The name between the prefix and the suffix is not empty.
		if len(rest) > len(s) && strings.HasSuffix(rest, s) {
			return s, true
		}
	}
	return "", false
}

// inputPartition is an input partition whose committed offset is reset.
type inputPartition struct {
	Topic     string
	Partition int32
	Committed int64 // -1: none
	Metadata  string
	Target    int64
	Note      string
}

// topicPlan is an internal topic to delete.
type topicPlan struct {
	Name       string
	Partitions int
}

// keptTopic is a topic named like an internal one that is not deleted.
type keptTopic struct {
	Name   string
	Reason string
}

// droppedOffset is a committed offset of the group that is deleted.
type droppedOffset struct {
	Topic     string
	Partition int32
	Committed int64
	Reason    string
}

// statePlan is the local state folder of the application.
type statePlan struct {
	Dir     string
	Exists  bool
	Entries []string // brook's entries, without the lock file
	Foreign []string // entries brook does not write
	Bytes   int64
}

// plan is everything a reset does; the dry run prints it.
type plan struct {
	AppID    string
	Target   target
	Group    string // the group's state; "" when the group does not exist
	Members  []member
	Inputs   []inputPartition
	Drop     []droppedOffset
	Internal []topicPlan
	Kept     []keptTopic
	State    *statePlan // nil without --state-dir
	Warnings []string
}

// active reports whether the group has members or is not at rest.
func (p *plan) active() bool {
	return len(p.Members) > 0 || (p.Group != "" && p.Group != "Empty" && p.Group != "Dead")
}

// empty reports a reset that has nothing to do.
func (p *plan) empty() bool {
	return len(p.Inputs) == 0 && len(p.Drop) == 0 && len(p.Internal) == 0 && len(p.Kept) == 0 &&
		(p.State == nil || !p.State.Exists || len(p.State.Entries)+len(p.State.Foreign) == 0)
}

// runReset runs "brook reset".
func runReset(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	o, err := parseReset(args, stderr, getenv)
	if err != nil {
		return err
	}
	r, err := connect(o)
	if err != nil {
		return err
	}
	defer r.admin.Close()
	p, err := r.plan(ctx)
	if err != nil {
		return err
	}
	if p.empty() && !p.active() {
		fmt.Fprintf(stdout, "Nothing to reset for application %q: consumer group %q has no committed offsets and no members, no topic is named like its internal topics%s.\n",
			p.AppID, p.AppID, p.stateNote())
		return nil
	}
	printPlan(stdout, p, o.execute && !p.active())
	if p.active() {
		return &activeGroupError{Group: p.AppID, State: p.Group, Members: p.Members}
	}
	if !o.execute {
		fmt.Fprintln(stdout, "\nDry run: nothing was changed. Run again with --execute to do this.")
		return nil
	}
	fmt.Fprintln(stdout)
	if err := r.execute(ctx, p, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nReset done: start the application to process its input from %s with empty state.\n", p.Target)
	return nil
}

func (p *plan) stateNote() string {
	switch {
	case p.State == nil:
		return " (local state not checked: no --state-dir)"
	case !p.State.Exists:
		return fmt.Sprintf(", no local state at %s", p.State.Dir)
	}
	return fmt.Sprintf(", local state folder %s is empty", p.State.Dir)
}

// resetter holds the clients of one reset.
type resetter struct {
	o      *resetOptions
	client sarama.Client
	admin  sarama.ClusterAdmin
}

// connect opens the clients, configured as an App's.
func connect(o *resetOptions) (*resetter, error) {
	sc, err := topology.Config{ApplicationID: o.appID, Brokers: o.brokers, TLS: o.tls, SASL: o.sasl, ClientID: "brook-reset"}.SaramaConfig()
	if err != nil {
		return nil, usagef("%v", strings.TrimPrefix(err.Error(), "topology: Config."))
	}
	sc.Net.DialTimeout = min(o.timeout, 10*time.Second)
	sc.Net.ReadTimeout = o.timeout
	sc.Net.WriteTimeout = o.timeout
	sc.Admin.Timeout = o.timeout
	sc.Metadata.Retry.Max = 5
	client, err := sarama.NewClient(o.brokers, sc)
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka at %s: %w%s", strings.Join(o.brokers, ","), err, connectHint(err, o))
	}
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("connect to Kafka at %s: %w", strings.Join(o.brokers, ","), err)
	}
	return &resetter{o: o, client: client, admin: admin}, nil
}

// connectHint says what a failure to connect usually means.
func connectHint(err error, o *resetOptions) string {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed) || errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return " (the broker refused the SASL credentials: check --sasl-mechanism, --sasl-user and the password)"
	case errors.As(err, &unknown):
		return " (the broker's certificate is not signed by the CA of --tls-ca)"
	case errors.As(err, &host):
		return " (the broker's certificate does not name the address connected to)"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if o.tls == nil || o.sasl == nil {
			return " (the broker closed the connection: does the listener expect TLS (--tls-ca) or SASL (--sasl-mechanism)?)"
		}
		return " (the broker closed the connection: check the SASL credentials and the client certificate)"
	}
	return ""
}

// plan finds what the reset does, changing nothing.
func (r *resetter) plan(ctx context.Context) (*plan, error) {
	appID := r.o.appID
	p := &plan{AppID: appID, Target: r.o.target}

	var desc *sarama.GroupDescription
	err := r.retry(ctx, func() error {
		descs, err := r.admin.DescribeConsumerGroups([]string{appID})
		if err != nil {
			return err
		}
		for _, d := range descs {
			if d.GroupId == appID {
				desc = d
				if errors.Is(d.Err, sarama.ErrNoError) {
					return nil
				}
				return d.Err
			}
		}
		return sarama.ErrIncompleteResponse
	})
	switch {
	case err == nil:
		p.Group = desc.State
		if p.Group == "Dead" {
			p.Group = ""
		}
		for _, m := range desc.Members {
			p.Members = append(p.Members, member{ClientID: m.ClientId, Host: m.ClientHost, MemberID: m.MemberId})
		}
	case errors.Is(err, sarama.ErrGroupIDNotFound):
	default:
		return nil, fmt.Errorf("describe consumer group %q: %w", appID, err)
	}

	// A group that does not exist has no offsets: Kafka answers with
	// none, kfake with GROUP_ID_NOT_FOUND.
	var resp *sarama.OffsetFetchResponse
	err = r.retry(ctx, func() error {
		var err error
		resp, err = r.admin.ListConsumerGroupOffsets(appID, nil)
		return err
	})
	switch {
	case errors.Is(err, sarama.ErrGroupIDNotFound):
		resp = &sarama.OffsetFetchResponse{}
	case err != nil:
		return nil, fmt.Errorf("fetch the committed offsets of consumer group %q: %w", appID, err)
	case !errors.Is(resp.Err, sarama.ErrNoError) && !errors.Is(resp.Err, sarama.ErrGroupIDNotFound):
		return nil, fmt.Errorf("fetch the committed offsets of consumer group %q: %w", appID, resp.Err)
	}
	type tp struct {
		topic string
		part  int32
	}
	committed := map[tp]*sarama.OffsetFetchResponseBlock{}
	committedTopics := map[string]bool{}
	for topic, parts := range resp.Blocks {
		for part, blk := range parts {
			if blk == nil {
				continue
			}
			if !errors.Is(blk.Err, sarama.ErrNoError) {
				return nil, &topicError{Op: "fetch the committed offset", Topic: topic, Partition: part, Err: blk.Err}
			}
			if blk.Offset < 0 {
				continue
			}
			committed[tp{topic, part}] = blk
			committedTopics[topic] = true
		}
	}

	var topics map[string]sarama.TopicDetail
	if err := r.retry(ctx, func() (err error) { topics, err = r.admin.ListTopics(); return err }); err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var groups map[string]string
	if err := r.retry(ctx, func() (err error) { groups, err = r.admin.ListConsumerGroups(); return err }); err != nil {
		return nil, fmt.Errorf("list consumer groups: %w", err)
	}
	// Other applications whose ids start with "<appID>-" name their
	// internal topics with this application's prefix too: the longest
	// matching group id owns a topic.
	var longer []string
	for g := range groups {
		if strings.HasPrefix(g, appID+"-") {
			longer = append(longer, g)
		}
	}
	slices.SortFunc(longer, func(a, b string) int { return len(b) - len(a) })

	globals := map[string]bool{}
	if r.o.stateDir != "" {
		dir := filepath.Join(r.o.stateDir, appID, "global")
		cp, err := store.ReadCheckpoint(dir)
		if err != nil {
			p.Warnings = append(p.Warnings, fmt.Sprintf("the global tables' checkpoint in %s cannot be read (%v): a global table's topic named like an internal topic would not be recognised; name it with --keep-topics", dir, err))
		}
		for k := range cp {
			globals[k.Topic] = true
		}
	}
	keep := setOf(r.o.keepTopics)
	explicit := setOf(r.o.inputTopics)
	internal := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		suffix, ok := internalLooking(appID, name)
		if !ok {
			continue
		}
		reason := ""
		switch {
		case keep[name]:
			reason = "named by --keep-topics"
		case explicit[name]:
			reason = "named by --input-topics: its offsets are reset instead"
		case suffix == "-changelog" && committedTopics[name]:
			reason = "the group reads it as an input topic (it has committed offsets there): its offsets are reset instead"
		case globals[name]:
			reason = "a global table reads it (it is in the global tables' checkpoint): it is the user's topic"
		default:
			for _, g := range longer {
				if strings.HasPrefix(name, g+"-") {
					reason = fmt.Sprintf("it may belong to application %q (a consumer group with that id exists); if it is this application's, delete it by hand", g)
					break
				}
			}
		}
		if reason != "" {
			p.Kept = append(p.Kept, keptTopic{Name: name, Reason: reason})
			continue
		}
		internal[name] = true
		p.Internal = append(p.Internal, topicPlan{Name: name, Partitions: int(topics[name].NumPartitions)})
	}

	inputs := map[string]bool{}
	for topic := range explicit {
		if _, ok := topics[topic]; !ok {
			return nil, &topicError{Op: "reset the input offsets", Topic: topic, Partition: -1, Err: errors.New("the topic named by --input-topics does not exist")}
		}
		inputs[topic] = true
	}
	for k, blk := range committed {
		switch _, exists := topics[k.topic]; {
		case internal[k.topic]:
			p.Drop = append(p.Drop, droppedOffset{Topic: k.topic, Partition: k.part, Committed: blk.Offset, Reason: "internal topic, deleted"})
		case exists:
			inputs[k.topic] = true
		}
		// Kafka deletes a group's offsets of a deleted topic itself.
	}
	slices.SortFunc(p.Drop, func(a, b droppedOffset) int {
		if c := strings.Compare(a.Topic, b.Topic); c != 0 {
			return c
		}
		return int(a.Partition - b.Partition)
	})
	for _, topic := range slices.Sorted(maps.Keys(inputs)) {
		n := topics[topic].NumPartitions
		for part := range n {
			in := inputPartition{Topic: topic, Partition: part, Committed: -1}
			if blk := committed[tp{topic, part}]; blk != nil {
				in.Committed, in.Metadata = blk.Offset, blk.Metadata
			}
			p.Inputs = append(p.Inputs, in)
		}
	}
	if err := r.targets(ctx, p.Inputs); err != nil {
		return nil, err
	}
	if r.o.stateDir != "" {
		if p.State, err = inspectState(filepath.Join(r.o.stateDir, appID)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// targets sets the target offset of every input partition.
func (r *resetter) targets(ctx context.Context, inputs []inputPartition) error {
	if len(inputs) == 0 {
		return nil
	}
	at := sarama.OffsetOldest
	switch r.o.target.kind {
	case toLatest:
		at = sarama.OffsetNewest
	case toTime:
		at = r.o.target.at.UnixMilli()
	}
	offsets, err := r.listOffsets(ctx, inputs, at)
	if err != nil {
		return err
	}
	var past []inputPartition
	for i := range inputs {
		in := &inputs[i]
		in.Target = offsets[in.Topic][in.Partition]
		if in.Target < 0 {
			// No record at or after the time: the partition's end, as a
			// consumer's offsetsForTimes-then-seekToEnd does.
			past = append(past, *in)
		}
	}
	if len(past) == 0 {
		return nil
	}
	ends, err := r.listOffsets(ctx, past, sarama.OffsetNewest)
	if err != nil {
		return err
	}
	for i := range inputs {
		in := &inputs[i]
		if in.Target < 0 {
			in.Target = ends[in.Topic][in.Partition]
			in.Note = "no record at or after the time: the end"
		}
	}
	return nil
}

// listOffsets lists the offsets at "at" (a time, or OffsetOldest or
// OffsetNewest: the last stable offset) of the partitions.
func (r *resetter) listOffsets(ctx context.Context, parts []inputPartition, at int64) (map[string]map[int32]int64, error) {
	query := map[string]map[int32]int64{}
	for _, in := range parts {
		if query[in.Topic] == nil {
			query[in.Topic] = map[int32]int64{}
		}
		query[in.Topic][in.Partition] = at
	}
	out := map[string]map[int32]int64{}
	err := r.retry(ctx, func() error {
		res, err := r.admin.ListOffsets(query, &sarama.ListOffsetsOptions{IsolationLevel: sarama.ReadCommitted})
		for _, in := range parts {
			o := res[in.Topic][in.Partition]
			switch {
			case o == nil && err != nil:
				return &topicError{Op: "list offsets", Topic: in.Topic, Partition: in.Partition, Err: err}
			case o == nil:
				return &topicError{Op: "list offsets", Topic: in.Topic, Partition: in.Partition, Err: sarama.ErrIncompleteResponse}
			case o.Err != nil && !errors.Is(o.Err, sarama.ErrNoError):
				return &topicError{Op: "list offsets", Topic: in.Topic, Partition: in.Partition, Err: o.Err}
			}
			if out[in.Topic] == nil {
				out[in.Topic] = map[int32]int64{}
			}
			out[in.Topic][in.Partition] = o.Offset
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// execute does what p says, in an order that leaves a consistent state
// when it stops half way (run it again): input offsets first, then the
// internal topics' offsets, then the topics, then the local state.
func (r *resetter) execute(ctx context.Context, p *plan, out io.Writer) error {
	if p.State != nil && p.State.Exists {
		if len(p.State.Foreign) > 0 {
			return &foreignStateError{Dir: p.State.Dir, Entries: p.State.Foreign}
		}
		release, err := lockState(p.State.Dir)
		if err != nil {
			return err
		}
		defer release()
	}
	if len(p.Inputs) > 0 {
		if err := r.retry(ctx, func() error { return r.commitInputs(p) }); err != nil {
			return err
		}
		fmt.Fprintf(out, "Committed %d input offsets (%s), with empty metadata.\n", len(p.Inputs), p.Target)
	}
	for _, d := range p.Drop {
		err := r.retry(ctx, func() error { return r.admin.DeleteConsumerGroupOffset(p.AppID, d.Topic, d.Partition) })
		if err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return &topicError{Op: fmt.Sprintf("delete consumer group %q's committed offset", p.AppID), Topic: d.Topic, Partition: d.Partition, Err: err}
		}
	}
	if len(p.Drop) > 0 {
		fmt.Fprintf(out, "Deleted %d committed offsets of consumer group %q.\n", len(p.Drop), p.AppID)
	}
	if len(p.Internal) > 0 {
		for _, t := range p.Internal {
			err := r.retry(ctx, func() error { return r.admin.DeleteTopic(t.Name) })
			if err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				return &topicError{Op: "delete", Topic: t.Name, Partition: -1, Err: err}
			}
		}
		if err := r.waitDeleted(ctx, p.Internal); err != nil {
			return err
		}
		fmt.Fprintf(out, "Deleted %d internal topics.\n", len(p.Internal))
	}
	if p.State != nil && p.State.Exists && len(p.State.Entries) > 0 {
		if err := wipeState(p.State.Dir); err != nil {
			return err
		}
		fmt.Fprintf(out, "Wiped local state in %s.\n", p.State.Dir)
	}
	return nil
}

// commitInputs commits the target offsets of the input partitions with
// empty metadata: brook reads empty metadata as "stream time unknown", so
// the application starts its stream time again at its first record.
func (r *resetter) commitInputs(p *plan) error {
	offs := map[string]map[int32]sarama.OffsetAndMetadata{}
	for _, in := range p.Inputs {
		if offs[in.Topic] == nil {
			offs[in.Topic] = map[int32]sarama.OffsetAndMetadata{}
		}
		offs[in.Topic][in.Partition] = sarama.OffsetAndMetadata{Offset: in.Target, Metadata: "", LeaderEpoch: -1}
	}
	resp, err := r.admin.AlterConsumerGroupOffsets(p.AppID, offs, nil)
	if err != nil {
		return fmt.Errorf("commit the input offsets of consumer group %q: %w", p.AppID, err)
	}
	for _, in := range p.Inputs {
		kerr, ok := resp.Errors[in.Topic][in.Partition]
		if !ok {
			return &topicError{Op: "commit the offset", Topic: in.Topic, Partition: in.Partition, Err: sarama.ErrIncompleteResponse}
		}
		if errors.Is(kerr, sarama.ErrNoError) {
			continue
		}
		hint := ""
		switch {
		case errors.Is(kerr, sarama.ErrUnknownMemberId), errors.Is(kerr, sarama.ErrIllegalGeneration), errors.Is(kerr, sarama.ErrRebalanceInProgress):
			hint = " (a member joined the group during the reset: stop it and run the reset again)"
		}
		return &topicError{Op: fmt.Sprintf("commit consumer group %q's offset %d", p.AppID, in.Target), Topic: in.Topic, Partition: in.Partition, Err: fmt.Errorf("%w%s", kerr, hint)}
	}
	return nil
}

// waitDeleted waits until no deleted topic shows in the cluster's
// metadata any more: Kafka deletes topics asynchronously, and an
// application started before would find its old internal topics.
func (r *resetter) waitDeleted(ctx context.Context, deleted []topicPlan) error {
	deadline := time.Now().Add(r.o.timeout)
	for {
		var topics map[string]sarama.TopicDetail
		if err := r.retry(ctx, func() (err error) { topics, err = r.admin.ListTopics(); return err }); err != nil {
			return fmt.Errorf("list topics while waiting for the deletions: %w", err)
		}
		var left []string
		for _, t := range deleted {
			if _, ok := topics[t.Name]; ok {
				left = append(left, t.Name)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %s still exist %v after their deletion was accepted; wait until they are gone before starting the application", strings.Join(left, ", "), r.o.timeout)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the deletion of %s: %w", strings.Join(left, ", "), ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func setOf(list []string) map[string]bool {
	m := map[string]bool{}
	for _, s := range list {
		m[s] = true
	}
	return m
}
