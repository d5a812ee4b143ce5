package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Compact history lines for hand-written cases:
//   put(client, box, value, outcome, call, ret)
//   cons(client, box, value or "" for null, outcome, call, ret)
//   peek(client, box, value or "", outcome, call, ret)

func put(c int, box, v, outcome string, call, ret int64) string {
	return fmt.Sprintf(`{"client":%d,"op":"put","mailbox":%q,"value":%q,"outcome":%q,"call_ns":%d,"return_ns":%d}`, c, box, v, outcome, call, ret)
}

func valueJSON(v string) string {
	if v == "" {
		return "null"
	}
	return fmt.Sprintf("%q", v)
}

func cons(c int, box, v, outcome string, call, ret int64) string {
	return fmt.Sprintf(`{"client":%d,"op":"consume","mailbox":%q,"value":%s,"outcome":%q,"call_ns":%d,"return_ns":%d}`, c, box, valueJSON(v), outcome, call, ret)
}

func peek(c int, box, v, outcome string, call, ret int64) string {
	return fmt.Sprintf(`{"client":%d,"op":"peek","mailbox":%q,"value":%s,"outcome":%q,"call_ns":%d,"return_ns":%d}`, c, box, valueJSON(v), outcome, call, ret)
}

type result struct {
	code   int
	stdout string
	stderr string
	rep    *Report
	html   string // path of the HTML if written
}

// check writes the history to a temp file and runs the checker on it.
func check(t *testing.T, history string, args ...string) result {
	t.Helper()
	dir := t.TempDir()
	hp := filepath.Join(dir, "history.jsonl")
	if err := os.WriteFile(hp, []byte(history), 0o644); err != nil {
		t.Fatal(err)
	}
	jp := filepath.Join(dir, "summary.json")
	var out, errb bytes.Buffer
	code := run(append([]string{"--json", jp, hp}, args...), nil, &out, &errb)
	r := result{code: code, stdout: out.String(), stderr: errb.String()}
	if b, err := os.ReadFile(jp); err == nil {
		r.rep = &Report{}
		if err := json.Unmarshal(b, r.rep); err != nil {
			t.Fatalf("bad JSON summary: %v", err)
		}
	}
	if _, err := os.Stat(hp + ".html"); err == nil {
		r.html = hp + ".html"
	}
	return r
}

func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

func (r result) kinds() map[string]int {
	m := map[string]int{}
	if r.rep != nil {
		for _, a := range r.rep.Anomalies {
			m[a.Kind]++
		}
	}
	return m
}

