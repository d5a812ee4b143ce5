package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Kinds and outcomes, as spelled in the history file.
const (
	opPut     = "put"
	opConsume = "consume"
	opPeek    = "peek"
	// SPEC v2: removes every message of the mailbox; its value (the count
	// removed) is not checked.
	opPurge = "purge"
	// Leases (SPEC v1/v2): ack of a leased message by id, and redrive of
	// the dead letters of <box>.dlq back to <box> (see lease.go).
	opAck     = "ack"
	opRedrive = "redrive"

	// Results of an ack with outcome ok.
	ackAcked    = "acked"
	ackNotFound = "not_found"

	// The dead-letter mailbox of <box> is <box> + dlqSuffix.
	dlqSuffix = ".dlq"

	outOK      = "ok"
	outFail    = "fail"
	outUnknown = "unknown"
)

// Op is one line of the history: an invocation paired with its completion.
type Op struct {
	Index    int    // position in the file, 0-based, among non-blank lines
	Line     int    // 1-based line number in the file
	Client   int64  // client id as written
	Kind     string // put | consume | peek | purge
	Mailbox  string
	Value    string // meaningful when HasValue
	HasValue bool   // false for a JSON null (empty mailbox) or an absent value
	Outcome  string // ok | fail | unknown
	Call     int64
	Return   int64 // for an unknown outcome: when the client gave up (may be absent: HasReturn false)

	HasReturn bool

	// Lease fields (optional; see README.md "Leases").
	LeaseMs    int64  // consume: lease= in ms (0: no lease)
	MsgID      string // consume/peek (ok with a value), ack: the message id
	Deliveries int64  // consume/peek (ok with a value): the reply's deliveries; -1 if absent
	AckResult  string // ack with outcome ok: acked | not_found
	N          int64  // redrive: n= (0: none)
	Moved      int64  // redrive with outcome ok: the reply's moved count
}

// baseMailbox is the mailbox whose dead letters `box` holds (box itself
// when it is not a dead-letter mailbox).
func baseMailbox(box string) string {
	if b, ok := strings.CutSuffix(box, dlqSuffix); ok && b != "" {
		return b
	}
	return box
}

// History is a parsed, validated history.
type History struct {
	Ops       []Op
	Mailboxes []string // sorted
	Clients   []int64  // sorted, distinct
	// Partitions checked together: a mailbox on its own, or (a lease
	// group) a mailbox with its dead letters <box>.dlq, when either has a
	// leased consume, an ack or a redrive, or <box>.dlq appears at all.
	Partitions []string          // sorted; a lease group is named by its base mailbox
	partOf     map[string]string // mailbox -> partition
	leaseGroup map[string]bool   // partition -> is a lease group
	clientIdx  map[int64]int     // client id -> dense index (for the visualization)
	putOf      map[string]int    // put value -> index in Ops (any outcome)
	MinTime    int64             // smallest timestamp in the history
	MaxTime    int64             // largest timestamp in the history
}

// InputError is a malformed history (exit code 2).
type InputError struct {
	Errors []string
	More   int // errors not kept in Errors
}

func (e *InputError) Error() string {
	s := strings.Join(e.Errors, "\n")
	if e.More > 0 {
		s += fmt.Sprintf("\n... and %d more errors", e.More)
	}
	return s
}

const maxKeptErrors = 20

// ParseHistory reads a JSON Lines history. Blank lines are skipped; every
// other line must be one JSON object with the fields described in README.md.
// Unknown fields are ignored. name is used in error messages.
func ParseHistory(r io.Reader, name string) (*History, error) {
	h := &History{clientIdx: map[int64]int{}, putOf: map[string]int{}}
	ierr := &InputError{}
	addErr := func(line int, format string, args ...interface{}) {
		if len(ierr.Errors) >= maxKeptErrors {
			ierr.More++
			return
		}
		ierr.Errors = append(ierr.Errors, fmt.Sprintf("%s:%d: ", name, line)+fmt.Sprintf(format, args...))
	}
	br := bufio.NewReaderSize(r, 1<<16)
	lineNo := 0
	first := true
	for {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && err != nil {
			if err != io.EOF {
				return nil, &InputError{Errors: []string{fmt.Sprintf("%s: read error: %v", name, err)}}
			}
			break
		}
		lineNo++
		if first {
			raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf")) // UTF-8 BOM
			first = false
		}
		line := bytes.TrimSpace(raw)
		if len(line) == 0 {
			continue
		}
		op, msg := parseLine(line)
		if msg != "" {
			addErr(lineNo, "%s", msg)
			continue
		}
		op.Line = lineNo
		op.Index = len(h.Ops)
		if op.Kind == opPut {
			if prev, dup := h.putOf[op.Value]; dup {
				addErr(lineNo, "put value %q was already put at line %d (put values must be unique across the history)", op.Value, h.Ops[prev].Line)
				continue
			}
			h.putOf[op.Value] = op.Index
		}
		h.Ops = append(h.Ops, op)
	}
	if len(ierr.Errors) > 0 {
		return nil, ierr
	}
	h.finish()
	return h, nil
}

