package main

import (
	"fmt"
	"math"
	"sort"

	"github.com/anishathalye/porcupine"
)

// certificate is a short proof that a mailbox's history is not
// linearizable, found without a search. Proving a violation with Porcupine
// means exhausting every order of the ops before it, which can take far
// longer than finding a linearization of a correct history; these patterns
// cover the usual faults. Each uses only bounds that every linearization
// respects (recorded or tightened intervals, see tighten).
type certificate struct {
	Reason string
	Ops    []*Op
}

func opOf(o porcupine.Operation) *Op { return o.Metadata.(*opMeta).op }

// certify looks for a certificate among one mailbox's ops (tightened, with
// hi filled for its values).
func certify(ops []porcupine.Operation, hi *hints, vt *valueTable, unkCalls []int64, conflict int) *certificate {
	put := map[int32]int{}
	for i, o := range ops {
		if in := o.Input.(qInput); in.kind == 'p' && !in.unknown {
			put[in.val] = i
		}
	}
	// Observations per value.
	consumes := map[int32][]int{}
	for i, o := range ops {
		in := o.Input.(qInput)
		if in.kind == 'p' || in.unknown || o.Output.(int32) == emptyID {
			continue
		}
		v := o.Output.(int32)
		if _, ok := put[v]; !ok {
			return &certificate{Reason: fmt.Sprintf("%s returned %s, which no put in this mailbox enqueued", opOf(o).Kind, vt.name(v)), Ops: []*Op{opOf(o)}}
		}
		if in.kind == 'c' {
			consumes[v] = append(consumes[v], i)
		}
	}
	for v, cs := range consumes {
		if len(cs) > 1 {
			return &certificate{Reason: fmt.Sprintf("%s was returned by %d consumes but put once", vt.name(v), len(cs)), Ops: []*Op{opOf(ops[cs[0]]), opOf(ops[cs[1]])}}
		}
	}
	for i, o := range ops {
		in := o.Input.(qInput)
		if in.kind != 'k' || o.Output.(int32) == emptyID {
			continue
		}
		v := o.Output.(int32)
		if cs := consumes[v]; len(cs) > 0 && ops[cs[0]].Return < o.Call {
			return &certificate{Reason: fmt.Sprintf("peek returned %s after the consume that removed it had returned", vt.name(v)), Ops: []*Op{opOf(ops[cs[0]]), opOf(ops[i])}}
		}
	}
	for v, p := range put {
		if hi.hb[v] < ops[p].Call {
			return &certificate{Reason: fmt.Sprintf("%s was returned before its put was invoked", vt.name(v)), Ops: []*Op{opOf(ops[p])}}
		}
	}

	// FIFO: A's put returned before B's put was invoked, yet B was seen at
	// the head (hb[B]) before A could have been removed (rc[A]).
	type pr struct {
		v         int32
		call, ret int64
	}
	var ps []pr
	for v, p := range put {
		ps = append(ps, pr{v, ops[p].Call, ops[p].Return})
	}
	byRet := append([]pr(nil), ps...)
	sort.Slice(byRet, func(i, j int) bool { return byRet[i].ret < byRet[j].ret })
	byCall := append([]pr(nil), ps...)
	sort.Slice(byCall, func(i, j int) bool { return byCall[i].call < byCall[j].call })
	k := 0
	best := int32(-1)
	for _, b := range byCall {
		for k < len(byRet) && byRet[k].ret < b.call {
			a := byRet[k].v
			if hi.rc[a] != math.MaxInt64 && (best < 0 || hi.rc[a] > hi.rc[best]) {
				best = a
			}
			k++
		}
		if best >= 0 && hi.hb[b.v] < hi.rc[best] {
			return &certificate{Reason: fmt.Sprintf("FIFO: %s was put after %s's put returned, but was seen at the head before %s could have been removed",
				vt.name(b.v), vt.name(best), vt.name(best)), Ops: []*Op{opOf(ops[put[best]]), opOf(ops[put[b.v]])}}
		}
	}

	// Empty while a value was certainly in the mailbox: put returned before
	// the empty reply was invoked, and its removal cannot have happened by
	// the time that reply returned.
	prefMax := make([]int32, len(byRet)) // value with max rc among byRet[:i+1]
	var prefInf []int32                  // first value never returned by an ok consume, among byRet[:i+1]
	cur, curInf := int32(-1), int32(-1)
	for i, p := range byRet {
		if hi.rc[p.v] != math.MaxInt64 {
			if cur < 0 || hi.rc[p.v] > hi.rc[cur] {
				cur = p.v
			}
		} else if curInf < 0 {
			curInf = p.v
		}
		prefMax[i] = cur
		prefInf = append(prefInf, curInf)
	}
	for _, o := range ops {
		in := o.Input.(qInput)
		if in.kind == 'p' || in.unknown || o.Output.(int32) != emptyID {
			continue
		}
		n := sort.Search(len(byRet), func(i int) bool { return byRet[i].ret >= o.Call })
		if n == 0 {
			continue
		}
		if w := prefMax[n-1]; w >= 0 && hi.rc[w] > o.Return {
			return &certificate{Reason: fmt.Sprintf("%s reported the mailbox empty while %s was certainly in it", opOf(o).Kind, vt.name(w)), Ops: []*Op{opOf(ops[put[w]]), opOf(o)}}
		}
		if w := prefInf[n-1]; w >= 0 {
			if u := sort.Search(len(unkCalls), func(i int) bool { return unkCalls[i] > o.Return }); u == 0 {
				return &certificate{Reason: fmt.Sprintf("%s reported the mailbox empty while %s (never consumed, and no unknown-outcome consume could have taken it) was certainly in it", opOf(o).Kind, vt.name(w)), Ops: []*Op{opOf(ops[put[w]]), opOf(o)}}
			}
		}
	}
	if conflict >= 0 {
		return &certificate{Reason: "the bounds that FIFO order and the observed values force on this op contradict each other", Ops: []*Op{opOf(ops[conflict])}}
	}
	return nil
}