func expectOK(t *testing.T, r result) {
	t.Helper()
	if r.code != exitOK {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r.html != "" {
		t.Errorf("HTML written for a passing history")
	}
}

func expectViolation(t *testing.T, r result, kinds ...string) {
	t.Helper()
	if r.code != exitViolation {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	got := r.kinds()
	for _, k := range kinds {
		if got[k] == 0 {
			t.Errorf("missing anomaly %q; got %v\nstdout:\n%s", k, got, r.stdout)
		}
	}
	if r.html == "" {
		t.Errorf("no HTML written on a violation")
	}
	if !strings.Contains(r.stdout, "timeline: ") {
		t.Errorf("HTML path not printed")
	}
}

// ---- histories that must pass ----

func TestSequentialFIFO(t *testing.T) {
	r := check(t, lines(
		put(0, "m1", "a", "ok", 0, 10),
		put(0, "m1", "b", "ok", 20, 30),
		peek(1, "m1", "a", "ok", 40, 50),
		cons(1, "m1", "a", "ok", 60, 70),
		put(0, "m2", "x", "ok", 61, 69),
		cons(1, "m1", "b", "ok", 80, 90),
		cons(1, "m1", "", "ok", 100, 110),
		peek(1, "m1", "", "ok", 120, 130),
		cons(1, "m2", "x", "ok", 140, 150),
	))
	expectOK(t, r)
	if len(r.rep.Mailboxes) != 2 || r.rep.Mailboxes[0].Account.Consumed != 2 {
		t.Errorf("unexpected summary: %+v", r.rep.Mailboxes[0])
	}
}

func TestConcurrentOverlapping(t *testing.T) {
	r := check(t, lines(
		// a and b put concurrently; consumed in the order b, a: fine.
		put(0, "m", "a", "ok", 0, 100),
		put(1, "m", "b", "ok", 10, 110),
		peek(2, "m", "b", "ok", 50, 120),
		cons(2, "m", "b", "ok", 130, 150),
		// a consume concurrent with the put of c that it returns
		put(0, "m", "c", "ok", 160, 200),
		cons(1, "m", "a", "ok", 155, 170),
		cons(1, "m", "c", "ok", 171, 190),
		// an empty consume concurrent with a put
		put(0, "m", "d", "ok", 300, 400),
		cons(1, "m", "", "ok", 310, 320),
		cons(2, "m", "d", "ok", 350, 450),
		// failed ops are ignored
		put(0, "m", "e", "fail", 500, 510),
		cons(1, "m", "", "fail", 520, 530),
		peek(1, "m", "", "fail", 540, 550),
		peek(1, "m", "", "unknown", 540, 550),
		cons(1, "m", "", "ok", 600, 610),
	))
	expectOK(t, r)
}

func TestUnknownPutHappened(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "unknown", 0, 10),
		put(1, "m", "b", "ok", 20, 30),
		cons(1, "m", "a", "ok", 40, 50),
		cons(1, "m", "b", "ok", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectOK(t, r)
	if a := r.rep.Mailboxes[0].Account; a.UnknownPutsConsumed != 1 || a.UnknownPutsNotConsumed != 0 {
		t.Errorf("unknown put accounting: %+v", a)
	}
}

func TestUnknownPutTookEffectAfterClientGaveUp(t *testing.T) {
	// The client gave up on x at 10; y was put and consumed later, and x
	// shows up after y: x took effect after the client gave up.
	r := check(t, lines(
		put(0, "m", "x", "unknown", 0, 10),
		put(1, "m", "y", "ok", 20, 30),
		cons(1, "m", "y", "ok", 40, 50),
		cons(1, "m", "x", "ok", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectOK(t, r)
}

func TestUnknownPutDidNotHappen(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "unknown", 0, 10),
		put(1, "m", "b", "ok", 20, 30),
		cons(1, "m", "b", "ok", 40, 50),
		cons(1, "m", "", "ok", 60, 70),
		peek(1, "m", "", "ok", 80, 90),
	))
	expectOK(t, r)
	if a := r.rep.Mailboxes[0].Account; a.UnknownPutsNotConsumed != 1 {
		t.Errorf("unknown put accounting: %+v", a)
	}
	// Unknown put with return_ns absent or null is accepted too.
	r = check(t, lines(
		`{"client":0,"op":"put","mailbox":"m","value":"a","outcome":"unknown","call_ns":0}`,
		`{"client":0,"op":"put","mailbox":"m","value":"b","outcome":"unknown","call_ns":5,"return_ns":null}`,
		cons(1, "m", "b", "ok", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectOK(t, r)
}

func TestUnknownConsume(t *testing.T) {
	// took a (the value is unknown to the client)
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "", "unknown", 40, 50),
		cons(1, "m", "b", "ok", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectOK(t, r)
	a := r.rep.Mailboxes[0].Account
	if a.Unconsumed != 1 || a.PossiblyByUnknown != 1 || a.Lost != 0 || len(a.PossiblyValues) != 1 || a.PossiblyValues[0] != "a" {
		t.Errorf("accounting: %+v", a)
	}
	if !strings.Contains(r.stdout, "possibly consumed by an unknown-outcome consume") {
		t.Errorf("stdout does not report the possibly-consumed message:\n%s", r.stdout)
	}
	// did not take effect
	r = check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		cons(1, "m", "", "unknown", 40, 50),
		cons(1, "m", "a", "ok", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectOK(t, r)
	// took effect long after the client gave up (return treated as infinity)
	r = check(t, lines(
		cons(1, "m", "", "unknown", 0, 5),
		put(0, "m", "a", "ok", 10, 20),
		put(0, "m", "b", "ok", 30, 40),
		peek(2, "m", "a", "ok", 45, 46),
		cons(2, "m", "b", "ok", 50, 60),
		cons(2, "m", "", "ok", 70, 80),
	))
	expectOK(t, r)
}

func TestUnknownFieldsAndBlankLinesIgnored(t *testing.T) {
	r := check(t, lines(
		`{"client":0,"op":"put","mailbox":"m","value":"a","outcome":"ok","call_ns":0,"return_ns":10,"node":"n2","error":null,"extra":{"x":[1,2]}}`,
		"",
		"   ",
		cons(1, "m", "a", "ok", 20, 30),
	))
	expectOK(t, r)
}

// ---- histories that must fail ----

func TestLostAcknowledged(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "b", "ok", 40, 50),
		cons(1, "m", "", "ok", 60, 70),
	))
	expectViolation(t, r, kindLost, kindNotLinearizable)
	if r.rep.Mailboxes[0].Account.Lost != 1 {
		t.Errorf("lost = %d", r.rep.Mailboxes[0].Account.Lost)
	}
}

func TestLostBeyondUnknownConsumes(t *testing.T) {
	// Three acknowledged puts never consumed, one unknown consume: at least two lost.
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		put(0, "m", "c", "ok", 40, 50),
		cons(1, "m", "", "unknown", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectViolation(t, r, kindLost)
	a := r.rep.Mailboxes[0].Account
	if a.Lost != 2 || a.PossiblyByUnknown != 1 || a.Unconsumed != 3 {
		t.Errorf("accounting: %+v", a)
	}
}

func TestLostWithoutEmptyObservation(t *testing.T) {
	// Never consumed and the mailbox was never seen empty: linearizable, but
	// (by default the history is assumed drained) lost. With --no-drain it
	// is only "remaining".
	h := lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "a", "ok", 40, 50),
	)
	r := check(t, h)
	expectViolation(t, r, kindLost)
	if r.rep.Mailboxes[0].Linearizable != linOK {
		t.Errorf("should be linearizable")
	}
	// accounting-only violation: a standalone HTML table
	b, _ := os.ReadFile(r.html)
	if !strings.Contains(string(b), "<table") || !strings.Contains(string(b), "lost") {
		t.Errorf("anomaly page lacks the table")
	}
	r = check(t, h, "--no-drain")
	expectOK(t, r)
	if r.rep.Mailboxes[0].Account.Remaining != 1 {
		t.Errorf("remaining: %+v", r.rep.Mailboxes[0].Account)
	}
}

func TestDuplicateDelivery(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		cons(1, "m", "a", "ok", 20, 30),
		cons(2, "m", "a", "ok", 25, 35),
		cons(1, "m", "", "ok", 40, 50),
	))
	expectViolation(t, r, kindDuplicate, kindNotLinearizable)
}

