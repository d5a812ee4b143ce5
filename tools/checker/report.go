package main

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// Report is the whole result; it is also the --json output.
type Report struct {
	Result         string                    `json:"result"` // ok | violation | inconclusive
	ExitCode       int                       `json:"exit_code"`
	History        string                    `json:"history"`
	Operations     int                       `json:"operations"`
	Clients        int                       `json:"clients"`
	TimeoutSeconds float64                   `json:"timeout_seconds"`
	ElapsedSeconds float64                   `json:"elapsed_seconds"`
	Counts         map[string]*OutcomeCounts `json:"counts"` // by op: put, consume, peek
	Mailboxes      []*MailboxReport          `json:"mailboxes"`
	Anomalies      []Anomaly                 `json:"anomalies"`
	HTML           string                    `json:"html,omitempty"`

	origin int64 // earliest timestamp: human output shows times relative to it
}

// MailboxReport is the result for one mailbox.
type MailboxReport struct {
	Mailbox               string   `json:"mailbox"`
	Ops                   int      `json:"ops"`
	Linearizable          string   `json:"linearizable"` // ok | violation | inconclusive
	CheckedOps            int      `json:"linearizability_ops"`
	UnknownInfinite       int      `json:"unknown_outcome_ops"`     // unknown puts/consumes whose return was treated as infinity
	UnknownPutsObserved   int      `json:"unknown_puts_observed"`   // unknown puts whose value was seen, checked as taken effect
	UnknownPutsUnobserved int      `json:"unknown_puts_unobserved"` // unknown puts never seen, checked as not enqueued (exact)
	CheckSeconds          float64  `json:"check_seconds"`
	LongestPrefix         *int     `json:"longest_linearizable_prefix,omitempty"`
	Account               *Account `json:"accounting"`
	// A lease group: the mailbox checked with its .dlq (lease.go).
	LeaseGroup bool `json:"lease_group,omitempty"`
}

func (r *Report) relTime(t int64) string {
	return "t+" + time.Duration(t-r.origin).String()
}

func (r *Report) describeRef(o OpRef) string {
	var b strings.Builder
	if o.Role != "" {
		fmt.Fprintf(&b, "%s: ", o.Role)
	}
	fmt.Fprintf(&b, "line %d client %d %s", o.Line, o.Client, o.Op)
	switch {
	case o.Op == opPut && o.Value != nil:
		fmt.Fprintf(&b, "(%s)", *o.Value)
	case o.Outcome == outOK && o.Value != nil:
		fmt.Fprintf(&b, " -> %s", *o.Value)
	case o.Outcome == outOK:
		b.WriteString(" -> empty")
	}
	fmt.Fprintf(&b, " %s [call %s", o.Outcome, r.relTime(o.CallNs))
	if o.ReturnNs != nil {
		fmt.Fprintf(&b, ", return %s", r.relTime(*o.ReturnNs))
	}
	b.WriteString("]")
	return b.String()
}

