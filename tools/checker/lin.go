package main

import (
	"math"
	"sort"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Linearizability result of one mailbox.
const (
	linOK           = "ok"
	linViolation    = "violation"
	linInconclusive = "inconclusive"
)

type linResult struct {
	Mailbox    string
	Ops        int // operations given to porcupine (fail outcomes and failed/unknown peeks dropped)
	Unknown    int // of which with an unknown outcome whose return was treated as infinity
	Observed   int // unknown puts whose value was observed (so they took effect)
	Unobserved int // unknown puts never observed: checked as not enqueued
	Result     string
	Elapsed    time.Duration

	// For a violation (filled by explainViolations).
	Plain    bool         // explained with the plain model on the recorded intervals
	Cert     *certificate // violation proven without a search
	Prefix   int          // ops in the longest linearizable prefix found
	Stuck    *Op          // earliest-returning op outside it
	StuckOps int
}

// linChecker holds what the porcupine runs share.
type linChecker struct {
	h      *History
	vt     *valueTable
	hints  *hints
	model  porcupine.Model
	inf    int64
	byBox  map[string][]porcupine.Operation
	boxIdx map[string]int
	// unknown-outcome puts never seen, per mailbox: left out of the check
	unobserved map[string]int
	purged     map[string]bool // mailboxes with a purge (ok or unknown)
	// For explaining a violation: the ops with their recorded intervals
	// (not tightened or reordered) and a model that prunes nothing, so the
	// timeline shows where a plain FIFO queue gets stuck.
	origByBox         map[string][]porcupine.Operation
	plainModel        porcupine.Model
	vizModel          porcupine.Model // the model the explanation used
	certs             map[string]*certificate
	prunedExplanation bool
	// Lease groups (lease.go), by base mailbox, checked with their own model.
	groups   map[string]*leaseGroup
	leaseViz *leaseGroup // the group the timeline shows, when it shows one
}

// leaseOptions are the lease model's parameters (lease.go).
type leaseOptions struct {
	maxDeliveries int
	slackNs       int64
}

var defaultLeaseOptions = leaseOptions{maxDeliveries: 5, slackNs: 25_000_000}

func newLinChecker(h *History) *linChecker {
	lc, err := newLinCheckerOpts(h, defaultLeaseOptions)
	if err != nil {
		panic(err)
	}
	return lc
}

func newLinCheckerOpts(h *History, lo leaseOptions) (*linChecker, error) {
	lc := &linChecker{h: h, vt: newValueTable(), byBox: map[string][]porcupine.Operation{}, boxIdx: map[string]int{}, unobserved: map[string]int{}, purged: map[string]bool{}}
	for i, b := range h.Mailboxes {
		lc.boxIdx[b] = i
	}
	for i := range h.Ops {
		if op := &h.Ops[i]; op.HasValue {
			lc.vt.id(op.Value)
		}
	}
	// "Infinity": later than every timestamp in the history.
	lc.inf = h.MaxTime + 1
	if h.MaxTime == math.MaxInt64 {
		lc.inf = h.MaxTime
	}

	// Unknown-outcome consumes of each mailbox, by call time: the first 64
	// get a bit in qState.unkDone.
	unkBit := map[*Op]int8{}
	lc.hints = &hints{unkCalls: make([][]int64, len(h.Mailboxes))}
	unk := make([][]*Op, len(h.Mailboxes))
	inGroup := func(op *Op) bool { return h.IsLeaseGroup(h.PartitionOf(op.Mailbox)) }
	lc.groups = map[string]*leaseGroup{}
	groupOps := map[string][]*Op{}
	for i := range h.Ops {
		if op := &h.Ops[i]; inGroup(op) {
			p := h.PartitionOf(op.Mailbox)
			groupOps[p] = append(groupOps[p], op)
		}
	}
	for p, ops := range groupOps {
		g, err := buildLeaseGroup(h, lc.vt, p, ops, lo.maxDeliveries, lo.slackNs, lc.inf)
		if err != nil {
			return nil, err
		}
		lc.groups[p] = g
	}
	for i := range h.Ops {
		if op := &h.Ops[i]; op.Kind == opConsume && op.Outcome == outUnknown && !inGroup(op) {
			b := lc.boxIdx[op.Mailbox]
			unk[b] = append(unk[b], op)
		}
	}
	for b, ops := range unk {
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
		for i, op := range ops {
			lc.hints.unkCalls[b] = append(lc.hints.unkCalls[b], op.Call)
			if i < 64 {
				unkBit[op] = int8(i)
			}
		}
	}

	// Values observed (returned by an ok consume or peek) per mailbox, with
	// the earliest return of an observing op.
	type boxVal struct{ box, val string }
	firstSeen := map[boxVal]int64{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != opPut && op.Outcome == outOK && op.HasValue {
			k := boxVal{op.Mailbox, op.Value}
			if t, ok := firstSeen[k]; !ok || op.Return < t {
				firstSeen[k] = op.Return
			}
		}
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Outcome == outFail || (op.Kind == opPeek && op.Outcome != outOK) || inGroup(op) {
			continue
		}
		in := qInput{unknown: op.Outcome == outUnknown, box: int32(lc.boxIdx[op.Mailbox]), unkBit: -1, idx: int32(op.Index)}
		meta := &opMeta{op: op}
		ret := op.Return
		var out int32 = emptyID
		switch op.Kind {
		case opPut:
			in.kind = 'p'
			in.val = lc.vt.id(op.Value)
			if in.unknown {
				if t, ok := firstSeen[boxVal{op.Mailbox, op.Value}]; ok {
					// It took effect, and before the observation returned.
					in.unknown, in.observed = false, true
					if t < op.Call {
						t = op.Call // observed before invoked: left to the check to reject
					}
					ret = t
				} else {
					// Never seen: checking it as "not enqueued" is exact.
					// Had it been enqueued, it was never at the head when
					// anyone looked, and nothing saw the mailbox empty while
					// it was there; so without it every observation stays
					// the same, and the unknown-outcome consume that may have
					// removed it becomes one that took nothing.
					lc.unobserved[op.Mailbox]++
					continue
				}
			}
		case opConsume:
			in.kind = 'c'
			if in.unknown {
				ret, meta.infRet = lc.inf, true
				if b, ok := unkBit[op]; ok {
					in.unkBit = b
				}
			} else if op.HasValue {
				out = lc.vt.id(op.Value)
			}
		case opPeek:
			in.kind = 'k'
			if op.HasValue {
				out = lc.vt.id(op.Value)
			}
		case opPurge:
			in.kind = 'x'
			lc.purged[op.Mailbox] = true
			if in.unknown {
				ret, meta.infRet = lc.inf, true
			}
		}
		lc.byBox[op.Mailbox] = append(lc.byBox[op.Mailbox], porcupine.Operation{
			ClientId: h.ClientIndex(op.Client),
			Input:    in,
			Call:     op.Call,
			Output:   out,
			Return:   ret,
			Metadata: meta,
		})
	}
	n := len(lc.vt.vals)
	lc.hints.hb, lc.hints.pk, lc.hints.rc = make([]int64, n), make([]int64, n), make([]int64, n)
	for i := 0; i < n; i++ {
		lc.hints.hb[i], lc.hints.pk[i], lc.hints.rc[i] = math.MaxInt64, math.MinInt64, math.MaxInt64
	}
	lc.origByBox = map[string][]porcupine.Operation{}
	for box, ops := range lc.byBox {
		cp := make([]porcupine.Operation, len(ops))
		for i, o := range ops {
			m := *o.Metadata.(*opMeta)
			m.call, m.ret = o.Call, o.Return
			o.Metadata = &m
			cp[i] = o
		}
		lc.origByBox[box] = cp
	}
	lc.hints.finite = make([]int32, len(h.Mailboxes))
	for box, ops := range lc.byBox {
		for _, o := range ops {
			if !o.Metadata.(*opMeta).infRet {
				lc.hints.finite[lc.boxIdx[box]]++
			}
		}
	}
	lc.certs = map[string]*certificate{}
	lc.hints.noPruneBox = make([]bool, len(h.Mailboxes))
	for box, ops := range lc.byBox {
		if lc.purged[box] {
			// Tightening, certificates, reordering and pruning all reason
			// that only a consume removes a value; a purge removes values
			// too. Such a mailbox gets the plain search (bounds are still
			// computed: an unknown consume cannot take a value an ok
			// consume returned).
			lc.hints.noPruneBox[lc.boxIdx[box]] = true
			put := map[int32]int{}
			for i, o := range ops {
				if in := o.Input.(qInput); in.kind == 'p' && !in.unknown {
					put[in.val] = i
				}
			}
			computeBounds(ops, lc.hints, put)
			continue
		}
		conflict := tighten(ops, lc.hints)
		if c := certify(ops, lc.hints, lc.vt, lc.hints.unkCalls[lc.boxIdx[box]], conflict); c != nil {
			lc.certs[box] = c
		}
		reorderPuts(ops, lc.hints)
	}
	nb := len(h.Mailboxes)
	hi := lc.hints
	hi.putCalls, hi.putSufHB = make([][]int64, nb), make([][]int64, nb)
	hi.emptyCalls, hi.emptySufRet = make([][]int64, nb), make([][]int64, nb)
	for box, ops := range lc.byBox {
		b := lc.boxIdx[box]
		type cr struct{ call, t int64 }
		var puts, empties []cr
		for i := range ops {
			o := &ops[i]
			m := o.Metadata.(*opMeta)
			m.call, m.ret = o.Call, o.Return
			in := o.Input.(qInput)
			in.call = o.Call
			o.Input = in
			switch {
			case in.kind == 'p' && !in.unknown:
				puts = append(puts, cr{o.Call, hi.hb[in.val]})
			case (in.kind == 'c' || in.kind == 'k') && !in.unknown && o.Output.(int32) == emptyID:
				empties = append(empties, cr{o.Call, o.Return})
			}
		}
		suffix := func(xs []cr) ([]int64, []int64) {
			sort.Slice(xs, func(i, j int) bool { return xs[i].call < xs[j].call })
			calls, suf := make([]int64, len(xs)), make([]int64, len(xs))
			m := int64(math.MaxInt64)
			for i := len(xs) - 1; i >= 0; i-- {
				m = min(m, xs[i].t)
				calls[i], suf[i] = xs[i].call, m
			}
			return calls, suf
		}
		hi.putCalls[b], hi.putSufHB[b] = suffix(puts)
		hi.emptyCalls[b], hi.emptySufRet[b] = suffix(empties)
	}
	lc.model = newModel(lc.vt, lc.hints)
	plain := *lc.hints
	plain.noPrune = true
	lc.plainModel = newModel(lc.vt, &plain)
	return lc, nil
}

// reorderPuts changes the order in which the search tries concurrent puts,
// not what is checked. Porcupine tries pending ops in order of their call
// timestamps, and a put tried in the wrong order is often found out only
// when its value leaves the queue. Among calls with no return event between
// them, the order of the call timestamps is free: every relation "a returned
// before b was invoked" stays as it was. So within each such run, the call
// timestamps of the puts are handed out again in the order in which their
// values were first seen at the head (values never seen last).
func reorderPuts(ops []porcupine.Operation, hi *hints) {
	reorderPutsBy(ops, func(in interface{}) (bool, int64, int64) {
		q := in.(qInput)
		if q.kind != 'p' {
			return false, 0, 0
		}
		return true, hi.hb[q.val], hi.rc[q.val]
	})
}

// reorderPutsBy is reorderPuts for any model: key says whether an op is a
// put and the order keys of its value (first seen, then removal bound).
func reorderPutsBy(ops []porcupine.Operation, key func(in interface{}) (bool, int64, int64)) {
	type ev struct {
		t   int64
		ret bool
		op  int
	}
	evs := make([]ev, 0, 2*len(ops))
	for i, o := range ops {
		evs = append(evs, ev{o.Call, false, i}, ev{o.Return, true, i})
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].t != evs[j].t {
			return evs[i].t < evs[j].t
		}
		return !evs[i].ret && evs[j].ret // calls before returns, as porcupine orders them
	})
	var puts []int
	var times []int64
	flush := func() {
		if len(puts) > 1 {
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			sort.SliceStable(puts, func(i, j int) bool {
				_, hi, ri := key(ops[puts[i]].Input)
				_, hj, rj := key(ops[puts[j]].Input)
				if hi != hj {
					return hi < hj
				}
				return ri < rj
			})
			for k, p := range puts {
				ops[p].Call = times[k]
			}
		}
		puts, times = puts[:0], times[:0]
	}
	for _, e := range evs {
		if e.ret {
			flush()
			continue
		}
		if isPut, _, _ := key(ops[e.op].Input); isPut {
			puts = append(puts, e.op)
			times = append(times, e.t)
		}
	}
	flush()
}