func TestStalePeek(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "a", "ok", 40, 50),
		peek(2, "m", "a", "ok", 60, 70), // a is gone
		cons(1, "m", "b", "ok", 80, 90),
		cons(1, "m", "", "ok", 100, 110),
	))
	expectViolation(t, r, kindNotLinearizable)
	if k := r.kinds(); len(k) != 1 {
		t.Errorf("only the linearizability check can see a stale peek; got %v", k)
	}
	if !strings.Contains(r.stdout, "peek returned a after the consume that removed it had returned") ||
		!strings.Contains(r.stdout, "line 4 client 2 peek -> a") {
		t.Errorf("reason not reported:\n%s", r.stdout)
	}
}

func TestViolationFoundBySearch(t *testing.T) {
	// No single pattern shows it: b and c are put concurrently after a; the
	// peeks see c, then b, then c again at the head: some order must be
	// wrong, only the search can tell which.
	r := check(t, lines(
		put(0, "m", "b", "ok", 0, 100),
		put(1, "m", "c", "ok", 0, 100),
		peek(2, "m", "c", "ok", 110, 120),
		peek(2, "m", "b", "ok", 130, 140),
		cons(2, "m", "c", "ok", 150, 160),
		cons(2, "m", "b", "ok", 170, 180),
	), "--no-drain")
	expectViolation(t, r, kindNotLinearizable)
	if strings.Contains(r.stdout, "certainly") {
		t.Logf("a certificate caught it:\n%s", r.stdout)
	}
}

func TestNonFIFOOrder(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "b", "ok", 40, 50),
		cons(1, "m", "a", "ok", 60, 70),
		cons(1, "m", "", "ok", 80, 90),
	))
	expectViolation(t, r, kindOutOfOrder, kindNotLinearizable)
	a := r.rep.Anomalies
	for _, x := range a {
		if x.Kind == kindOutOfOrder && (x.Value == nil || *x.Value != "b") {
			t.Errorf("out_of_order should name the later put b: %+v", x)
		}
	}
}

func TestConsumeSkipsOlderStillPresent(t *testing.T) {
	// b (put after a) is consumed while a is still in the mailbox (a peek
	// sees it afterwards).
	h := lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "b", "ok", 40, 50),
		peek(1, "m", "a", "ok", 60, 70),
	)
	r := check(t, h, "--no-drain")
	expectViolation(t, r, kindNotLinearizable)
	r = check(t, h)
	expectViolation(t, r, kindNotLinearizable, kindLost)
}

