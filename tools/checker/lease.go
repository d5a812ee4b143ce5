package main

// Lease groups: a mailbox <box> checked together with its dead letters
// <box>.dlq, when the history takes leases, acks, redrives or reads the
// dead letters (README.md, "Leases, dead letters and redrive").
//
// The sequential specification is the state machine's (src/core/
// state_machine.cpp), per group:
//
//   - two queues in id order, the mailbox and its .dlq; each entry is a
//     value with its delivery count, its current id (learned from the
//     replies: an id the model has not seen yet is 0) and a status:
//     visible, leased, or awaiting (its lease ended at the delivery limit:
//     hidden until a sweep moves it to the .dlq);
//   - a consume takes the first visible entry of its queue: without a
//     lease it removes it, with one it marks it leased (deliveries + 1);
//   - a peek returns the first visible entry;
//   - ack(value, id) removes the entry if it is leased and has that id
//     (reply "acked"), else changes nothing (reply "not_found");
//   - redrive moves the first min(n, available) visible entries of the
//     .dlq, in order, to the tail of the mailbox, deliveries 0, new ids
//     (leased dead letters stay);
//   - purge empties its queue.
//
// Two kinds of events happen between operations, at times the history does
// not show: a lease ends (the entry is visible again, or awaiting if it
// has max-deliveries deliveries and is not in the .dlq), and a sweep moves
// every awaiting entry, in mailbox order, to the tail of the .dlq (new ids).
// Leases end by the log's clock: a lease taken by a consume C ends at
// C's log time + L, and an op's log time lies within its [call, return]
// (the leader stamps its wall clock, the clients' clock is the same
// machine's monotonic clock, read at call and return). So, with `slack`
// for the clocks' conversion and millisecond rounding:
//
//   - the lease may have ended before op X only if
//     X.return >= C.call + L - slack (lo);
//   - it has certainly ended before X if X.call > C.return + L + slack (hi);
//   - every lease of a group has the same L, so leases end in the order
//     the consumes took them (their log order): the ended leases are
//     always a prefix of the held ones, in taking order.
//
// Before each op the model branches over every sequence of lease ends and
// sweeps these bounds allow (sweeps anywhere, never forced: a sweep needs
// a leader, and a message never swept is caught by the accounting after
// the drain). This is a superset of what the service can do (sound); it
// is exact but for the slack, and for unknown-outcome ops, whose return
// is taken as infinity (any held lease may have ended before one).