// computeBounds fills, for the values put in this mailbox (definite puts),
// hb, pk and rc (see hints) from the ops' current intervals.
func computeBounds(ops []porcupine.Operation, hi *hints, put map[int32]int) {
	for v := range put {
		hi.hb[v], hi.pk[v], hi.rc[v] = math.MaxInt64, math.MinInt64, math.MaxInt64
	}
	for _, o := range ops {
		in := o.Input.(qInput)
		if in.kind == 'p' || in.unknown {
			continue
		}
		v := o.Output.(int32)
		if _, ok := put[v]; !ok {
			continue
		}
		hi.hb[v] = min(hi.hb[v], o.Return)
		if in.kind == 'c' {
			hi.rc[v] = min(hi.rc[v], o.Call)
		} else {
			hi.pk[v] = max(hi.pk[v], o.Call)
		}
	}
	for v := range put {
		if hi.rc[v] != math.MaxInt64 {
			hi.rc[v] = max(hi.rc[v], hi.pk[v])
		}
	}
}

// tighten shrinks the intervals of one mailbox's ops to where any
// linearization must place them, and leaves the hints' hb, pk and rc
// computed from the result. This cannot change the verdict: every
// linearization of the history satisfies the derived bounds (so it is one
// of the tightened history), and the tightened intervals lie inside the
// original ones (so a linearization of the tightened history is one of the
// original). An update that would empty an interval is skipped (such a
// history is not linearizable, and porcupine will say so). Fewer
// overlapping ops means far fewer orders for the search to try.
//
// With values unique, for definite puts (ok, or unknown but observed):
//   - put(v) precedes every op that returned v: put(v).return <= hb[v], and
//     such an op's call >= put(v).call;
//   - a peek that returned v precedes the removal of v: its return <= the
//     return of an ok consume of v (consume's call >= pk[v] is in rc);
//   - if hb[v] < rc[a] then a cannot be ahead of v (it would have to be
//     gone before v reached the head), so v is ahead of a and put(v)
//     precedes put(a): put(v).return <= put(a).return and put(a).call >=
//     put(v).call.
func tighten(ops []porcupine.Operation, hi *hints) (conflict int) {
	conflict = -1
	put := map[int32]int{} // value -> index in ops of its definite put
	for i, o := range ops {
		if in := o.Input.(qInput); in.kind == 'p' && !in.unknown {
			put[in.val] = i
		}
	}
	setRet := func(i int, t int64) bool {
		if t < ops[i].Call && conflict < 0 {
			conflict = i
		}
		if t < ops[i].Return && t >= ops[i].Call {
			ops[i].Return = t
			return true
		}
		return false
	}
	setCall := func(i int, t int64) bool {
		if t > ops[i].Return && conflict < 0 {
			conflict = i
		}
		if t > ops[i].Call && t <= ops[i].Return {
			ops[i].Call = t
			return true
		}
		return false
	}
	type pv struct {
		v  int32
		rc int64
	}
	for round := 0; round < 6; round++ {
		computeBounds(ops, hi, put)
		changed := false
		// Observations vs their put, and peeks vs the consume.
		consRet := map[int32]int64{}
		for _, o := range ops {
			if in := o.Input.(qInput); in.kind == 'c' && !in.unknown && o.Output.(int32) != emptyID {
				v := o.Output.(int32)
				if t, ok := consRet[v]; !ok || o.Return < t {
					consRet[v] = o.Return
				}
			}
		}
		for i, o := range ops {
			in := o.Input.(qInput)
			if in.kind == 'p' || in.unknown || o.Output.(int32) == emptyID {
				continue
			}
			v := o.Output.(int32)
			if p, ok := put[v]; ok {
				changed = setCall(i, ops[p].Call) || changed
			}
			if in.kind == 'k' {
				if t, ok := consRet[v]; ok {
					changed = setRet(i, t) || changed
				}
			}
		}
		// put(v) vs its observations.
		for v, p := range put {
			if hi.hb[v] != math.MaxInt64 {
				changed = setRet(p, hi.hb[v]) || changed
			}
		}
		// FIFO: hb[v] < rc[a] => put(v) before put(a).
		var byRC []pv
		for v := range put {
			if hi.rc[v] != math.MaxInt64 {
				byRC = append(byRC, pv{v, hi.rc[v]})
			}
		}
		sort.Slice(byRC, func(i, j int) bool { return byRC[i].rc < byRC[j].rc })
		// suffix minimum of put(a).return, with the value achieving it and
		// the runner-up (so v never bounds itself).
		n := len(byRC)
		type best struct {
			t1 int64
			v1 int32
			t2 int64
		}
		suf := make([]best, n+1)
		suf[n] = best{math.MaxInt64, -1, math.MaxInt64}
		for i := n - 1; i >= 0; i-- {
			b := suf[i+1]
			t := ops[put[byRC[i].v]].Return
			switch {
			case t < b.t1:
				b = best{t, byRC[i].v, b.t1}
			case t < b.t2:
				b.t2 = t
			}
			suf[i] = b
		}
		// prefix maximum of put(v).call over values sorted by hb.
		type hv struct {
			v  int32
			hb int64
		}
		var byHB []hv
		for v := range put {
			if hi.hb[v] != math.MaxInt64 {
				byHB = append(byHB, hv{v, hi.hb[v]})
			}
		}
		sort.Slice(byHB, func(i, j int) bool { return byHB[i].hb < byHB[j].hb })
		for v, p := range put {
			hb := hi.hb[v]
			if hb == math.MaxInt64 {
				continue
			}
			k := sort.Search(n, func(i int) bool { return byRC[i].rc > hb })
			b := suf[k]
			t := b.t1
			if b.v1 == v {
				t = b.t2
			}
			if t != math.MaxInt64 {
				changed = setRet(p, t) || changed
			}
		}
		type cm struct {
			t1 int64
			v1 int32
			t2 int64
		}
		pre := make([]cm, len(byHB)+1)
		pre[0] = cm{math.MinInt64, -1, math.MinInt64}
		for i, x := range byHB {
			b := pre[i]
			t := ops[put[x.v]].Call
			switch {
			case t > b.t1:
				b = cm{t, x.v, b.t1}
			case t > b.t2:
				b.t2 = t
			}
			pre[i+1] = b
		}
		for a, p := range put {
			rc := hi.rc[a]
			if rc == math.MaxInt64 {
				continue
			}
			k := sort.Search(len(byHB), func(i int) bool { return byHB[i].hb >= rc }) // values with hb < rc
			b := pre[k]
			t := b.t1
			if b.v1 == a {
				t = b.t2
			}
			if t != math.MinInt64 {
				changed = setCall(p, t) || changed
			}
		}
		if !changed {
			break
		}
	}
	computeBounds(ops, hi, put)
	return conflict
}