func (h *History) finish() {
	boxes := map[string]bool{}
	clients := map[int64]bool{}
	h.MinTime, h.MaxTime = math.MaxInt64, math.MinInt64
	for i := range h.Ops {
		op := &h.Ops[i]
		boxes[op.Mailbox] = true
		clients[op.Client] = true
		if op.Call < h.MinTime {
			h.MinTime = op.Call
		}
		if op.Call > h.MaxTime {
			h.MaxTime = op.Call
		}
		if op.HasReturn && op.Return > h.MaxTime {
			h.MaxTime = op.Return
		}
	}
	if len(h.Ops) == 0 {
		h.MinTime, h.MaxTime = 0, 0
	}
	for b := range boxes {
		h.Mailboxes = append(h.Mailboxes, b)
	}
	sort.Strings(h.Mailboxes)
	h.partOf, h.leaseGroup = map[string]string{}, map[string]bool{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind == opAck || op.Kind == opRedrive || op.LeaseMs > 0 || baseMailbox(op.Mailbox) != op.Mailbox {
			h.leaseGroup[baseMailbox(op.Mailbox)] = true
		}
	}
	parts := map[string]bool{}
	for _, b := range h.Mailboxes {
		p := b
		if h.leaseGroup[baseMailbox(b)] {
			p = baseMailbox(b)
		}
		h.partOf[b] = p
		parts[p] = true
	}
	for p := range parts {
		h.Partitions = append(h.Partitions, p)
	}
	sort.Strings(h.Partitions)
	for c := range clients {
		h.Clients = append(h.Clients, c)
	}
	sort.Slice(h.Clients, func(i, j int) bool { return h.Clients[i] < h.Clients[j] })
	for i, c := range h.Clients {
		h.clientIdx[c] = i
	}
}

// ClientIndex is the dense, zero-based index of a client id (sorted order),
// used as the row in the visualization. When clients are 0..n-1 it is the id.
// PartitionOf is the partition a mailbox is checked in.
func (h *History) PartitionOf(box string) string { return h.partOf[box] }

// IsLeaseGroup reports whether a partition is a lease group (lease.go).
func (h *History) IsLeaseGroup(part string) bool { return h.leaseGroup[part] }

func (h *History) ClientIndex(c int64) int { return h.clientIdx[c] }

// PutOf returns the put op of a value (any outcome, any mailbox).
func (h *History) PutOf(v string) (*Op, bool) {
	i, ok := h.putOf[v]
	if !ok {
		return nil, false
	}
	return &h.Ops[i], true
}

func parseLine(line []byte) (Op, string) {
	var op Op
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return op, "not a JSON object (each line must be one object)"
		}
		return op, "invalid JSON: " + err.Error()
	}
	if fields == nil {
		return op, "not a JSON object (each line must be one object)"
	}
	if _, err := dec.Token(); err != io.EOF {
		return op, "unexpected data after the JSON object (one object per line)"
	}

	var msg string
	if op.Client, msg = intField(fields, "client", true); msg != "" {
		return op, msg
	}
	if op.Kind, msg = enumField(fields, "op", opPut, opConsume, opPeek, opPurge, opAck, opRedrive); msg != "" {
		return op, msg
	}
	if op.Mailbox, msg = stringField(fields, "mailbox"); msg != "" {
		return op, msg
	}
	if op.Mailbox == "" {
		return op, `field "mailbox": must not be empty`
	}
	if op.Outcome, msg = enumField(fields, "outcome", outOK, outFail, outUnknown); msg != "" {
		return op, msg
	}
	if op.Call, msg = intField(fields, "call_ns", true); msg != "" {
		return op, msg
	}
	// return_ns: required unless the outcome is unknown (then it is treated
	// as infinity anyway and may be absent or null).
	rawRet, present := fields["return_ns"]
	if present && !isNull(rawRet) || op.Outcome != outUnknown {
		if op.Return, msg = intField(fields, "return_ns", true); msg != "" {
			return op, msg
		}
		op.HasReturn = true
		if op.Return < op.Call {
			return op, fmt.Sprintf(`return_ns (%d) is before call_ns (%d)`, op.Return, op.Call)
		}
	}

	op.Deliveries = -1
	if msg = parseLeaseFields(fields, &op); msg != "" {
		return op, msg
	}
	// value (a purge's count is not checked, a redrive's is `moved`: no value)
	if op.Kind == opPurge || op.Kind == opRedrive {
		return op, ""
	}
	rawVal, present := fields["value"]
	needValue := op.Kind == opPut || op.Kind == opAck || op.Outcome == outOK
	if !present {
		if needValue {
			return op, fmt.Sprintf(`missing field "value" (required for %s with outcome %s; use null for an empty mailbox)`, op.Kind, op.Outcome)
		}
	} else if isNull(rawVal) {
		if op.Kind == opPut || op.Kind == opAck {
			if op.Kind == opPut {
				return op, `field "value": a put needs a string payload, got null`
			}
			return op, `field "value": an ack needs the string value of the message it settles, got null`
		}
	} else {
		var s string
		if err := json.Unmarshal(rawVal, &s); err != nil {
			return op, fmt.Sprintf(`field "value": expected a string or null, got %s`, short(rawVal))
		}
		if op.Kind == opPut || op.Kind == opAck || op.Outcome == outOK {
			op.Value, op.HasValue = s, true
		}
	}
	return op, ""
}

