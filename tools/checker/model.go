package main

import (
	"fmt"
	"html"
	"math"
	"math/bits"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The sequential specification: one FIFO queue of strings per mailbox.
//
// Values are interned to int32 ids (a table shared by all partitions, read
// only during the check). A queue state is an immutable window [h, t) of an
// append-only backing array that several states share: popping moves h,
// appending writes in place when the state ends at the backing's end and
// copies otherwise. Each state carries a polynomial hash of its contents,
// maintained in O(1) per step (mod the Mersenne prime 2^61-1), so the
// checker's cache lookups never walk the queue; Equal compares elements only
// when the hashes and lengths agree.

const emptyID int32 = -1 // output of a consume/peek that found the mailbox empty

type qBacking struct{ data []int32 }

type qState struct {
	b    *qBacking
	h, t int32
	hash uint64 // sum over i of w(item_i) * B^i, mod p
	pw   uint64 // B^(t-h) mod p

	// For pruning (see hints): the latest removal bound among the queued
	// values that an ok consume returned, how many queued values no ok
	// consume returned, and which of the mailbox's unknown-outcome consumes
	// (first 64 by call time) this state has already linearized.
	maxRC   int64
	nInf    int32
	unkDone uint64
	done    int32 // ops with a real return linearized so far
	now     int64 // latest call among the linearized ops
}

const (
	hashP    = (1 << 61) - 1
	hashBase = 0x1f3d5b79a2c4e6 % hashP
)

var hashBaseInv = powMod(hashBase, hashP-2)

func mulMod(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	// a, b < 2^61, so the product < 2^122: fold at bit 61.
	r := (hi<<3 | lo>>61) + (lo & hashP)
	if r >= hashP {
		r -= hashP
	}
	return r
}

func addMod(a, b uint64) uint64 {
	r := a + b
	if r >= hashP {
		r -= hashP
	}
	return r
}

func subMod(a, b uint64) uint64 {
	if a >= b {
		return a - b
	}
	return a + hashP - b
}

func powMod(b, e uint64) uint64 {
	r := uint64(1)
	for e > 0 {
		if e&1 == 1 {
			r = mulMod(r, b)
		}
		b = mulMod(b, b)
		e >>= 1
	}
	return r
}

// weight maps a value id to a pseudo-random non-zero residue (splitmix64).
func weight(id int32) uint64 {
	z := uint64(id) + 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	z %= hashP
	if z == 0 {
		z = 1
	}
	return z
}

func newQState() qState {
	return qState{b: &qBacking{}, pw: 1, maxRC: math.MinInt64, now: math.MinInt64}
}

func (s qState) len() int { return int(s.t - s.h) }

func (s qState) items() []int32 { return s.b.data[s.h:s.t] }

func (s qState) head() int32 {
	if s.h == s.t {
		return emptyID
	}
	return s.b.data[s.h]
}

func (s qState) push(v int32, hi *hints) qState {
	n := s
	if int32(len(s.b.data)) == s.t {
		s.b.data = append(s.b.data, v)
	} else {
		items := s.items()
		data := make([]int32, len(items)+1, len(items)+1+len(items)/2+8)
		copy(data, items)
		data[len(items)] = v
		n.b, n.h, n.t = &qBacking{data: data}, 0, int32(len(items))
	}
	n.t++
	n.hash = addMod(s.hash, mulMod(weight(v), s.pw))
	n.pw = mulMod(s.pw, hashBase)
	if hi.rc[v] == math.MaxInt64 {
		n.nInf++
	} else {
		n.maxRC = max(s.maxRC, hi.rc[v])
	}
	return n
}

func (s qState) pop(hi *hints) qState {
	n := s
	x := s.head()
	n.hash = mulMod(subMod(s.hash, weight(x)), hashBaseInv)
	n.pw = mulMod(s.pw, hashBaseInv)
	n.h++
	if hi.rc[x] == math.MaxInt64 {
		n.nInf--
	} else if hi.rc[x] == s.maxRC {
		n.maxRC = math.MinInt64
		for _, y := range n.items() {
			if hi.rc[y] != math.MaxInt64 {
				n.maxRC = max(n.maxRC, hi.rc[y])
			}
		}
	}
	return n
}

// clear empties the queue (a purge), keeping the search bookkeeping.
func (s qState) clear() qState {
	n := s
	n.h = n.t
	n.hash, n.pw = 0, 1
	n.maxRC, n.nInf = math.MinInt64, 0
	return n
}

func qEqual(a, b qState) bool {
	if a.len() != b.len() || a.hash != b.hash || a.unkDone != b.unkDone || a.done != b.done {
		return false
	}
	if a.b == b.b && a.h == b.h {
		return true
	}
	x, y := a.items(), b.items()
	for i := range x {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

// hints are facts about the whole history that let the model reject a step
// early when it is certain to fail later; they never reject a step that
// could lead to a linearization, so they change the speed, not the verdict.
//
// Without them the search commits to an order of concurrent puts and finds
// out only when the values come out of the queue, possibly thousands of
// steps later, after which it backtracks through every choice made in
// between. Values are unique, so:
//
//   - A queued value w that some ok consume returned can only be removed by
//     that consume (no earlier than its call), and only after every ok peek
//     that returned w (each no earlier than its call): rc[w] bounds its
//     removal from below.
//   - A queued value that no ok consume returned can only be removed by an
//     unknown-outcome consume that this state has not linearized yet (one
//     value each, no earlier than the consume's call and the value's peeks).
//   - A value v is seen at the head no later than hb[v] (the earliest return
//     of an ok consume or peek that returned it).
//
// So put(v) behind a queued w is doomed if w cannot be gone by hb[v], and an
// unknown-outcome consume cannot take a head value that an ok consume
// returned.
type hints struct {
	hb []int64 // by value id: earliest return of an ok consume/peek (in the put's mailbox) that returned it; MaxInt64 if none
	pk []int64 // by value id: latest call of an ok peek (in the put's mailbox) that returned it; MinInt64 if none
	// by value id: max(earliest call of an ok consume that returned it, pk);
	// MaxInt64 if no ok consume (in the put's mailbox) returned it.
	rc []int64
	// by mailbox index: calls of the unknown-outcome consumes, sorted; the
	// first 64 have a bit in qState.unkDone, the rest count as pending.
	unkCalls [][]int64
	noPrune  bool // never call a put doomed (for explaining a violation)
	// by mailbox index: the mailbox has purges, which remove values that no
	// consume returned: the pruning below assumes only consumes remove
	// values, so it is off there.
	noPruneBox []bool
	// by mailbox index: number of ops with a real (finite) return.
	finite []int32
	// by mailbox index: calls of the definite puts, sorted, with the suffix
	// minimum of their values' hb; calls of the ok consumes/peeks that found
	// the mailbox empty, sorted, with the suffix minimum of their returns.
	putCalls, putSufHB      [][]int64
	emptyCalls, emptySufRet [][]int64
}

// pendingUnknownBy counts the unknown-outcome consumes of the mailbox that
// state s has not linearized and that were invoked no later than t.
func (hi *hints) pendingUnknownBy(box int32, s qState, t int64) int {
	n := 0
	for i, c := range hi.unkCalls[box] {
		if c > t {
			break
		}
		if i >= 64 || s.unkDone&(1<<uint(i)) == 0 {
			n++
		}
	}
	return n
}

// deadline is the time by which every value queued now must be gone, for a
// state whose linearized ops were all invoked at or before now: a definite
// put invoked after now comes later, so its value w is queued behind them
// and seen at the head by hb[w]; an ok consume or peek that found the
// mailbox empty, invoked after now, also comes later and needs it empty.
func (hi *hints) deadline(box int32, now int64) int64 {
	d := int64(math.MaxInt64)
	if c := hi.putCalls[box]; len(c) > 0 {
		if k := sort.Search(len(c), func(i int) bool { return c[i] > now }); k < len(c) {
			d = hi.putSufHB[box][k]
		}
	}
	if c := hi.emptyCalls[box]; len(c) > 0 {
		if k := sort.Search(len(c), func(i int) bool { return c[i] > now }); k < len(c) {
			d = min(d, hi.emptySufRet[box][k])
		}
	}
	return d
}

// drainableBy reports whether every value queued in s can be gone by t.
func (hi *hints) drainableBy(s qState, box int32, t int64) bool {
	if s.len() == 0 || t == math.MaxInt64 {
		return true
	}
	if s.maxRC > t {
		return false
	}
	if s.nInf == 0 {
		return true
	}
	if int(s.nInf) > hi.pendingUnknownBy(box, s, t) {
		return false
	}
	for _, w := range s.items() {
		if hi.rc[w] == math.MaxInt64 && hi.pk[w] > t {
			return false
		}
	}
	return true
}

// doomed reports whether appending v to s (giving next) can never lead to
// a linearization: the values ahead of v cannot be gone by the time v is
// seen at the head, or the queue cannot be emptied in time for what must
// come later.
func (hi *hints) doomed(s, next qState, v int32, box int32) bool {
	if hi.noPrune || (box >= 0 && int(box) < len(hi.noPruneBox) && hi.noPruneBox[box]) {
		return false
	}
	if !hi.drainableBy(s, box, hi.hb[v]) {
		return true
	}
	return !hi.drainableBy(next, box, hi.deadline(box, next.now))
}

// qInput is the operation as the model sees it. Output is an int32 value id
// (emptyID for an empty mailbox); it is ignored for unknown outcomes.
type qInput struct {
	kind    byte // 'p' put, 'c' consume, 'k' peek, 'x' purge
	val     int32
	box     int32 // mailbox index
	unkBit  int8  // unknown consume: its bit in qState.unkDone, -1 if none
	idx     int32 // index of the op in the history
	call    int64 // call time as checked (see tighten, reorderPuts)
	unknown bool  // may or may not have taken effect
	// observed: an unknown put whose value some consume/peek returned, so it
	// did take effect (its return is bounded by that observation).
	observed bool
}

// valueTable interns values to ids.
type valueTable struct {
	ids  map[string]int32
	vals []string
}

func newValueTable() *valueTable { return &valueTable{ids: map[string]int32{}} }

func (vt *valueTable) id(v string) int32 {
	if id, ok := vt.ids[v]; ok {
		return id
	}
	id := int32(len(vt.vals))
	vt.ids[v] = id
	vt.vals = append(vt.vals, v)
	return id
}

func (vt *valueTable) name(id int32) string {
	if id == emptyID {
		return "empty"
	}
	return vt.vals[id]
}

// opMeta is attached to each porcupine operation (visualization tooltips and
// mapping back to history lines).
type opMeta struct {
	op        *Op
	infRet    bool  // return treated as infinity
	call, ret int64 // the interval checked (see tighten)
}

const stateShow = 6 // items shown at each end of a long queue

func newModel(vt *valueTable, hi *hints) porcupine.Model {
	nd := porcupine.NondeterministicModel{
		Init: func() []interface{} { return []interface{}{newQState()} },
		Step: func(state, input, output interface{}) []interface{} {
			s := state.(qState)
			in := input.(qInput)
			// An op with an unknown outcome (return at infinity) either took
			// effect or did not. "Did not" is the same as taking no effect
			// after every other op, so it is offered only in the tail, once
			// every op with a real return is linearized; before that such an
			// op can only take effect. This keeps the state a single queue
			// and stops the search from trying every position of an op that
			// did nothing.
			if in.unknown {
				if s.done == hi.finite[in.box] {
					return []interface{}{s}
				}
				s.now = max(s.now, in.call)
				if in.kind == 'p' {
					next := s.push(in.val, hi)
					if hi.doomed(s, next, in.val, in.box) {
						return nil
					}
					return []interface{}{next}
				}
				if in.kind == 'x' {
					return []interface{}{s.clear()}
				}
				// consume: takes the head, which must be a value that no ok
				// consume returned (values are unique).
				if s.len() == 0 || hi.rc[s.head()] != math.MaxInt64 {
					return nil
				}
				if in.unkBit >= 0 {
					s.unkDone |= 1 << uint(in.unkBit)
				}
				return []interface{}{s.pop(hi)}
			}
			s.done++
			s.now = max(s.now, in.call)
			switch in.kind {
			case 'p':
				next := s.push(in.val, hi)
				if hi.doomed(s, next, in.val, in.box) {
					return nil
				}
				return []interface{}{next}
			case 'c':
				out := output.(int32)
				if s.head() != out {
					return nil
				}
				if out == emptyID {
					return []interface{}{s}
				}
				return []interface{}{s.pop(hi)}
			case 'k':
				if s.head() != output.(int32) {
					return nil
				}
				return []interface{}{s}
			case 'x':
				return []interface{}{s.clear()}
			}
			panic("unknown op kind")
		},
		Equal: func(a, b interface{}) bool { return qEqual(a.(qState), b.(qState)) },
		Hash:  func(s interface{}) uint64 { st := s.(qState); return st.hash ^ uint64(st.len())<<61 },
		DescribeOperation: func(input, output interface{}) string {
			in := input.(qInput)
			switch in.kind {
			case 'p':
				switch {
				case in.observed:
					return fmt.Sprintf("put(%s) [unknown outcome, observed]", vt.name(in.val))
				case in.unknown:
					return fmt.Sprintf("put(%s) [unknown outcome]", vt.name(in.val))
				}
				return fmt.Sprintf("put(%s)", vt.name(in.val))
			case 'c':
				if in.unknown {
					return "consume() -> ? [unknown outcome]"
				}
				return "consume() -> " + vt.name(output.(int32))
			case 'x':
				if in.unknown {
					return "purge() [unknown outcome]"
				}
				return "purge()"
			default:
				return "peek() -> " + vt.name(output.(int32))
			}
		},
		DescribeState: func(state interface{}) string {
			s := state.(qState)
			it := s.items()
			var parts []string
			if len(it) <= 2*stateShow+1 {
				for _, v := range it {
					parts = append(parts, vt.name(v))
				}
			} else {
				for _, v := range it[:stateShow] {
					parts = append(parts, vt.name(v))
				}
				parts = append(parts, fmt.Sprintf("...%d more...", len(it)-2*stateShow))
				for _, v := range it[len(it)-stateShow:] {
					parts = append(parts, vt.name(v))
				}
			}
			// Shown through innerHTML by the visualization.
			return html.EscapeString("[" + strings.Join(parts, " ") + "]")
		},
		DescribeOperationMetadata: func(info interface{}) string {
			m, ok := info.(*opMeta)
			if !ok || m == nil {
				return ""
			}
			s := describeOp(m)
			o := m.op
			if m.call != o.Call || (!m.infRet && (!o.HasReturn || m.ret != o.Return)) {
				s += fmt.Sprintf("; checked as [%d, %d] (bounds any linearization must respect)", m.call, m.ret)
			}
			return html.EscapeString(s) // shown through innerHTML
		},
	}
	return nd.ToModel()
}

// describeOp: an operation as the visualization shows it (plain text).
func describeOp(m *opMeta) string {
	o := m.op
	s := fmt.Sprintf("line %d, client %d, %s %s, outcome %s, call_ns %d", o.Line, o.Client, o.Mailbox, o.Kind, o.Outcome, o.Call)
	if o.HasReturn {
		s += fmt.Sprintf(", return_ns %d", o.Return)
	}
	if m.infRet {
		s += "; return treated as infinity"
	}
	return s
}