// checkAll checks every mailbox, jobs at a time, each with its own timeout
// (0: none).
func (lc *linChecker) checkAll(timeout time.Duration, jobs int) []*linResult {
	results := make([]*linResult, len(lc.h.Partitions))
	if jobs < 1 {
		jobs = 1
	}
	sem := make(chan struct{}, jobs)
	var wg sync.WaitGroup
	for i, box := range lc.h.Partitions {
		ops := lc.byBox[box]
		model := lc.model
		r := &linResult{Mailbox: box, Ops: len(ops), Unobserved: lc.unobserved[box]}
		if g := lc.groups[box]; g != nil {
			ops, model = g.ops, g.model
			r.Ops, r.Unobserved = len(ops), g.unobserved
		}
		for _, o := range ops {
			m := o.Metadata.(*opMeta)
			if m.infRet {
				r.Unknown++
			}
			switch in := o.Input.(type) {
			case qInput:
				if in.observed {
					r.Observed++
				}
			case lInput:
				if in.observed {
					r.Observed++
				}
			}
		}
		results[i] = r
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			start := time.Now()
			if c := lc.certs[r.Mailbox]; c != nil {
				r.Result, r.Cert = linViolation, c
				r.Elapsed = time.Since(start)
				return
			}
			res := porcupine.CheckOperationsTimeout(model, ops, timeout)
			r.Elapsed = time.Since(start)
			switch res {
			case porcupine.Ok:
				r.Result = linOK
			case porcupine.Illegal:
				r.Result = linViolation
			default:
				r.Result = linInconclusive
			}
		}()
	}
	wg.Wait()
	return results
}