func TestPhantom(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		cons(1, "m", "a", "ok", 20, 30),
		cons(1, "m", "zz", "ok", 40, 50),
	))
	expectViolation(t, r, kindPhantom, kindNotLinearizable)
	// the value of a failed put
	r = check(t, lines(
		put(0, "m", "a", "fail", 0, 10),
		cons(1, "m", "a", "ok", 20, 30),
	))
	expectViolation(t, r, kindPhantom, kindNotLinearizable)
	if !strings.Contains(r.stdout, "its put failed") {
		t.Errorf("phantom detail:\n%s", r.stdout)
	}
	// a value put in another mailbox
	r = check(t, lines(
		put(0, "m1", "a", "ok", 0, 10),
		cons(1, "m2", "a", "ok", 20, 30),
	), "--no-drain")
	expectViolation(t, r, kindPhantom, kindNotLinearizable)
	// consumed before its (unknown) put was invoked
	r = check(t, lines(
		cons(1, "m", "a", "ok", 0, 10),
		put(0, "m", "a", "unknown", 20, 30),
	))
	expectViolation(t, r, kindNotLinearizable)
}

func TestHTMLOnViolation(t *testing.T) {
	dir := t.TempDir()
	hp := filepath.Join(dir, "h.jsonl")
	os.WriteFile(hp, []byte(lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		cons(1, "m", "b", "ok", 40, 50),
		cons(1, "m", "a", "ok", 60, 70),
	)), 0o644)
	out := filepath.Join(dir, "sub-timeline.html")
	var so, se bytes.Buffer
	if code := run([]string{hp, "--html", out}, nil, &so, &se); code != exitViolation {
		t.Fatalf("exit %d: %s %s", code, so.String(), se.String())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatalf("HTML not written: %v", err)
	}
	s := string(b)
	for _, want := range []string{"render(data)", "consume() -\\u003e b", "put(a)", "Anomalies (", "out_of_order", "anomalies [m]"} {
		if !strings.Contains(s, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if !strings.Contains(so.String(), "timeline: "+out) {
		t.Errorf("path not printed: %s", so.String())
	}
	if _, err := os.Stat(hp + ".html"); err == nil {
		t.Errorf("default path written although --html was given")
	}
	// --no-html
	so.Reset()
	if code := run([]string{"--no-html", hp}, nil, &so, &se); code != exitViolation {
		t.Fatalf("exit %d", code)
	}
	if _, err := os.Stat(hp + ".html"); err == nil {
		t.Errorf("HTML written with --no-html")
	}
}

func TestBadInput(t *testing.T) {
	good := put(0, "m", "a", "ok", 0, 10)
	cases := []struct {
		name, line, want string
	}{
		{"not json", `{"client":0,`, "invalid JSON"},
		{"array", `[1,2]`, "not a JSON object"},
		{"trailing", good + ` {}`, "unexpected data"},
		{"missing op", `{"client":0,"mailbox":"m","value":"a","outcome":"ok","call_ns":0,"return_ns":1}`, `missing field "op"`},
		{"bad op", strings.Replace(good, `"put"`, `"get"`, 1), `field "op": must be one of`},
		{"bad outcome", strings.Replace(good, `"ok"`, `"timeout"`, 1), `field "outcome"`},
		{"client string", strings.Replace(good, `"client":0`, `"client":"0"`, 1), `field "client": expected an integer`},
		{"client float", strings.Replace(good, `"client":0`, `"client":1.5`, 1), `field "client": expected an integer`},
		{"return before call", put(0, "m", "a", "ok", 10, 5), "before call_ns"},
		{"missing return", `{"client":0,"op":"put","mailbox":"m","value":"a","outcome":"ok","call_ns":0}`, `missing field "return_ns"`},
		{"null put value", `{"client":0,"op":"put","mailbox":"m","value":null,"outcome":"ok","call_ns":0,"return_ns":1}`, "needs a string payload"},
		{"missing consume value", `{"client":0,"op":"consume","mailbox":"m","outcome":"ok","call_ns":0,"return_ns":1}`, `missing field "value"`},
		{"numeric value", `{"client":0,"op":"consume","mailbox":"m","value":5,"outcome":"ok","call_ns":0,"return_ns":1}`, `expected a string or null`},
		{"empty mailbox name", strings.Replace(good, `"mailbox":"m"`, `"mailbox":""`, 1), "must not be empty"},
		{"duplicate put", put(1, "m2", "a", "ok", 20, 30), "already put at line 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := check(t, lines(good, c.line))
			if r.code != exitBadInput {
				t.Fatalf("exit %d, want 2; stdout %s", r.code, r.stdout)
			}
			if !strings.Contains(r.stderr, ":2: ") || !strings.Contains(r.stderr, c.want) {
				t.Errorf("stderr %q lacks line number or %q", r.stderr, c.want)
			}
		})
	}
	var so, se bytes.Buffer
	if code := run([]string{"/nonexistent/history.jsonl"}, nil, &so, &se); code != exitBadInput {
		t.Errorf("missing file: exit %d", code)
	}
	if code := run([]string{}, nil, &so, &se); code != exitBadInput {
		t.Errorf("no args: exit %d", code)
	}
	if code := run([]string{"--bogus", "x"}, nil, &so, &se); code != exitBadInput {
		t.Errorf("bad flag: exit %d", code)
	}
}

