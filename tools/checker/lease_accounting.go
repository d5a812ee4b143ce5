package main

import "fmt"

// accountLeaseGroup is the accounting of a lease group (a mailbox and its
// .dlq, lease.go), independent of porcupine. A value may be delivered many
// times (each leased delivery that is not acked may come back, from the
// mailbox or, past the delivery limit, from the .dlq, and again after a
// redrive); it is *removed* once, by an ok consume without a lease or an
// ok ack. So:
//
//   - duplicate: removed twice, or delivered by a consume invoked after a
//     removal of it had returned (an acked message delivered again);
//   - redelivered_under_lease: a delivery D2 that follows a leased
//     delivery D1 (D1 returned before D2 was invoked) yet returned before
//     D1's lease could have ended (D2.return < D1.call + lease - slack);
//   - phantom: a value delivered or peeked that no put in the group had;
//   - lost: an acknowledged put never removed, unless a purge may have
//     removed it, an unknown-outcome ack of it may have, or (counted) an
//     unknown-outcome consume without a lease may have;
//   - redrive_over_limit: a redrive that reports more moved than its n.
//
// The FIFO witness check of plain mailboxes (out_of_order) is not done
// here: a message taken by an unknown-outcome leased consume may come back
// after later ones; the lease model checks the order.
func accountLeaseGroup(h *History, base string, ops []*Op, noDrain bool, lo leaseOptions) (*Account, []Anomaly) {
	a := &Account{Acks: &OutcomeCounts{}, Redrives: &OutcomeCounts{}}
	var anomalies []Anomaly
	puts := map[string]*Op{}
	deliveries := map[string][]*Op{} // ok consumes that returned the value
	peeks := map[string][]*Op{}
	removals := map[string][]*Op{} // ok consumes without a lease, acks that acked
	unknownAck := map[string]*Op{}
	unknownPlainConsumes := 0
	var purges []*Op
	var leaseMs int64
	var lastEmptyCall int64
	sawEmpty := false
	for _, op := range ops {
		switch op.Kind {
		case opPut:
			a.Puts.add(op)
			if op.Outcome != outFail {
				puts[op.Value] = op
			}
		case opConsume:
			a.Consumes.add(op)
			if op.LeaseMs > 0 {
				leaseMs = op.LeaseMs
			}
			switch {
			case op.Outcome == outUnknown && op.LeaseMs == 0:
				unknownPlainConsumes++
			case op.Outcome == outOK && op.HasValue:
				deliveries[op.Value] = append(deliveries[op.Value], op)
				if op.LeaseMs > 0 {
					a.LeasedDeliveries++
				} else {
					removals[op.Value] = append(removals[op.Value], op)
				}
				if op.Mailbox != base {
					a.DLQDeliveries++
				}
			case op.Outcome == outOK && op.Mailbox == base && (!sawEmpty || op.Call > lastEmptyCall):
				lastEmptyCall, sawEmpty = op.Call, true
			}
		case opPeek:
			a.Peeks.add(op)
			if op.Outcome == outOK && op.HasValue {
				peeks[op.Value] = append(peeks[op.Value], op)
			}
		case opAck:
			a.Acks.add(op)
			if op.Outcome == outOK && op.AckResult == ackAcked {
				removals[op.Value] = append(removals[op.Value], op)
			}
			if op.Outcome == outUnknown {
				unknownAck[op.Value] = op
			}
		case opRedrive:
			a.Redrives.add(op)
			if op.Outcome == outOK {
				a.RedriveMoved += op.Moved
				if op.N > 0 && op.Moved > op.N {
					a.RedriveOverLimit++
					anomalies = append(anomalies, Anomaly{Kind: kindRedriveLimit, Mailbox: base,
						Detail: fmt.Sprintf("redrive with n=%d reports %d moved", op.N, op.Moved), Ops: []OpRef{ref("redrive", op)}})
				}
			}
		case opPurge:
			a.Purges.add(op)
			if op.Outcome != outFail {
				purges = append(purges, op)
			}
		}
	}
	leaseNs := leaseMs * 1_000_000

	seen := map[string]bool{}
	var values []string
	for _, op := range ops {
		if (op.Kind == opConsume || op.Kind == opPeek) && op.Outcome == outOK && op.HasValue && !seen[op.Value] {
			seen[op.Value] = true
			values = append(values, op.Value)
		}
	}
	for _, v := range values {
		ds := deliveries[v]
		if len(ds) > 1 {
			a.Redelivered++
		}
		rs := removals[v]
		// Removed twice, or delivered after a removal had returned.
		var first *Op
		for _, r := range rs {
			if r.HasReturn && (first == nil || r.Return < first.Return) {
				first = r
			}
		}
		var after []*Op
		if first != nil {
			for _, d := range ds {
				if d != first && d.Call > first.Return {
					after = append(after, d)
				}
			}
		}
		if len(rs) > 1 || len(after) > 0 {
			a.Duplicates++
			detail := fmt.Sprintf("removed %d times (ok consumes without a lease, acks that acked)", len(rs))
			if len(after) > 0 {
				detail = fmt.Sprintf("delivered %d more times after it was removed (acked, or consumed without a lease)", len(after))
			}
			an := Anomaly{Kind: kindDuplicate, Mailbox: base, Value: strp(v), Detail: detail}
			if p := puts[v]; p != nil {
				an.Ops = append(an.Ops, ref("put", p))
			}
			for _, r := range rs {
				an.Ops = append(an.Ops, ref("removed by", r))
			}
			for _, d := range after {
				an.Ops = append(an.Ops, ref("delivered after", d))
			}
			anomalies = append(anomalies, an)
		}
		// A leased delivery hides the message for the lease's duration.
		for _, d1 := range ds {
			if d1.LeaseMs == 0 {
				continue
			}
			for _, d2 := range ds {
				if d2 != d1 && d1.Return < d2.Call && d2.Return < d1.Call+leaseNs-lo.slackNs {
					a.EarlyRedeliveries++
					anomalies = append(anomalies, Anomaly{Kind: kindRedelivered, Mailbox: base, Value: strp(v),
						Detail: fmt.Sprintf("delivered again %v after a leased delivery began, before its %d ms lease could have ended",
							fmtNs(d2.Return-d1.Call), leaseMs),
						Ops: []OpRef{ref("leased delivery", d1), ref("delivered again", d2)}})
				}
			}
		}
		if puts[v] == nil {
			a.Phantoms++
			why := "no put of this value anywhere in the history"
			var putRef []OpRef
			if p, ok := h.PutOf(v); ok {
				putRef = append(putRef, ref("put", p))
				switch {
				case h.PartitionOf(p.Mailbox) != base:
					why = fmt.Sprintf("the value was put in mailbox %q, not in %s or %s%s", p.Mailbox, base, base, dlqSuffix)
				case p.Outcome == outFail:
					why = "its put failed (definitely not enqueued)"
				}
			}
			an := Anomaly{Kind: kindPhantom, Mailbox: base, Value: strp(v), Detail: "delivered or peeked value that no put had: " + why, Ops: putRef}
			for _, c := range ds {
				an.Ops = append(an.Ops, ref("consume", c))
			}
			for _, c := range peeks[v] {
				an.Ops = append(an.Ops, ref("peek", c))
			}
			anomalies = append(anomalies, an)
		}
	}

	// Lost acknowledged puts.
	var unconsumed []*Op
	for _, op := range ops {
		if op.Kind != opPut {
			continue
		}
		removed := len(removals[op.Value]) > 0
		switch op.Outcome {
		case outOK:
			switch {
			case removed:
				a.Consumed++
				for _, r := range removals[op.Value] {
					if r.Kind == opAck {
						a.Acked++
						break
					}
				}
			case unknownAck[op.Value] != nil:
				a.PossiblyAcked++
			case purgedAfter(purges, op):
				a.PossiblyPurged++
			case noDrain && !(sawEmpty && lastEmptyCall > op.Return):
				a.Remaining++
			default:
				unconsumed = append(unconsumed, op)
			}
		case outUnknown:
			if removed || len(deliveries[op.Value]) > 0 {
				a.UnknownPutsConsumed++
			} else {
				a.UnknownPutsNotConsumed++
			}
		}
	}
	a.Unconsumed = len(unconsumed)
	a.PossiblyByUnknown = min(len(unconsumed), unknownPlainConsumes)
	if len(unconsumed) > unknownPlainConsumes {
		a.Lost = len(unconsumed) - unknownPlainConsumes
		detail := "acknowledged put never removed: no ok consume without a lease and no ack took it (from the mailbox or its .dlq)"
		if unknownPlainConsumes > 0 {
			detail += fmt.Sprintf(" (%d such puts, only %d unknown-outcome consumes without a lease could account for them: at least %d lost)",
				len(unconsumed), unknownPlainConsumes, a.Lost)
		}
		for _, p := range unconsumed {
			an := Anomaly{Kind: kindLost, Mailbox: base, Value: strp(p.Value), Detail: detail, Ops: []OpRef{ref("put", p)}}
			for _, d := range deliveries[p.Value] {
				an.Ops = append(an.Ops, ref("delivered", d))
			}
			anomalies = append(anomalies, an)
		}
	} else {
		for _, p := range unconsumed {
			a.PossiblyValues = append(a.PossiblyValues, p.Value)
		}
	}
	return a, anomalies
}

func fmtNs(ns int64) string {
	return fmt.Sprintf("%.3fs", float64(ns)/1e9)
}