// explain re-runs the violating mailboxes with porcupine's verbose checker
// (which records partial linearizations for the visualization) and fills in
// the longest linearizable prefix and the op the search got stuck at.
func (lc *linChecker) explain(bad []*linResult, plainTimeout, timeout time.Duration) porcupine.LinearizationInfo {
	var fifoBad []*linResult
	var leaseInfo *porcupine.LinearizationInfo
	for _, r := range bad {
		g := lc.groups[r.Mailbox]
		if g == nil {
			fifoBad = append(fifoBad, r)
			continue
		}
		// A lease group: its own model, no reductions to undo.
		_, info := porcupine.CheckOperationsVerbose(g.model, g.ops, plainTimeout)
		r.Plain = true
		fillStuck(r, info, g.ops)
		if leaseInfo == nil {
			leaseInfo, lc.leaseViz = &info, g
		}
	}
	if len(fifoBad) == 0 {
		lc.vizModel = lc.leaseViz.model
		return *leaseInfo
	}
	lc.leaseViz = nil
	bad = fifoBad
	order := map[string]int{}
	for i, r := range bad {
		order[r.Mailbox] = i
	}
	partition := func(history []porcupine.Operation) [][]porcupine.Operation {
		parts := make([][]porcupine.Operation, len(bad))
		for _, o := range history {
			i := order[o.Metadata.(*opMeta).op.Mailbox]
			parts[i] = append(parts[i], o)
		}
		return parts
	}
	run := func(model porcupine.Model, byBox map[string][]porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
		var all []porcupine.Operation
		for _, r := range bad {
			all = append(all, byBox[r.Mailbox]...)
		}
		model.Partition = partition
		return porcupine.CheckOperationsVerbose(model, all, timeout)
	}
	// First the plain FIFO model on the recorded intervals (its search can
	// take long on a history that is not linearizable); if that does not
	// finish within plainTimeout, the pruned search on tightened intervals.
	res, info := run(lc.plainModel, lc.origByBox, plainTimeout)
	explainedPlain := res == porcupine.Illegal
	lc.vizModel = lc.plainModel
	if !explainedPlain {
		t := timeout
		for _, r := range bad {
			if r.Cert != nil {
				t = plainTimeout // the pruned search has not been run on it
			}
		}
		_, info = run(lc.model, lc.byBox, t)
		lc.vizModel = lc.model
		lc.prunedExplanation = true
	}
	for _, r := range bad {
		r.Plain = explainedPlain
	}
	partials := info.PartialLinearizationsOperations()
	for i, r := range bad {
		if i >= len(partials) {
			break
		}
		src := lc.byBox
		if explainedPlain {
			src = lc.origByBox
		}
		fillStuckFrom(r, partials[i], src[r.Mailbox])
	}
	return info
}