func TestStdin(t *testing.T) {
	var so, se bytes.Buffer
	in := strings.NewReader(lines(put(0, "m", "a", "ok", 0, 10), cons(1, "m", "a", "ok", 20, 30)))
	if code := run([]string{"-"}, in, &so, &se); code != exitOK {
		t.Fatalf("exit %d: %s %s", code, so.String(), se.String())
	}
}

// ---- generated histories ----

func TestGeneratedCorrectHistories(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	for seed := int64(1); seed <= int64(seeds); seed++ {
		cfg := genConfig{seed: seed, clients: 5, opsPerClient: 400, mailboxes: 1 + int(seed%3), unknown: 8, failProb: 0.02}
		h := generate(cfg)
		start := time.Now()
		r := check(t, encodeHistory(h), "--timeout", "30s")
		if r.code != exitOK {
			t.Fatalf("seed %d: false positive, exit %d\n%s", seed, r.code, r.stdout)
		}
		t.Logf("seed %d: %d ops, %d mailboxes, checked in %v", seed, len(h), cfg.mailboxes, time.Since(start))
	}
}

// TestGeneratedMutationsDetected plants faults that are violations whatever
// the interleaving into correct generated histories.
func TestGeneratedMutationsDetected(t *testing.T) {
	for seed := int64(40); seed < 43; seed++ {
		h := generate(genConfig{seed: seed, clients: 4, opsPerClient: 300, mailboxes: 1})
		var cons []int // ok consumes with a value, by call time
		var peeks []int
		putOf := map[string]int{}
		for i, l := range h {
			switch {
			case l.Op == opConsume && l.Outcome == outOK && l.Value != nil:
				cons = append(cons, i)
			case l.Op == opPeek && l.Outcome == outOK:
				peeks = append(peeks, i)
			case l.Op == opPut && l.Outcome == outOK:
				putOf[*l.Value] = i
			}
		}
		sort.Slice(cons, func(a, b int) bool { return h[cons[a]].CallNs < h[cons[b]].CallNs })
		if len(cons) < 20 {
			t.Fatalf("too few consumes")
		}
		mutate := func(name string, f func(m []histLine) bool, kinds ...string) {
			m := append([]histLine(nil), h...)
			if !f(m) {
				t.Logf("seed %d %s: no place to plant it", seed, name)
				return
			}
			r := check(t, encodeHistory(m), "--explain-timeout", "100ms")
			if r.code != exitViolation {
				t.Fatalf("seed %d %s: not detected (exit %d)\n%s", seed, name, r.code, r.stdout)
			}
			got := r.kinds()
			for _, k := range kinds {
				if got[k] == 0 {
					t.Errorf("seed %d %s: missing %s, got %v", seed, name, k, got)
				}
			}
		}
		mutate("duplicate", func(m []histLine) bool {
			v := *m[cons[3]].Value
			m[cons[10]].Value = &v
			return true
		}, kindDuplicate, kindNotLinearizable)
		mutate("lost", func(m []histLine) bool {
			m[cons[5]].Value = nil
			return true
		}, kindLost, kindNotLinearizable)
		mutate("phantom", func(m []histLine) bool {
			v := "never-put"
			m[cons[7]].Value = &v
			return true
		}, kindPhantom, kindNotLinearizable)
		mutate("reorder", func(m []histLine) bool {
			// two sequential puts A then B, consumed by sequential consumes:
			// swap what the consumes returned.
			for i := 0; i < len(cons); i++ {
				for j := i + 1; j < len(cons) && j < i+40; j++ {
					ci, cj := m[cons[i]], m[cons[j]]
					pa, pb := m[putOf[*ci.Value]], m[putOf[*cj.Value]]
					if ci.ReturnNs < cj.CallNs && pa.ReturnNs < pb.CallNs {
						va, vb := *ci.Value, *cj.Value
						m[cons[i]].Value, m[cons[j]].Value = &vb, &va
						return true
					}
				}
			}
			return false
		}, kindOutOfOrder, kindNotLinearizable)
		mutate("stale peek", func(m []histLine) bool {
			for _, c := range cons {
				for _, p := range peeks {
					if m[p].CallNs > m[c].ReturnNs {
						v := *m[c].Value
						m[p].Value = &v
						return true
					}
				}
			}
			return false
		}, kindNotLinearizable)
	}
}

