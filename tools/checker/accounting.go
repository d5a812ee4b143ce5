package main

import (
	"fmt"
	"sort"
)

// Anomaly kinds.
const (
	kindLost            = "lost"
	kindDuplicate       = "duplicate"
	kindPhantom         = "phantom"
	kindOutOfOrder      = "out_of_order"
	kindNotLinearizable = "not_linearizable"
	kindInconclusive    = "inconclusive"
	// Lease groups (lease_accounting.go).
	kindRedelivered  = "redelivered_under_lease"
	kindRedriveLimit = "redrive_over_limit"
)

// Anomaly is one finding, with the operations that show it.
type Anomaly struct {
	Kind    string  `json:"kind"`
	Mailbox string  `json:"mailbox"`
	Value   *string `json:"value,omitempty"`
	Detail  string  `json:"detail"`
	Ops     []OpRef `json:"ops"`
}

// OpRef is an operation as written in the history, with its role in an anomaly.
type OpRef struct {
	Role     string  `json:"role,omitempty"`
	Line     int     `json:"line"`
	Client   int64   `json:"client"`
	Op       string  `json:"op"`
	Mailbox  string  `json:"mailbox"`
	Value    *string `json:"value"`
	Outcome  string  `json:"outcome"`
	CallNs   int64   `json:"call_ns"`
	ReturnNs *int64  `json:"return_ns"`
	op       *Op
}

func ref(role string, op *Op) OpRef {
	r := OpRef{Role: role, Line: op.Line, Client: op.Client, Op: op.Kind, Mailbox: op.Mailbox,
		Outcome: op.Outcome, CallNs: op.Call, op: op}
	if op.HasValue {
		v := op.Value
		r.Value = &v
	}
	if op.HasReturn {
		t := op.Return
		r.ReturnNs = &t
	}
	return r
}

func strp(s string) *string { return &s }

// OutcomeCounts counts operations of one kind by outcome.
type OutcomeCounts struct {
	OK      int `json:"ok"`
	OKEmpty int `json:"ok_empty,omitempty"` // consume/peek ok with null (mailbox empty)
	Fail    int `json:"fail"`
	Unknown int `json:"unknown"`
}

func (c *OutcomeCounts) add(op *Op) {
	switch op.Outcome {
	case outOK:
		if op.Kind == opAck {
			if op.AckResult == ackAcked {
				c.OK++
			} else {
				c.OKEmpty++ // not_found
			}
		} else if op.Kind != opPut && op.Kind != opPurge && op.Kind != opRedrive && !op.HasValue {
			c.OKEmpty++
		} else {
			c.OK++
		}
	case outFail:
		c.Fail++
	default:
		c.Unknown++
	}
}

// Account is the accounting of one mailbox, independent of porcupine.
type Account struct {
	Puts     OutcomeCounts `json:"puts"`
	Consumes OutcomeCounts `json:"consumes"`
	Peeks    OutcomeCounts `json:"peeks"`
	Purges   OutcomeCounts `json:"purges"`

	Consumed               int `json:"consumed_acknowledged"` // ok puts consumed by an ok consume
	UnknownPutsConsumed    int `json:"unknown_puts_consumed"` // unknown puts whose value an ok consume returned
	UnknownPutsNotConsumed int `json:"unknown_puts_not_consumed"`

	Unconsumed        int      `json:"unconsumed_acknowledged"`            // ok puts never returned by an ok consume (counted ones)
	PossiblyPurged    int      `json:"possibly_purged,omitempty"`          // of those, a purge (ok or unknown) may have removed
	PossiblyByUnknown int      `json:"possibly_consumed_by_unknown"`       // of those, explained by unknown-outcome consumes
	PossiblyValues    []string `json:"possibly_consumed_values,omitempty"` // when all are explained
	Lost              int      `json:"lost"`                               // at least this many lost
	Remaining         int      `json:"remaining_not_drained,omitempty"`    // --no-drain: never consumed, mailbox not seen empty after
	Duplicates        int      `json:"duplicates"`                         // values returned by two or more ok consumes
	Phantoms          int      `json:"phantoms"`                           // values returned that no ok/unknown put in this mailbox had
	OutOfOrder        int      `json:"out_of_order"`                       // pairs (one per later put)

	// Lease groups only (lease_accounting.go).
	Acks              *OutcomeCounts `json:"acks,omitempty"` // ok: acked, ok_empty: not_found
	Redrives          *OutcomeCounts `json:"redrives,omitempty"`
	RedriveMoved      int64          `json:"redrive_moved,omitempty"`
	LeasedDeliveries  int            `json:"leased_deliveries,omitempty"`
	DLQDeliveries     int            `json:"dlq_deliveries,omitempty"`
	Redelivered       int            `json:"values_delivered_more_than_once,omitempty"`
	Acked             int            `json:"removed_by_ack,omitempty"`
	PossiblyAcked     int            `json:"possibly_removed_by_unknown_ack,omitempty"`
	EarlyRedeliveries int            `json:"redelivered_under_lease,omitempty"`
	RedriveOverLimit  int            `json:"redrive_over_limit,omitempty"`
}