// fillStuck fills the longest linearizable prefix of a single-partition
// verbose check, and the earliest-returning op outside it.
func fillStuck(r *linResult, info porcupine.LinearizationInfo, ops []porcupine.Operation) {
	if partials := info.PartialLinearizationsOperations(); len(partials) > 0 {
		fillStuckFrom(r, partials[0], ops)
	}
}

func fillStuckFrom(r *linResult, partials [][]porcupine.Operation, ops []porcupine.Operation) {
	longest := []porcupine.Operation{}
	for _, p := range partials {
		if len(p) > len(longest) {
			longest = p
		}
	}
	in := map[*Op]bool{}
	for _, o := range longest {
		in[o.Metadata.(*opMeta).op] = true
	}
	r.Prefix = len(longest)
	var outside []porcupine.Operation
	for _, o := range ops {
		if !in[o.Metadata.(*opMeta).op] {
			outside = append(outside, o)
		}
	}
	sort.SliceStable(outside, func(a, b int) bool {
		if outside[a].Return != outside[b].Return {
			return outside[a].Return < outside[b].Return
		}
		return outside[a].Call < outside[b].Call
	})
	r.StuckOps = len(outside)
	if len(outside) > 0 {
		r.Stuck = outside[0].Metadata.(*opMeta).op
	}
}