func TestInconclusiveOnTimeout(t *testing.T) {
	h := generate(genConfig{seed: 7, clients: 4, opsPerClient: 2000, mailboxes: 1, unknown: 10})
	r := check(t, encodeHistory(h), "--timeout", "1ns")
	if r.code != exitInconclusive {
		t.Fatalf("exit %d, want 3\n%s", r.code, r.stdout)
	}
	if r.rep.Mailboxes[0].Linearizable != linInconclusive || r.rep.Result != "inconclusive" {
		t.Errorf("report: %+v", r.rep.Mailboxes[0])
	}
}

// TestLargeHistoryTiming checks a 5000-op, one-mailbox history with 20
// unknown outcomes. With CHECKER_GEN_OUT set it also writes the history there.
func TestLargeHistoryTiming(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	h := generate(genConfig{seed: 5000, clients: 8, opsPerClient: 625, mailboxes: 1, unknown: 20, failProb: 0.01})
	enc := encodeHistory(h)
	if p := os.Getenv("CHECKER_GEN_OUT"); p != "" {
		os.WriteFile(p, []byte(enc), 0o644)
	}
	start := time.Now()
	r := check(t, enc)
	el := time.Since(start)
	if r.code != exitOK {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
	t.Logf("%d ops (1 mailbox, 20 unknown) checked in %v", len(h), el)
	if el > 20*time.Second {
		t.Errorf("too slow: %v", el)
	}
}

// ---- purge (SPEC v2) ----

func purge(c int, box, outcome string, call, ret int64) string {
	return fmt.Sprintf(`{"client":%d,"op":"purge","mailbox":%q,"value":"3","outcome":%q,"call_ns":%d,"return_ns":%d}`, c, box, outcome, call, ret)
}

func TestPurgeRemovesUnconsumedPuts(t *testing.T) {
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 20, 30),
		purge(1, "m", "ok", 40, 50),
		cons(1, "m", "", "ok", 60, 70),
		put(0, "m", "c", "ok", 80, 90),
		cons(1, "m", "c", "ok", 100, 110),
	))
	expectOK(t, r)
	a := r.rep.Mailboxes[0].Account
	if a.PossiblyPurged != 2 || a.Lost != 0 || a.Purges.OK != 1 {
		t.Errorf("unexpected account: %+v", a)
	}
}

func TestPurgeConcurrentWithConsume(t *testing.T) {
	// The consume may come before the purge; an unknown purge may or may
	// not have happened.
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		put(0, "m", "b", "ok", 11, 15),
		purge(1, "m", "ok", 20, 50),
		cons(2, "m", "a", "ok", 25, 45),
		cons(2, "m", "", "ok", 60, 70),
		put(0, "m", "c", "ok", 80, 90),
		purge(1, "m", "unknown", 95, 96),
		peek(2, "m", "c", "ok", 100, 110),
	))
	expectOK(t, r)
}

func TestValueAfterPurgeIsNotLinearizable(t *testing.T) {
	// a was purged (the purge returned before the consume began) yet consumed.
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		purge(1, "m", "ok", 20, 30),
		cons(1, "m", "a", "ok", 40, 50),
	))
	expectViolation(t, r, kindNotLinearizable)
}

func TestPutAfterPurgeStillCounts(t *testing.T) {
	// A put invoked after the purge returned is not excused: it is lost.
	r := check(t, lines(
		put(0, "m", "a", "ok", 0, 10),
		purge(1, "m", "ok", 20, 30),
		put(0, "m", "b", "ok", 40, 50),
		cons(1, "m", "", "ok", 60, 70),
	))
	expectViolation(t, r, kindLost, kindNotLinearizable)
	if a := r.rep.Mailboxes[0].Account; a.Lost != 1 || a.PossiblyPurged != 1 {
		t.Errorf("unexpected account: %+v", a)
	}
}

// ---- leases, dead letters and redrive (lease groups, lease.go) ----

const ms = int64(1_000_000)

// lcons is a consume with a lease of leaseMs (0: none) that returned v
// (or "" for empty) with the reply's id and deliveries.
func lcons(c int, box, v, outcome string, call, ret, leaseMs int64, id string, deliv int) string {
	extra := ""
	if leaseMs > 0 {
		extra += fmt.Sprintf(`,"lease_ms":%d`, leaseMs)
	}
	if v != "" && outcome == "ok" {
		extra += fmt.Sprintf(`,"id":%q,"deliveries":%d`, id, deliv)
	}
	return fmt.Sprintf(`{"client":%d,"op":"consume","mailbox":%q,"value":%s,"outcome":%q,"call_ns":%d,"return_ns":%d%s}`,
		c, box, valueJSON(v), outcome, call, ret, extra)
}