// parseLeaseFields reads the optional lease fields: lease_ms, id and
// deliveries (consume, peek), id and result (ack), n and moved (redrive).
func parseLeaseFields(f map[string]json.RawMessage, op *Op) string {
	optInt := func(name string) (int64, bool, string) {
		raw, ok := f[name]
		if !ok || isNull(raw) {
			return 0, false, ""
		}
		v, msg := intField(f, name, true)
		if msg == "" && v < 0 {
			msg = fmt.Sprintf("field %q: must not be negative", name)
		}
		return v, true, msg
	}
	optString := func(name string) (string, bool, string) {
		raw, ok := f[name]
		if !ok || isNull(raw) {
			return "", false, ""
		}
		s, msg := stringField(f, name)
		return s, true, msg
	}
	var msg string
	switch op.Kind {
	case opConsume, opPeek:
		if op.Kind == opConsume {
			if op.LeaseMs, _, msg = optInt("lease_ms"); msg != "" {
				return msg
			}
		}
		if op.MsgID, _, msg = optString("id"); msg != "" {
			return msg
		}
		d, ok, msg := optInt("deliveries")
		if msg != "" {
			return msg
		}
		if ok {
			op.Deliveries = d
		}
	case opAck:
		var ok bool
		if op.MsgID, ok, msg = optString("id"); msg != "" {
			return msg
		}
		if !ok || op.MsgID == "" {
			return `missing field "id" (an ack names the message id it settles)`
		}
		if op.Outcome == outOK {
			if op.AckResult, msg = enumField(f, "result", ackAcked, ackNotFound); msg != "" {
				return msg
			}
		}
	case opRedrive:
		if op.N, _, msg = optInt("n"); msg != "" {
			return msg
		}
		if baseMailbox(op.Mailbox) != op.Mailbox {
			return "a redrive names the mailbox the dead letters go back to, not its .dlq"
		}
		if op.Outcome == outOK {
			var ok bool
			if op.Moved, ok, msg = optInt("moved"); msg != "" {
				return msg
			}
			if !ok {
				return `missing field "moved" (required for a redrive with outcome ok)`
			}
		}
	}
	return ""
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func short(raw json.RawMessage) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return s
}

func intField(f map[string]json.RawMessage, name string, required bool) (int64, string) {
	raw, ok := f[name]
	if !ok {
		if required {
			return 0, fmt.Sprintf("missing field %q", name)
		}
		return 0, ""
	}
	s := string(bytes.TrimSpace(raw))
	if s == "null" || s == "" || s[0] == '"' || s[0] == '{' || s[0] == '[' || s == "true" || s == "false" {
		return 0, fmt.Sprintf("field %q: expected an integer, got %s", name, short(raw))
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("field %q: expected an integer (int64), got %s", name, short(raw))
	}
	return v, ""
}

func stringField(f map[string]json.RawMessage, name string) (string, string) {
	raw, ok := f[name]
	if !ok {
		return "", fmt.Sprintf("missing field %q", name)
	}
	var s string
	if isNull(raw) || json.Unmarshal(raw, &s) != nil {
		return "", fmt.Sprintf("field %q: expected a string, got %s", name, short(raw))
	}
	return s, ""
}

func enumField(f map[string]json.RawMessage, name string, allowed ...string) (string, string) {
	s, msg := stringField(f, name)
	if msg != "" {
		return "", msg
	}
	for _, a := range allowed {
		if s == a {
			return s, ""
		}
	}
	return "", fmt.Sprintf("field %q: must be one of %s, got %q", name, quoteAll(allowed), s)
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
