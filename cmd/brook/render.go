package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// printPlan prints what the reset does (execute) or would do.
func printPlan(w io.Writer, p *plan, execute bool) {
	verb := func(doing, would string) string {
		if execute {
			return doing
		}
		return would
	}
	fmt.Fprintf(w, "Application %q, consumer group %q: ", p.AppID, p.AppID)
	switch {
	case p.Group == "" && len(p.Members) == 0:
		fmt.Fprintln(w, "no such group (no committed offsets, no members).")
	case len(p.Members) == 0:
		fmt.Fprintf(w, "%s, no active members.\n", p.Group)
	default:
		fmt.Fprintf(w, "%s, %d active member(s):\n", p.Group, len(p.Members))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  CLIENT ID\tHOST\tMEMBER ID")
		for _, m := range p.Members {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", m.ClientID, strings.TrimPrefix(m.Host, "/"), m.MemberID)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nInput offsets %s to %s, committed with empty metadata (which clears the stream time brook keeps there):\n",
		verb("reset", "to reset"), p.Target)
	if len(p.Inputs) == 0 {
		fmt.Fprintln(w, "  none: the group has no committed offsets on input topics (name input topics with --input-topics)")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TOPIC\tPARTITION\tCOMMITTED\tTARGET\tSTREAM TIME\t")
		for _, in := range p.Inputs {
			committed := "none"
			if in.Committed >= 0 {
				committed = fmt.Sprint(in.Committed)
			}
			meta := in.Metadata
			if meta == "" {
				meta = "-"
			}
			note := ""
			if in.Note != "" {
				note = "(" + in.Note + ")"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%s\t%d\t%s\t%s\n", in.Topic, in.Partition, committed, in.Target, meta, note)
		}
		tw.Flush()
	}

	if len(p.Drop) > 0 {
		fmt.Fprintf(w, "\nCommitted offsets of the group %s (%d):\n", verb("deleted", "to delete"), len(p.Drop))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  TOPIC\tPARTITION\tCOMMITTED\tWHY\t")
		for _, d := range p.Drop {
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%s\n", d.Topic, d.Partition, d.Committed, d.Reason)
		}
		tw.Flush()
	}

	fmt.Fprintf(w, "\nInternal topics %s (%d):\n", verb("deleted", "to delete"), len(p.Internal))
	if len(p.Internal) == 0 {
		fmt.Fprintf(w, "  none: no topic is named %q-...-changelog, -repartition, -subscription-registration-topic or -subscription-response-topic\n", p.AppID)
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, t := range p.Internal {
			fmt.Fprintf(tw, "  %s\t%d partitions\n", t.Name, t.Partitions)
		}
		tw.Flush()
	}
	if len(p.Kept) > 0 {
		fmt.Fprintf(w, "\nTopics named like internal topics that are kept (%d):\n", len(p.Kept))
		for _, k := range p.Kept {
			fmt.Fprintf(w, "  %s: %s\n", k.Name, k.Reason)
		}
	}

	fmt.Fprintln(w, "\nLocal state:")
	switch s := p.State; {
	case s == nil:
		fmt.Fprintln(w, "  not touched (no --state-dir). A restarted instance discards a task's local stores whose checkpoint is past the end of their")
		fmt.Fprintln(w, "  re-created changelog, and restores them empty; to free the space, run the reset with --state-dir on each host.")
	case !s.Exists:
		fmt.Fprintf(w, "  %s does not exist: nothing to wipe\n", s.Dir)
	case len(s.Foreign) > 0:
		fmt.Fprintf(w, "  %s holds entries brook does not write there (%s): the reset refuses to wipe it\n", s.Dir, strings.Join(s.Foreign, ", "))
	case len(s.Entries) == 0:
		fmt.Fprintf(w, "  %s is empty: nothing to wipe\n", s.Dir)
	default:
		fmt.Fprintf(w, "  %s %s: %s (%s)\n", s.Dir, verb("wiped", "to wipe"), strings.Join(s.Entries, ", "), byteSize(s.Bytes))
	}
	for _, warn := range p.Warnings {
		fmt.Fprintf(w, "\nWarning: %s\n", warn)
	}
}

// byteSize formats n bytes for people.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