func ack(c int, box, v, id, outcome, result string, call, ret int64) string {
	res := ""
	if outcome == "ok" {
		res = fmt.Sprintf(`,"result":%q`, result)
	}
	return fmt.Sprintf(`{"client":%d,"op":"ack","mailbox":%q,"value":%q,"id":%q,"outcome":%q,"call_ns":%d,"return_ns":%d%s}`,
		c, box, v, id, outcome, call, ret, res)
}

func redrive(c int, box string, n int64, outcome string, moved int64, call, ret int64) string {
	extra := ""
	if n > 0 {
		extra += fmt.Sprintf(`,"n":%d`, n)
	}
	if outcome == "ok" {
		extra += fmt.Sprintf(`,"moved":%d`, moved)
	}
	return fmt.Sprintf(`{"client":%d,"op":"redrive","mailbox":%q,"outcome":%q,"call_ns":%d,"return_ns":%d%s}`,
		c, box, outcome, call, ret, extra)
}

// checkLease runs the checker with the nodes' delivery limit of the chaos
// lease runs (2).
func checkLease(t *testing.T, history string) result {
	t.Helper()
	return check(t, history, "--max-deliveries", "2")
}

func TestLeaseAckedMessageIsGone(t *testing.T) {
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		ack(1, "m", "a", "1", "ok", "acked", 30*ms, 40*ms),
		lcons(2, "m", "", "ok", 2000*ms, 2010*ms, 0, "", 0),
	))
	expectOK(t, r)
	a := r.rep.Mailboxes[0].Account
	if !r.rep.Mailboxes[0].LeaseGroup || a.Acked != 1 || a.Lost != 0 || a.Consumed != 1 {
		t.Errorf("unexpected account: %+v", a)
	}
}

func TestLeaseNotAckedIsRedelivered(t *testing.T) {
	// Hidden while leased (the empty reply at 30 ms), delivered again once
	// the lease ended: not a duplicate. The first consumer's late ack finds
	// no lease.
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		put(0, "m", "b", "ok", 6*ms, 8*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		lcons(2, "m", "b", "ok", 30*ms, 40*ms, 0, "2", 1),
		lcons(2, "m", "", "ok", 50*ms, 60*ms, 0, "", 0),
		ack(1, "m", "a", "1", "ok", "not_found", 1100*ms, 1110*ms),
		lcons(2, "m", "a", "ok", 1200*ms, 1210*ms, 0, "1", 2),
		lcons(2, "m", "", "ok", 1300*ms, 1310*ms, 0, "", 0),
	))
	expectOK(t, r)
	if a := r.rep.Mailboxes[0].Account; a.Redelivered != 1 || a.Duplicates != 0 {
		t.Errorf("unexpected account: %+v", a)
	}
}

func TestLeaseEndUncertainAllowsEarlyRedelivery(t *testing.T) {
	// The leased consume took 890 ms: its lease may have started at 10 ms,
	// so a delivery returning at 1060 ms is allowed.
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		lcons(1, "m", "a", "ok", 10*ms, 900*ms, 1000, "1", 1),
		lcons(2, "m", "a", "ok", 1050*ms, 1060*ms, 0, "1", 2),
	))
	expectOK(t, r)
}