import (
	"fmt"
	"html"
	"math"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

const (
	stVisible  byte = 0
	stLeased   byte = 1
	stAwaiting byte = 2
)

type lEntry struct {
	val   int32
	deliv int32
	id    uint64 // 0: not seen yet
	st    byte
}

type lLease struct {
	val    int32
	inDLQ  bool
	lo, hi int64
}

// lState is immutable: every step copies what it changes.
type lState struct {
	main, dlq []lEntry
	leases    []lLease // held leases in the order they were taken
	awaiting  []int32  // values of the awaiting entries, in the order their leases ended
	done      int32    // ops with a real return linearized so far
	now       int64    // latest call among the linearized ops (a function of which ops they are)
}

func (s lState) clone() lState {
	return lState{main: append([]lEntry(nil), s.main...), dlq: append([]lEntry(nil), s.dlq...),
		leases: append([]lLease(nil), s.leases...), awaiting: append([]int32(nil), s.awaiting...), done: s.done, now: s.now}
}

func (s *lState) queue(dlq bool) *[]lEntry {
	if dlq {
		return &s.dlq
	}
	return &s.main
}

func findVal(q []lEntry, v int32) int {
	for i := range q {
		if q[i].val == v {
			return i
		}
	}
	return -1
}

// endLease ends the oldest held lease.
func (s lState) endLease(maxDeliveries int32) lState {
	n := s.clone()
	l := n.leases[0]
	n.leases = n.leases[1:]
	q := n.queue(l.inDLQ)
	i := findVal(*q, l.val)
	if i < 0 {
		panic("a held lease without its entry")
	}
	if !l.inDLQ && (*q)[i].deliv >= maxDeliveries {
		(*q)[i].st = stAwaiting
		n.awaiting = append(n.awaiting, l.val)
	} else {
		(*q)[i].st = stVisible
	}
	return n
}

// sweepOrders returns the distinct orders in which the awaiting entries
// seq (values, in the order their leases ended) can reach the .dlq, when
// all of them are swept in one or more sweeps: each sweep moves a
// consecutive group of seq in mailbox order (pos). Orders are deduplicated
// as they are built (memo by suffix), so a run without inversions (a later
// lease end on an older message) costs one order, not 2^len.
func sweepOrders(seq []int32, pos map[int32]int) [][]int32 {
	memo := make([][][]int32, len(seq)+1)
	memo[len(seq)] = [][]int32{nil}
	for i := len(seq) - 1; i >= 0; i-- {
		seen := map[string]bool{}
		for g := i + 1; g <= len(seq); g++ {
			group := append([]int32(nil), seq[i:g]...)
			sort.Slice(group, func(a, b int) bool { return pos[group[a]] < pos[group[b]] })
			for _, rest := range memo[g] {
				o := append(append([]int32(nil), group...), rest...)
				k := fmt.Sprint(o)
				if !seen[k] {
					seen[k] = true
					memo[i] = append(memo[i], o)
				}
			}
		}
	}
	return memo[0]
}

// sweeps returns every state reachable from s by sweeps. Sweeps are never
// forced and change only what the .dlq holds (an awaiting entry is hidden
// in the mailbox, and its ack finds no lease either way), so the model
// defers them to the ops that look at the .dlq (or purge the mailbox):
// there, any prefix of the awaiting entries (a sweep takes every entry
// whose lease has ended) may have been swept, in any number of sweeps.
func (s lState) sweeps() []lState {
	out := []lState{s}
	if len(s.awaiting) == 0 {
		return out
	}
	pos := map[int32]int{}
	for i, e := range s.main {
		pos[e.val] = i
	}
	for k := 1; k <= len(s.awaiting); k++ {
		moving := map[int32]bool{}
		for _, v := range s.awaiting[:k] {
			moving[v] = true
		}
		for _, order := range sweepOrders(s.awaiting[:k], pos) {
			n := lState{leases: append([]lLease(nil), s.leases...), done: s.done, now: s.now, dlq: append([]lEntry(nil), s.dlq...),
				awaiting: append([]int32(nil), s.awaiting[k:]...)}
			for _, e := range s.main {
				if !(e.st == stAwaiting && moving[e.val]) {
					n.main = append(n.main, e)
				}
			}
			for _, v := range order {
				e := s.main[pos[v]]
				n.dlq = append(n.dlq, lEntry{val: e.val, deliv: e.deliv, st: stVisible})
			}
			out = append(out, n)
		}
	}
	return out
}

func dropLease(ls []lLease, v int32) []lLease {
	out := ls[:0:0]
	for _, l := range ls {
		if l.val != v {
			out = append(out, l)
		}
	}
	return out
}

func entriesEqual(a, b []lEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func lEqual(a, b lState) bool {
	if a.done != b.done || len(a.leases) != len(b.leases) || len(a.awaiting) != len(b.awaiting) ||
		!entriesEqual(a.main, b.main) || !entriesEqual(a.dlq, b.dlq) {
		return false
	}
	for i := range a.awaiting {
		if a.awaiting[i] != b.awaiting[i] {
			return false
		}
	}
	for i := range a.leases {
		if a.leases[i] != b.leases[i] {
			return false
		}
	}
	return true
}

func lHash(s lState) uint64 {
	h := uint64(14695981039346656037)
	mix := func(x uint64) {
		h ^= x
		h *= 1099511628211
	}
	mix(uint64(s.done))
	for _, e := range s.main {
		mix(uint64(e.val)<<8 | uint64(e.st)<<4 | uint64(e.deliv&15))
		mix(e.id)
	}
	mix(0xdead)
	for _, e := range s.dlq {
		mix(uint64(e.val)<<8 | uint64(e.st)<<4 | uint64(e.deliv&15))
		mix(e.id)
	}
	mix(uint64(len(s.leases)))
	mix(uint64(len(s.awaiting)))
	return h
}

// lInput is an op as the lease model sees it.
type lInput struct {
	kind     byte // 'p' put, 'c' consume, 'k' peek, 'a' ack, 'r' redrive, 'x' purge
	dlq      bool // on <box>.dlq
	val      int32
	id       uint64 // ack: the id it names
	lease    bool
	lo, hi   int64 // leased consume: bounds of its lease's end
	call     int64
	ret      int64 // math.MaxInt64 for an unknown outcome
	unknown  bool
	observed bool  // an unknown put whose value was seen (so it took effect)
	n        int64 // redrive: 0 = no limit
	idx      int32
}

// lOutput is what an ok op returned.
type lOutput struct {
	empty bool
	val   int32
	id    uint64 // 0: not recorded
	deliv int64  // -1: not recorded
	acked bool
	moved int64
}

type leaseModelCfg struct {
	maxDeliveries int32
	finite        int32 // ops with a real return in the group
	ghosts        int64 // unknown-outcome puts never seen, left out (see redrive)

	// For pruning the steps of unknown-outcome ops (they may be
	// linearized anywhere after their call, which the search would
	// otherwise try everywhere); each rule rejects only steps that cannot
	// lead to a linearization, so they change the speed, not the verdict.
	// A linearized op's point is at or after s.now, so an op invoked
	// after s.now is not linearized yet and comes later.
	removed  map[int32]bool  // values an ok consume without a lease or an ok ack removed
	obsCalls map[int32]int64 // latest call of an ok op that returned or acked the value
	// by value: ok deliveries and peeks that report a delivery count, by
	// call, with the suffix minimum of the count a later delivery must
	// exceed (a consume's count, a peek's count + 1)
	cntCalls map[int32][]int64
	cntMin   map[int32][]int64
	// latest return of a redrive that may have moved something (ok with
	// moved > 0, or unknown: infinity): a redrive resets delivery counts.
	redriveRet int64
}

// unknownTakeDoomed reports whether an unknown-outcome consume taking entry
// e (leased or not) at a point after s.now cannot lead to a linearization.
func (c *leaseModelCfg) unknownTakeDoomed(s lState, e lEntry, lease bool) bool {
	if !lease && (c.removed[e.val] || c.obsCalls[e.val] > s.now) {
		return true // removed by another op, or still to be seen
	}
	if c.redriveRet > s.now {
		return false // a later redrive may reset the count
	}
	calls := c.cntCalls[e.val]
	i := sort.Search(len(calls), func(i int) bool { return calls[i] > s.now })
	// a later delivery reports at most the count this one would have
	return i < len(calls) && c.cntMin[e.val][i] <= int64(e.deliv)+1
}

// events returns every state reachable from s by lease ends (and, before
// an op that looks at the .dlq, sweeps) before op `in` takes effect (see
// the bounds above).
func (c *leaseModelCfg) events(s lState, in lInput) []lState {
	forced := 0
	for i, l := range s.leases {
		if l.hi < in.call {
			forced = i + 1
		}
	}
	var ended []lState
	for i := 0; ; i++ {
		if i >= forced {
			ended = append(ended, s)
		}
		if len(s.leases) == 0 || (i >= forced && s.leases[0].lo > in.ret) {
			break
		}
		s = s.endLease(c.maxDeliveries)
	}
	if !(in.dlq || in.kind == 'r' || in.kind == 'x') {
		return ended
	}
	var out []lState
	for _, e := range ended {
		out = append(out, e.sweeps()...)
	}
	return out
}

func firstVisible(q []lEntry) int {
	for i := range q {
		if q[i].st == stVisible {
			return i
		}
	}
	return -1
}

// apply applies op `in` to s (after the events), checking its output.
func (c *leaseModelCfg) apply(s lState, in lInput, out lOutput, check bool) []lState {
	switch in.kind {
	case 'p':
		n := s.clone()
		q := n.queue(in.dlq)
		*q = append(*q, lEntry{val: in.val})
		return []lState{n}
	case 'c', 'k':
		q := *s.queue(in.dlq)
		i := firstVisible(q)
		if !check {
			if i < 0 || in.kind == 'k' {
				return []lState{s}
			}
			if c.unknownTakeDoomed(s, q[i], in.lease) {
				return nil
			}
		} else {
			if i < 0 {
				if out.empty {
					return []lState{s}
				}
				return nil
			}
			e := q[i]
			want := e.deliv
			if in.kind == 'c' {
				want++
			}
			if out.empty || e.val != out.val || (out.deliv >= 0 && out.deliv != int64(want)) ||
				(out.id != 0 && e.id != 0 && e.id != out.id) {
				return nil
			}
			if in.kind == 'k' {
				if e.id == 0 && out.id != 0 {
					n := s.clone()
					(*n.queue(in.dlq))[i].id = out.id
					return []lState{n}
				}
				return []lState{s}
			}
		}
		n := s.clone()
		nq := n.queue(in.dlq)
		if check && out.id != 0 {
			(*nq)[i].id = out.id
		}
		if in.lease {
			(*nq)[i].deliv++
			(*nq)[i].st = stLeased
			n.leases = append(n.leases, lLease{val: (*nq)[i].val, inDLQ: in.dlq, lo: in.lo, hi: in.hi})
		} else {
			*nq = append((*nq)[:i:i], (*nq)[i+1:]...)
		}
		return []lState{n}
	case 'a':
		q := *s.queue(in.dlq)
		i := findVal(q, in.val)
		acked := i >= 0 && q[i].st == stLeased && q[i].id == in.id
		if check && acked != out.acked {
			return nil
		}
		if !check && acked && c.obsCalls[in.val] > s.now {
			return nil // an unknown ack removing a value still to be seen
		}
		if !acked {
			return []lState{s}
		}
		n := s.clone()
		nq := n.queue(in.dlq)
		*nq = append((*nq)[:i:i], (*nq)[i+1:]...)
		n.leases = dropLease(n.leases, in.val)
		return []lState{n}
	case 'x':
		n := s.clone()
		q := n.queue(in.dlq)
		for _, e := range *q {
			if e.st == stLeased {
				n.leases = dropLease(n.leases, e.val)
			}
		}
		*q = nil
		if !in.dlq {
			n.awaiting = nil
		}
		return []lState{n}
	case 'r':
		avail := 0
		for _, e := range s.dlq {
			if e.st == stVisible {
				avail++
			}
		}
		limit := int64(math.MaxInt64)
		if in.n > 0 {
			limit = in.n
		}
		var ks []int
		if !check {
			ks = []int{int(min(limit, int64(avail)))}
		} else {
			// Unknown-outcome puts never seen are left out of the check
			// (README.md): one may have been a dead letter that this
			// redrive moved, so up to `ghosts` of the moved count may be
			// values the model does not hold.
			m := out.moved
			if m > limit {
				return nil
			}
			for k := max(int64(0), m-c.ghosts); k <= min(m, int64(avail)); k++ {
				if m < limit && k != int64(avail) {
					continue // fewer than n moved: every available one moved
				}
				ks = append(ks, int(k))
			}
		}
		var res []lState
		for _, k := range ks {
			n := lState{main: append([]lEntry(nil), s.main...), leases: append([]lLease(nil), s.leases...),
				awaiting: append([]int32(nil), s.awaiting...), done: s.done, now: s.now}
			moved := 0
			for _, e := range s.dlq {
				if e.st == stVisible && moved < k {
					n.main = append(n.main, lEntry{val: e.val})
					moved++
				} else {
					n.dlq = append(n.dlq, e)
				}
			}
			res = append(res, n)
		}
		return res
	}
	panic("unknown op kind")
}

func newLeaseModel(vt *valueTable, cfg *leaseModelCfg) porcupine.Model {
	nd := porcupine.NondeterministicModel{
		Init: func() []interface{} { return []interface{}{lState{}} },
		Step: func(state, input, output interface{}) []interface{} {
			s := state.(lState)
			in := input.(lInput)
			if in.unknown && s.done == cfg.finite {
				// In the tail, "did not take effect" is the same as taking
				// effect after every other op (nothing observes it).
				return []interface{}{s}
			}
			var out lOutput
			if !in.unknown {
				s.done++
				out = output.(lOutput)
			}
			s.now = max(s.now, in.call)
			var res []interface{}
			for _, e := range cfg.events(s, in) {
				for _, n := range cfg.apply(e, in, out, !in.unknown) {
					res = append(res, n)
				}
			}
			return res
		},
		Equal: func(a, b interface{}) bool { return lEqual(a.(lState), b.(lState)) },
		Hash:  func(s interface{}) uint64 { return lHash(s.(lState)) },
		DescribeOperation: func(input, output interface{}) string {
			in := input.(lInput)
			q := ""
			if in.dlq {
				q = ".dlq"
			}
			unk := ""
			if in.unknown {
				unk = " [unknown outcome]"
			}
			switch in.kind {
			case 'p':
				if in.observed {
					unk = " [unknown outcome, observed]"
				}
				return fmt.Sprintf("put%s(%s)%s", q, vt.name(in.val), unk)
			case 'c', 'k':
				name := map[byte]string{'c': "consume", 'k': "peek"}[in.kind]
				if in.lease {
					name += "+lease"
				}
				if in.unknown {
					return name + q + "() -> ?" + unk
				}
				o := output.(lOutput)
				if o.empty {
					return name + q + "() -> empty"
				}
				d := ""
				if o.deliv >= 0 {
					d = fmt.Sprintf(" (deliveries %d)", o.deliv)
				}
				return fmt.Sprintf("%s%s() -> %s%s", name, q, vt.name(o.val), d)
			case 'a':
				if in.unknown {
					return fmt.Sprintf("ack%s(%s, id %d)%s", q, vt.name(in.val), in.id, unk)
				}
				r := "not_found"
				if output.(lOutput).acked {
					r = "acked"
				}
				return fmt.Sprintf("ack%s(%s, id %d) -> %s", q, vt.name(in.val), in.id, r)
			case 'r':
				n := ""
				if in.n > 0 {
					n = fmt.Sprintf("n=%d", in.n)
				}
				if in.unknown {
					return "redrive(" + n + ")" + unk
				}
				return fmt.Sprintf("redrive(%s) -> moved %d", n, output.(lOutput).moved)
			default:
				return "purge" + q + "()" + unk
			}
		},
		DescribeState: func(state interface{}) string {
			s := state.(lState)
			show := func(q []lEntry) string {
				var parts []string
				for _, e := range q {
					p := fmt.Sprintf("%s/%d", vt.name(e.val), e.deliv)
					switch e.st {
					case stLeased:
						p += "(leased)"
					case stAwaiting:
						p += "(awaiting dlq)"
					}
					parts = append(parts, p)
				}
				return "[" + strings.Join(parts, " ") + "]"
			}
			return html.EscapeString(show(s.main) + " dlq " + show(s.dlq))
		},
		DescribeOperationMetadata: func(info interface{}) string {
			m, ok := info.(*opMeta)
			if !ok || m == nil {
				return ""
			}
			return html.EscapeString(describeOp(m))
		},
	}
	return nd.ToModel()
}

// leaseGroup is one group's ops and model.
type leaseGroup struct {
	ops        []porcupine.Operation
	model      porcupine.Model
	cfg        *leaseModelCfg
	unobserved int
	leaseMs    int64
}

// buildLeaseGroup turns the ops of a group (its mailbox and .dlq) into
// porcupine operations for the lease model.
func buildLeaseGroup(h *History, vt *valueTable, base string, ops []*Op, maxDeliveries int, slackNs int64, inf int64) (*leaseGroup, error) {
	g := &leaseGroup{cfg: &leaseModelCfg{maxDeliveries: int32(maxDeliveries)}}
	for _, op := range ops {
		if op.Kind == opConsume && op.LeaseMs > 0 {
			if g.leaseMs != 0 && g.leaseMs != op.LeaseMs {
				return nil, fmt.Errorf("mailbox %s: leased consumes with different lease_ms (%d and %d): the checker needs one lease duration per mailbox and its .dlq", base, g.leaseMs, op.LeaseMs)
			}
			g.leaseMs = op.LeaseMs
		}
	}
	seen := map[string]int64{} // value -> earliest return of an ok consume/peek that returned it
	for _, op := range ops {
		if (op.Kind == opConsume || op.Kind == opPeek) && op.Outcome == outOK && op.HasValue {
			if t, ok := seen[op.Value]; !ok || op.Return < t {
				seen[op.Value] = op.Return
			}
		}
	}
	leaseNs := g.leaseMs * 1_000_000
	for _, op := range ops {
		if op.Outcome == outFail || (op.Kind == opPeek && op.Outcome != outOK) {
			continue
		}
		in := lInput{unknown: op.Outcome == outUnknown, dlq: op.Mailbox != base, idx: int32(op.Index), call: op.Call}
		meta := &opMeta{op: op, call: op.Call}
		ret := op.Return
		out := lOutput{deliv: -1}
		switch op.Kind {
		case opPut:
			in.kind = 'p'
			in.val = vt.id(op.Value)
			if in.unknown {
				t, ok := seen[op.Value]
				if !ok {
					g.unobserved++
					continue
				}
				in.unknown, in.observed = false, true
				ret = max(t, op.Call)
			}
		case opConsume, opPeek:
			in.kind = 'c'
			if op.Kind == opPeek {
				in.kind = 'k'
			}
			if op.LeaseMs > 0 {
				in.lease = true
				in.lo = op.Call + leaseNs - slackNs
				in.hi = math.MaxInt64
				if !in.unknown {
					in.hi = op.Return + leaseNs + slackNs
				}
			}
			if !in.unknown {
				if op.HasValue {
					out.val = vt.id(op.Value)
					out.deliv = op.Deliveries
					out.id = parseID(op.MsgID)
				} else {
					out.empty = true
				}
			}
		case opAck:
			in.kind = 'a'
			in.val = vt.id(op.Value)
			in.id = parseID(op.MsgID)
			out.acked = op.AckResult == ackAcked
		case opRedrive:
			in.kind = 'r'
			in.n = op.N
			out.moved = op.Moved
		case opPurge:
			in.kind = 'x'
		}
		if in.unknown {
			ret, meta.infRet = inf, true
		} else {
			g.cfg.finite++
		}
		in.ret = ret
		if in.unknown {
			in.ret = math.MaxInt64
		}
		meta.ret = ret
		g.ops = append(g.ops, porcupine.Operation{ClientId: h.ClientIndex(op.Client), Input: in, Call: op.Call,
			Output: out, Return: ret, Metadata: meta})
	}
	g.cfg.ghosts = int64(g.unobserved)
	cfg := g.cfg
	cfg.removed, cfg.obsCalls = map[int32]bool{}, map[int32]int64{}
	cfg.cntCalls, cfg.cntMin = map[int32][]int64{}, map[int32][]int64{}
	cfg.redriveRet = math.MinInt64
	type cc struct{ call, k int64 }
	counts := map[int32][]cc{}
	for _, o := range g.ops {
		in, out := o.Input.(lInput), o.Output.(lOutput)
		if in.kind == 'r' && (in.unknown || out.moved > 0) {
			cfg.redriveRet = max(cfg.redriveRet, o.Return)
			if in.unknown {
				cfg.redriveRet = math.MaxInt64
			}
		}
		if in.unknown {
			continue
		}
		switch {
		case (in.kind == 'c' || in.kind == 'k') && !out.empty:
			if t, ok := cfg.obsCalls[out.val]; !ok || in.call > t {
				cfg.obsCalls[out.val] = in.call
			}
			if in.kind == 'c' && !in.lease {
				cfg.removed[out.val] = true
			}
			if out.deliv >= 0 {
				k := out.deliv
				if in.kind == 'k' {
					k++
				}
				counts[out.val] = append(counts[out.val], cc{in.call, k})
			}
		case in.kind == 'a':
			if t, ok := cfg.obsCalls[in.val]; !ok || in.call > t {
				cfg.obsCalls[in.val] = in.call
			}
			if out.acked {
				cfg.removed[in.val] = true
			}
		}
	}
	for v, xs := range counts {
		sort.Slice(xs, func(i, j int) bool { return xs[i].call < xs[j].call })
		calls, mins := make([]int64, len(xs)), make([]int64, len(xs))
		m := int64(math.MaxInt64)
		for i := len(xs) - 1; i >= 0; i-- {
			m = min(m, xs[i].k)
			calls[i], mins[i] = xs[i].call, m
		}
		cfg.cntCalls[v], cfg.cntMin[v] = calls, mins
	}
	g.model = newLeaseModel(vt, g.cfg)
	// Concurrent puts are tried in the order their values were first seen
	// (a put's value is first delivered in put order: older visible ones
	// go first, and a leased one was delivered before): this changes the
	// order of the search, not the verdict (see reorderPuts). The model's
	// lease bounds use the recorded call, kept in the input.
	first := map[int32]int64{}
	for _, o := range g.ops {
		in := o.Input.(lInput)
		if (in.kind == 'c' || in.kind == 'k') && !in.unknown && !in.dlq {
			if out := o.Output.(lOutput); !out.empty {
				if t, ok := first[out.val]; !ok || o.Return < t {
					first[out.val] = o.Return
				}
			}
		}
	}
	reorderPutsBy(g.ops, func(x interface{}) (bool, int64, int64) {
		in := x.(lInput)
		if in.kind != 'p' || in.dlq {
			return false, 0, 0
		}
		if t, ok := first[in.val]; ok {
			return true, t, 0
		}
		return true, math.MaxInt64, 0
	})
	sort.SliceStable(g.ops, func(i, j int) bool { return g.ops[i].Call < g.ops[j].Call })
	return g, nil
}

func parseID(s string) uint64 {
	var v uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		v = v*10 + uint64(c-'0')
	}
	return v
}