func printSummary(w io.Writer, r *Report, maxList int) {
	fmt.Fprintf(w, "history: %s: %d ops, %d clients, %d mailboxes (times below are relative to the first call)\n",
		r.History, r.Operations, r.Clients, len(r.Mailboxes))
	fmt.Fprintf(w, "%-8s %8s %8s %8s %8s\n", "op", "ok", "ok-empty", "fail", "unknown")
	for _, k := range []string{opPut, opConsume, opPeek, opPurge, opAck, opRedrive} {
		c := r.Counts[k]
		if (k == opPurge || k == opAck || k == opRedrive) && c.OK+c.OKEmpty+c.Fail+c.Unknown == 0 {
			continue // histories without them print as before
		}
		empty := fmt.Sprint(c.OKEmpty)
		if k == opPut {
			empty = "-"
		}
		fmt.Fprintf(w, "%-8s %8d %8s %8d %8d\n", k, c.OK, empty, c.Fail, c.Unknown)
	}
	fmt.Fprintln(w)
	for _, m := range r.Mailboxes {
		a := m.Account
		acc := "ok"
		if n := a.Lost + a.Duplicates + a.Phantoms + a.OutOfOrder + a.EarlyRedeliveries + a.RedriveOverLimit; n > 0 {
			acc = fmt.Sprintf("VIOLATION (lost %d, duplicated %d, phantom %d, out of order %d)", a.Lost, a.Duplicates, a.Phantoms, a.OutOfOrder)
			if m.LeaseGroup {
				acc = fmt.Sprintf("VIOLATION (lost %d, delivered after removal %d, phantom %d, redelivered under a held lease %d, redrive beyond n %d)",
					a.Lost, a.Duplicates, a.Phantoms, a.EarlyRedeliveries, a.RedriveOverLimit)
			}
		}
		lin := strings.ToUpper(m.Linearizable)
		if m.Linearizable == linOK {
			lin = "ok"
		}
		name := m.Mailbox
		if m.LeaseGroup {
			name += " (with " + m.Mailbox + dlqSuffix + ", lease model)"
		}
		fmt.Fprintf(w, "mailbox %s: %d ops; linearizable: %s (%d ops checked, %d unknown-outcome, %.2fs); accounting: %s\n",
			name, m.Ops, lin, m.CheckedOps, m.UnknownInfinite, m.CheckSeconds, acc)
		if m.LeaseGroup {
			fmt.Fprintf(w, "  leases: %d leased deliveries, %d from the .dlq, %d values delivered more than once; acks %d acked, %d not_found, %d unknown; redrives %d ok (%d moved), %d unknown; removed by an ack %d, possibly by an unknown ack %d\n",
				a.LeasedDeliveries, a.DLQDeliveries, a.Redelivered, a.Acks.OK, a.Acks.OKEmpty, a.Acks.Unknown,
				a.Redrives.OK, a.RedriveMoved, a.Redrives.Unknown, a.Acked, a.PossiblyAcked)
		}
		fmt.Fprintf(w, "  acknowledged puts %d: consumed %d", a.Puts.OK, a.Consumed)
		if a.Unconsumed > 0 {
			fmt.Fprintf(w, ", never consumed %d", a.Unconsumed)
			if a.PossiblyByUnknown > 0 {
				fmt.Fprintf(w, " (%d possibly consumed by an unknown-outcome consume; %d such consumes)", a.PossiblyByUnknown, a.Consumes.Unknown)
			}
		}
		if a.PossiblyPurged > 0 {
			fmt.Fprintf(w, ", possibly removed by a purge %d (%d purges, %d unknown)", a.PossiblyPurged, a.Purges.OK, a.Purges.Unknown)
		}
		if a.Remaining > 0 {
			fmt.Fprintf(w, ", never consumed but mailbox not seen empty after (--no-drain) %d", a.Remaining)
		}
		fmt.Fprintf(w, "; unknown-outcome puts %d: consumed %d, not %d", a.Puts.Unknown, a.UnknownPutsConsumed, a.UnknownPutsNotConsumed)
		if m.UnknownPutsObserved > 0 || m.UnknownPutsUnobserved > 0 {
			fmt.Fprintf(w, " (seen %d, never seen %d)", m.UnknownPutsObserved, m.UnknownPutsUnobserved)
		}
		fmt.Fprintf(w, "; failed puts %d\n", a.Puts.Fail)
		fmt.Fprintf(w, "  consumes: %d with a value, %d empty, %d failed, %d unknown; peeks: %d with a value, %d empty\n",
			a.Consumes.OK, a.Consumes.OKEmpty, a.Consumes.Fail, a.Consumes.Unknown, a.Peeks.OK, a.Peeks.OKEmpty)
		if len(a.PossiblyValues) > 0 {
			fmt.Fprintf(w, "  possibly consumed by an unknown-outcome consume: %s\n", listValues(a.PossiblyValues, maxList))
		}
	}

	if len(r.Anomalies) > 0 {
		fmt.Fprintf(w, "\nanomalies (%d):\n", len(r.Anomalies))
		type key struct{ box, kind string }
		shown := map[key]int{}
		hidden := map[key]int{}
		var hiddenOrder []key
		for _, a := range r.Anomalies {
			k := key{a.Mailbox, a.Kind}
			if maxList > 0 && shown[k] >= maxList {
				if hidden[k] == 0 {
					hiddenOrder = append(hiddenOrder, k)
				}
				hidden[k]++
				continue
			}
			shown[k]++
			v := ""
			if a.Value != nil {
				v = " " + *a.Value
			}
			fmt.Fprintf(w, "  [%s] %s%s: %s\n", a.Mailbox, a.Kind, v, a.Detail)
			for _, o := range a.Ops {
				fmt.Fprintf(w, "      %s\n", r.describeRef(o))
			}
		}
		for _, k := range hiddenOrder {
			fmt.Fprintf(w, "  [%s] %s: %d more not listed (see --json or the HTML)\n", k.box, k.kind, hidden[k])
		}
	}
	fmt.Fprintln(w)
	if r.HTML != "" {
		fmt.Fprintf(w, "timeline: %s\n", r.HTML)
	}
	fmt.Fprintf(w, "RESULT: %s (exit %d, %.2fs)\n", strings.ToUpper(r.Result), r.ExitCode, r.ElapsedSeconds)
}

func listValues(vs []string, max int) string {
	if max > 0 && len(vs) > max {
		return strings.Join(vs[:max], ", ") + fmt.Sprintf(", ... (%d more)", len(vs)-max)
	}
	return strings.Join(vs, ", ")
}

const maxAnnotations = 500