// deadLetterPrefix: a is delivered twice with a lease and never acked, so
// (delivery limit 2) it moves to m.dlq once the second lease ends.
func deadLetterPrefix() []string {
	return []string{
		put(0, "m", "a", "ok", 0, 5*ms),
		put(0, "m", "b", "ok", 6*ms, 8*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		lcons(1, "m", "a", "ok", 1100*ms, 1110*ms, 1000, "1", 2),
		lcons(2, "m", "b", "ok", 1200*ms, 1210*ms, 0, "2", 1),
		lcons(2, "m", "", "ok", 2200*ms, 2210*ms, 0, "", 0),
	}
}

func TestDeadLetterAndRedrive(t *testing.T) {
	r := checkLease(t, lines(append(deadLetterPrefix(),
		peek(2, "m.dlq", "a", "ok", 2300*ms, 2310*ms),
		redrive(3, "m", 1, "ok", 1, 2400*ms, 2410*ms),
		lcons(2, "m.dlq", "", "ok", 2500*ms, 2510*ms, 0, "", 0),
		// a again, its delivery count reset by the redrive
		lcons(2, "m", "a", "ok", 2600*ms, 2610*ms, 1000, "9", 1),
		ack(2, "m", "a", "9", "ok", "acked", 2620*ms, 2630*ms),
		lcons(2, "m", "", "ok", 4000*ms, 4010*ms, 0, "", 0),
	)...))
	expectOK(t, r)
	a := r.rep.Mailboxes[0].Account
	if a.Lost != 0 || a.Acked != 1 || a.RedriveMoved != 1 || a.Redrives.OK != 1 {
		t.Errorf("unexpected account: %+v", a)
	}
}

func TestDeadLetterConsumedFromDLQ(t *testing.T) {
	r := checkLease(t, lines(append(deadLetterPrefix(),
		lcons(2, "m.dlq", "a", "ok", 2300*ms, 2310*ms, 0, "7", 3),
		redrive(3, "m", 0, "ok", 0, 2400*ms, 2410*ms),
		lcons(2, "m.dlq", "", "ok", 2500*ms, 2510*ms, 0, "", 0),
	)...))
	expectOK(t, r)
}

// ---- lease histories that must fail ----

func TestLostAfterRedrive(t *testing.T) {
	// The redrive moved a back to m, then m and m.dlq are both seen empty:
	// a, acknowledged, was never removed.
	r := checkLease(t, lines(append(deadLetterPrefix(),
		redrive(3, "m", 0, "ok", 1, 2400*ms, 2410*ms),
		lcons(2, "m", "", "ok", 2500*ms, 2510*ms, 0, "", 0),
		lcons(2, "m.dlq", "", "ok", 2600*ms, 2610*ms, 0, "", 0),
	)...))
	expectViolation(t, r, kindLost, kindNotLinearizable)
}

func TestAckedMessageDeliveredAgain(t *testing.T) {
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		ack(1, "m", "a", "1", "ok", "acked", 30*ms, 40*ms),
		lcons(2, "m", "a", "ok", 1200*ms, 1210*ms, 0, "1", 2),
	))
	expectViolation(t, r, kindDuplicate, kindNotLinearizable)
}

func TestDeadLetterConsumedFromMailboxWithoutRedrive(t *testing.T) {
	// a reached the delivery limit; after its second lease ended it may only
	// come back through m.dlq (or a redrive), not from m. Deliveries are
	// left out of the reply here, so only the queue state shows it.
	r := checkLease(t, lines(append(deadLetterPrefix(),
		cons(2, "m", "a", "ok", 2300*ms, 2310*ms),
	)...))
	expectViolation(t, r, kindNotLinearizable)
}

func TestRedeliveredWhileLeaseHeld(t *testing.T) {
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		lcons(2, "m", "a", "ok", 100*ms, 110*ms, 0, "1", 2),
	))
	expectViolation(t, r, kindRedelivered, kindNotLinearizable)
}

func TestLeaseThatMustHaveEndedIsNotHidden(t *testing.T) {
	// The lease certainly ended by 1045 ms; an empty reply at 1100 ms means
	// the message was lost from view.
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		lcons(2, "m", "", "ok", 1100*ms, 1110*ms, 0, "", 0),
		lcons(2, "m", "a", "ok", 1200*ms, 1210*ms, 0, "1", 2),
	))
	expectViolation(t, r, kindNotLinearizable)
}

func TestRedriveBeyondN(t *testing.T) {
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		redrive(3, "m", 1, "ok", 2, 10*ms, 20*ms),
		lcons(2, "m", "a", "ok", 30*ms, 40*ms, 0, "1", 1),
	))
	expectViolation(t, r, kindRedriveLimit, kindNotLinearizable)
}

func TestRedriveMustMoveEveryAvailableDeadLetter(t *testing.T) {
	// Without n a redrive moves every dead letter not under a lease; here a
	// was available and the reply says nothing moved.
	r := checkLease(t, lines(append(deadLetterPrefix(),
		peek(2, "m.dlq", "a", "ok", 2300*ms, 2310*ms),
		redrive(3, "m", 0, "ok", 0, 2400*ms, 2410*ms),
	)...))
	expectViolation(t, r, kindNotLinearizable)
}

func TestRedriveResetsDeliveries(t *testing.T) {
	r := checkLease(t, lines(append(deadLetterPrefix(),
		redrive(3, "m", 0, "ok", 1, 2400*ms, 2410*ms),
		lcons(2, "m", "a", "ok", 2500*ms, 2510*ms, 0, "9", 3),
	)...))
	expectViolation(t, r, kindNotLinearizable)
}

func TestLeaseGroupsNeedOneLeaseDuration(t *testing.T) {
	r := checkLease(t, lines(
		put(0, "m", "a", "ok", 0, 5*ms),
		lcons(1, "m", "a", "ok", 10*ms, 20*ms, 1000, "1", 1),
		lcons(1, "m", "", "ok", 30*ms, 40*ms, 2000, "", 0),
	))
	if r.code != exitBadInput {
		t.Fatalf("exit %d, want 2\n%s%s", r.code, r.stdout, r.stderr)
	}
}