// purgedAfter reports whether one of `purges` may have taken effect after
// `put` did (it had not returned when the put was invoked): it may have
// removed the put's value.
func purgedAfter(purges []*Op, put *Op) bool {
	for _, p := range purges {
		if !p.HasReturn || p.Outcome == outUnknown || p.Return > put.Call {
			return true
		}
	}
	return false
}

// accountMailbox checks one mailbox's operations (in file order).
func accountMailbox(h *History, box string, ops []*Op, noDrain bool) (*Account, []Anomaly) {
	a := &Account{}
	var anomalies []Anomaly
	consumedBy := map[string][]*Op{} // value -> ok consumes (file order)
	peekedBy := map[string][]*Op{}
	puts := map[string]*Op{} // ok and unknown puts of this mailbox
	unknownConsumes := 0
	var purges []*Op // ok and unknown purges of this mailbox
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
			if op.Outcome == outUnknown {
				unknownConsumes++
			}
			if op.Outcome == outOK {
				if op.HasValue {
					consumedBy[op.Value] = append(consumedBy[op.Value], op)
				} else if !sawEmpty || op.Call > lastEmptyCall {
					lastEmptyCall, sawEmpty = op.Call, true
				}
			}
		case opPurge:
			a.Purges.add(op)
			if op.Outcome != outFail {
				purges = append(purges, op)
			}
		case opPeek:
			a.Peeks.add(op)
			if op.Outcome == outOK {
				if op.HasValue {
					peekedBy[op.Value] = append(peekedBy[op.Value], op)
				} else if !sawEmpty || op.Call > lastEmptyCall {
					lastEmptyCall, sawEmpty = op.Call, true
				}
			}
		}
	}

	// Duplicates and phantoms, per value in order of first appearance.
	seen := map[string]bool{}
	var values []string
	for _, op := range ops {
		if op.Kind != opPut && op.Outcome == outOK && op.HasValue && !seen[op.Value] {
			seen[op.Value] = true
			values = append(values, op.Value)
		}
	}
	for _, v := range values {
		cs := consumedBy[v]
		if len(cs) > 1 {
			a.Duplicates++
			an := Anomaly{Kind: kindDuplicate, Mailbox: box, Value: strp(v),
				Detail: fmt.Sprintf("value returned by %d ok consumes", len(cs))}
			if p := puts[v]; p != nil {
				an.Ops = append(an.Ops, ref("put", p))
			}
			for _, c := range cs {
				an.Ops = append(an.Ops, ref("consume", c))
			}
			anomalies = append(anomalies, an)
		}
		if puts[v] == nil {
			a.Phantoms++
			why := "no put of this value anywhere in the history"
			var putRef []OpRef
			if p, ok := h.PutOf(v); ok {
				putRef = append(putRef, ref("put", p))
				switch {
				case p.Mailbox != box:
					why = fmt.Sprintf("the value was put in mailbox %q, not here", p.Mailbox)
				case p.Outcome == outFail:
					why = "its put failed (definitely not enqueued)"
				}
			}
			verb := "consumed"
			if len(cs) == 0 {
				verb = "peeked"
			}
			an := Anomaly{Kind: kindPhantom, Mailbox: box, Value: strp(v), Detail: verb + " value that no put had: " + why, Ops: putRef}
			for _, c := range cs {
				an.Ops = append(an.Ops, ref("consume", c))
			}
			for _, c := range peekedBy[v] {
				an.Ops = append(an.Ops, ref("peek", c))
			}
			anomalies = append(anomalies, an)
		}
	}

	// Lost acknowledged puts, and unknown puts consumed or not.
	var unconsumed []*Op
	for _, op := range ops {
		if op.Kind != opPut {
			continue
		}
		consumed := len(consumedBy[op.Value]) > 0
		switch op.Outcome {
		case outOK:
			if consumed {
				a.Consumed++
			} else if purgedAfter(purges, op) {
				a.PossiblyPurged++
			} else if noDrain && !(sawEmpty && lastEmptyCall > op.Return) {
				a.Remaining++
			} else {
				unconsumed = append(unconsumed, op)
			}
		case outUnknown:
			if consumed {
				a.UnknownPutsConsumed++
			} else {
				a.UnknownPutsNotConsumed++
			}
		}
	}
	a.Unconsumed = len(unconsumed)
	a.PossiblyByUnknown = min(len(unconsumed), unknownConsumes)
	if len(unconsumed) > unknownConsumes {
		a.Lost = len(unconsumed) - unknownConsumes
		detail := "acknowledged put never returned by an ok consume"
		if unknownConsumes > 0 {
			detail += fmt.Sprintf(" (%d such puts, only %d unknown-outcome consumes could account for them: at least %d lost)",
				len(unconsumed), unknownConsumes, a.Lost)
		}
		for _, p := range unconsumed {
			anomalies = append(anomalies, Anomaly{Kind: kindLost, Mailbox: box, Value: strp(p.Value), Detail: detail, Ops: []OpRef{ref("put", p)}})
		}
	} else {
		for _, p := range unconsumed {
			a.PossiblyValues = append(a.PossiblyValues, p.Value)
		}
	}

	// Order: acknowledged A returned before B was invoked, both consumed ok;
	// violation if consume(B) returned before consume(A) was invoked. One
	// witness A (the one consumed latest) per B.
	type pc struct{ put, cons *Op }
	var pcs []pc
	for _, op := range ops {
		if op.Kind == opPut && op.Outcome == outOK {
			if cs := consumedBy[op.Value]; len(cs) > 0 {
				first := cs[0]
				for _, c := range cs[1:] {
					if c.Call < first.Call {
						first = c
					}
				}
				pcs = append(pcs, pc{op, first})
			}
		}
	}
	byRet := append([]pc(nil), pcs...)
	sort.SliceStable(byRet, func(i, j int) bool { return byRet[i].put.Return < byRet[j].put.Return })
	byCall := append([]pc(nil), pcs...)
	sort.SliceStable(byCall, func(i, j int) bool { return byCall[i].put.Call < byCall[j].put.Call })
	var best *pc
	k := 0
	for i := range byCall {
		b := &byCall[i]
		for k < len(byRet) && byRet[k].put.Return < b.put.Call {
			if best == nil || byRet[k].cons.Call > best.cons.Call {
				best = &byRet[k]
			}
			k++
		}
		if best != nil && b.cons.Return < best.cons.Call {
			a.OutOfOrder++
			anomalies = append(anomalies, Anomaly{Kind: kindOutOfOrder, Mailbox: box, Value: strp(b.put.Value),
				Detail: fmt.Sprintf("%s was put after %s completed, but was consumed before %s's consume began",
					b.put.Value, best.put.Value, best.put.Value),
				Ops: []OpRef{ref("earlier put", best.put), ref("later put", b.put),
					ref("consume of later", b.cons), ref("consume of earlier", best.cons)}})
		}
	}
	return a, anomalies
}