// writeVisualization writes porcupine's timeline of the mailboxes that are
// not linearizable, with the accounting anomalies as an extra annotation row
// and as a table below it.
func writeVisualization(w *bytes.Buffer, lc *linChecker, info porcupine.LinearizationInfo, r *Report) error {
	var anns []porcupine.Annotation
	for _, a := range r.Anomalies {
		if len(anns) >= maxAnnotations {
			break
		}
		if a.Kind == kindNotLinearizable || a.Kind == kindInconclusive || len(a.Ops) == 0 {
			continue
		}
		start, end := a.Ops[0].CallNs, a.Ops[0].CallNs
		for _, o := range a.Ops {
			start = min(start, o.CallNs)
			if o.ReturnNs != nil {
				end = max(end, *o.ReturnNs)
			}
		}
		desc := a.Kind
		if a.Value != nil {
			desc += " " + *a.Value
		}
		details := a.Detail
		for _, o := range a.Ops {
			details += " | " + r.describeRef(o) // shown as text
		}
		anns = append(anns, porcupine.Annotation{Tag: "anomalies [" + a.Mailbox + "]", Start: start, End: end,
			Description: desc, Details: details, BackgroundColor: "#f8c0c0"})
	}
	info.AddAnnotations(anns)
	var vis bytes.Buffer
	if err := porcupine.Visualize(lc.vizModel, info, &vis); err != nil {
		return err
	}
	page := vis.String()
	var extra bytes.Buffer
	extra.WriteString(`<div style="font-family:sans-serif;margin:1em">`)
	var boxes []string
	for _, m := range r.Mailboxes {
		if m.Linearizable == linViolation {
			boxes = append(boxes, m.Mailbox)
		}
	}
	fmt.Fprintf(&extra, "<p>Timeline of the mailboxes that are not linearizable (one partition each, in this order): <b>%s</b>. "+
		"Client rows are dense indices of the client ids in sorted order; hover an operation for its history line and real client id. "+
		"Unknown-outcome consumes, and unknown-outcome puts, end at the far right (return treated as infinity); unknown-outcome puts whose value nobody saw are left out (checked as not enqueued, which is exact). %s</p>",
		html.EscapeString(strings.Join(boxes, ", ")), vizNote(lc))
	anomalyTable(&extra, r)
	extra.WriteString("</div>\n")
	if i := strings.LastIndex(page, "</body>"); i >= 0 {
		page = page[:i] + extra.String() + page[i:]
	} else {
		page += extra.String()
	}
	w.WriteString(page)
	return nil
}

// writeAnomalyPage writes a standalone page with the anomaly table (used when
// every mailbox is linearizable but the accounting found violations).
func writeAnomalyPage(w *bytes.Buffer, r *Report) {
	fmt.Fprintf(w, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"UTF-8\"><title>checker: %s</title></head>\n"+
		"<body style=\"font-family:sans-serif;margin:1em\">\n<h1>Mailbox history check: %s</h1>\n",
		html.EscapeString(r.History), html.EscapeString(r.Result))
	fmt.Fprintf(w, "<p>History <code>%s</code>: %d ops. Times are relative to the first call.</p>\n", html.EscapeString(r.History), r.Operations)
	anomalyTable(w, r)
	w.WriteString("</body></html>\n")
}

func anomalyTable(w *bytes.Buffer, r *Report) {
	fmt.Fprintf(w, "<h2>Anomalies (%d)</h2>\n", len(r.Anomalies))
	w.WriteString(`<table style="border-collapse:collapse" border="1" cellpadding="4">` +
		"<tr><th>mailbox</th><th>kind</th><th>value</th><th>detail</th><th>role</th><th>line</th><th>client</th><th>op</th><th>value</th><th>outcome</th><th>call</th><th>return</th></tr>\n")
	esc := html.EscapeString
	for _, a := range r.Anomalies {
		v := ""
		if a.Value != nil {
			v = *a.Value
		}
		n := max(1, len(a.Ops))
		fmt.Fprintf(w, `<tr><td rowspan="%d">%s</td><td rowspan="%d"><b>%s</b></td><td rowspan="%d">%s</td><td rowspan="%d">%s</td>`,
			n, esc(a.Mailbox), n, esc(a.Kind), n, esc(v), n, esc(a.Detail))
		if len(a.Ops) == 0 {
			w.WriteString("<td colspan=\"8\"></td></tr>\n")
			continue
		}
		for i, o := range a.Ops {
			if i > 0 {
				w.WriteString("<tr>")
			}
			ov := "null"
			if o.Value != nil {
				ov = *o.Value
			}
			ret := "-"
			if o.ReturnNs != nil {
				ret = r.relTime(*o.ReturnNs)
			}
			fmt.Fprintf(w, "<td>%s</td><td>%d</td><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
				esc(o.Role), o.Line, o.Client, esc(o.Op), esc(ov), esc(o.Outcome), r.relTime(o.CallNs), ret)
		}
	}
	w.WriteString("</table>\n")
}

func vizNote(lc *linChecker) string {
	if lc.leaseViz != nil {
		return "Lease model (a mailbox with its .dlq; entries shown as value/deliveries): intervals as recorded; lease ends and sweeps are not drawn (they happen between operations, within the bounds the checker derives)."
	}
	if lc.prunedExplanation {
		return "The plain search did not finish within the time limit, so this shows the pruned search: intervals tightened to what any linearization must respect, and puts rejected as soon as they are certain to fail later (the first red op may be such a put)."
	}
	return "Intervals as recorded, plain FIFO model."
}
