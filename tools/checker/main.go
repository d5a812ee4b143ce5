// Command checker checks a history of mailbox operations, recorded by the
// chaos test against real nodes, for linearizability (Porcupine, one FIFO
// queue per mailbox) and for message accounting (lost, duplicated, phantom,
// out-of-order). See README.md for the history format and exit codes.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// Exit codes.
const (
	exitOK           = 0
	exitViolation    = 1
	exitBadInput     = 2
	exitInconclusive = 3
)

type options struct {
	history  string
	jsonPath string
	htmlPath string
	noHTML   bool
	timeout  time.Duration
	explain  time.Duration
	jobs     int
	noDrain  bool
	maxList  int
	lease    leaseOptions
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func parseArgs(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("checker", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.jsonPath, "json", "", "also write a machine-readable summary to `file`")
	fs.StringVar(&o.htmlPath, "html", "", "where to write the timeline on a violation (default: <history>.html)")
	fs.BoolVar(&o.noHTML, "no-html", false, "do not write the HTML timeline")
	fs.DurationVar(&o.timeout, "timeout", 60*time.Second, "linearizability time limit per mailbox; a mailbox that hits it is inconclusive (0: no limit)")
	fs.DurationVar(&o.explain, "explain-timeout", 5*time.Second, "on a violation, time allowed to the plain (unpruned) search whose partial linearizations the timeline shows; past it the pruned search is shown")
	fs.IntVar(&o.jobs, "jobs", runtime.GOMAXPROCS(0), "mailboxes checked in parallel")
	fs.BoolVar(&o.noDrain, "no-drain", false, "the history does not end by draining every mailbox: an acknowledged put never consumed counts as lost only if the mailbox was later seen empty")
	fs.IntVar(&o.lease.maxDeliveries, "max-deliveries", defaultLeaseOptions.maxDeliveries, "the nodes' --max-deliveries: a leased message whose lease ends after this many deliveries moves to <box>.dlq")
	fs.Int64Var(&o.lease.slackNs, "lease-slack-ns", defaultLeaseOptions.slackNs, "clock slack (ns) when comparing a lease's end, in the log's clock, with the history's call and return times")
	fs.IntVar(&o.maxList, "max-list", 20, "anomalies listed per kind and mailbox on stdout (all are in --json and the HTML)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: checker [flags] HISTORY.jsonl   (- for stdin)\n\n"+
			"Checks a mailbox history for linearizability and message accounting.\n"+
			"Exit: 0 ok, 1 violation, 2 bad input or usage, 3 inconclusive (timeout) only.\n\nflags:\n")
		fs.PrintDefaults()
	}
	// Flags may come before or after the history path.
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return nil, err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	if len(pos) != 1 {
		fs.Usage()
		return nil, fmt.Errorf("expected exactly one history file, got %d", len(pos))
	}
	o.history = pos[0]
	if o.lease.maxDeliveries < 1 || o.lease.slackNs < 0 {
		return nil, fmt.Errorf("--max-deliveries must be at least 1 and --lease-slack-ns not negative")
	}
	if o.timeout < 0 {
		return nil, fmt.Errorf("--timeout must not be negative")
	}
	if o.htmlPath == "" {
		if o.history == "-" {
			o.htmlPath = "history.html"
		} else {
			o.htmlPath = o.history + ".html"
		}
	}
	return o, nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	start := time.Now()
	o, err := parseArgs(args, stderr)
	if err != nil {
		if err != flag.ErrHelp {
			fmt.Fprintln(stderr, "checker:", err)
		}
		return exitBadInput
	}
	var in io.Reader = stdin
	name := "stdin"
	if o.history != "-" {
		f, err := os.Open(o.history)
		if err != nil {
			fmt.Fprintln(stderr, "checker:", err)
			return exitBadInput
		}
		defer f.Close()
		in, name = f, o.history
	}
	h, err := ParseHistory(in, name)
	if err != nil {
		fmt.Fprintf(stderr, "checker: bad history:\n%v\n", err)
		return exitBadInput
	}

	rep := &Report{History: name, Operations: len(h.Ops), Clients: len(h.Clients),
		TimeoutSeconds: o.timeout.Seconds(), Counts: map[string]*OutcomeCounts{},
		origin: h.MinTime}
	for _, k := range []string{opPut, opConsume, opPeek, opPurge, opAck, opRedrive} {
		rep.Counts[k] = &OutcomeCounts{}
	}
	opsByPart := map[string][]*Op{}
	for i := range h.Ops {
		op := &h.Ops[i]
		rep.Counts[op.Kind].add(op)
		p := h.PartitionOf(op.Mailbox)
		opsByPart[p] = append(opsByPart[p], op)
	}

	// Accounting, per partition (a mailbox, or a lease group: a mailbox
	// with its .dlq).
	boxReports := map[string]*MailboxReport{}
	for _, box := range h.Partitions {
		var acc *Account
		var an []Anomaly
		if h.IsLeaseGroup(box) {
			acc, an = accountLeaseGroup(h, box, opsByPart[box], o.noDrain, o.lease)
		} else {
			acc, an = accountMailbox(h, box, opsByPart[box], o.noDrain)
		}
		mr := &MailboxReport{Mailbox: box, Ops: len(opsByPart[box]), Account: acc}
		if h.IsLeaseGroup(box) {
			mr.LeaseGroup = true
		}
		rep.Mailboxes = append(rep.Mailboxes, mr)
		boxReports[box] = mr
		rep.Anomalies = append(rep.Anomalies, an...)
	}

	// Linearizability.
	lc, err := newLinCheckerOpts(h, o.lease)
	if err != nil {
		fmt.Fprintf(stderr, "checker: bad history: %v\n", err)
		return exitBadInput
	}
	results := lc.checkAll(o.timeout, o.jobs)
	var bad []*linResult
	for _, r := range results {
		mr := boxReports[r.Mailbox]
		mr.Linearizable = r.Result
		mr.CheckedOps = r.Ops
		mr.UnknownInfinite = r.Unknown
		mr.UnknownPutsObserved = r.Observed
		mr.UnknownPutsUnobserved = r.Unobserved
		mr.CheckSeconds = r.Elapsed.Seconds()
		switch r.Result {
		case linViolation:
			bad = append(bad, r)
		case linInconclusive:
			rep.Anomalies = append(rep.Anomalies, Anomaly{Kind: kindInconclusive, Mailbox: r.Mailbox,
				Detail: fmt.Sprintf("linearizability check hit the %v time limit (%d ops, %d with unknown outcome)", o.timeout, r.Ops, r.Unknown)})
		}
	}
	var htmlBody bytes.Buffer
	linViolations := false
	if len(bad) > 0 {
		linViolations = true
		// The explanation searches feed the timeline (and, for violations
		// found by the search, the op it got stuck at).
		needSearch := !o.noHTML
		for _, r := range bad {
			needSearch = needSearch || r.Cert == nil
		}
		var info porcupine.LinearizationInfo
		if needSearch {
			info = lc.explain(bad, o.explain, o.timeout)
		}
		for _, r := range bad {
			mr := boxReports[r.Mailbox]
			if needSearch {
				mr.LongestPrefix = &r.Prefix
			}
			an := Anomaly{Kind: kindNotLinearizable, Mailbox: r.Mailbox,
				Detail: fmt.Sprintf("no linearization as one FIFO queue: the longest linearizable prefix found has %d of %d ops", r.Prefix, r.Ops)}
			if r.Cert != nil {
				an.Detail = "certainly not linearizable: " + r.Cert.Reason
				if needSearch {
					an.Detail += fmt.Sprintf(" (timeline search: longest linearizable prefix %d of %d ops)", r.Prefix, r.Ops)
				}
				for _, op := range r.Cert.Ops {
					an.Ops = append(an.Ops, ref("shows it", op))
				}
			} else if r.Stuck != nil {
				an.Detail += "; the earliest-returning op outside it cannot be linearized"
				an.Ops = []OpRef{ref("stuck at", r.Stuck)}
			}
			rep.Anomalies = append(rep.Anomalies, an)
		}
		if !o.noHTML {
			sortAnomalies(rep.Anomalies)
			if err := writeVisualization(&htmlBody, lc, info, rep); err != nil {
				fmt.Fprintln(stderr, "checker: visualization:", err)
				htmlBody.Reset()
			}
		}
	}
	sortAnomalies(rep.Anomalies)

	violations, inconclusive := 0, 0
	for _, a := range rep.Anomalies {
		if a.Kind == kindInconclusive {
			inconclusive++
		} else {
			violations++
		}
	}
	code := exitOK
	rep.Result = "ok"
	switch {
	case violations > 0:
		code, rep.Result = exitViolation, "violation"
	case inconclusive > 0:
		code, rep.Result = exitInconclusive, "inconclusive"
	}
	rep.ExitCode = code

	if violations > 0 && !o.noHTML {
		if !linViolations || htmlBody.Len() == 0 {
			writeAnomalyPage(&htmlBody, rep)
		}
		if err := os.WriteFile(o.htmlPath, htmlBody.Bytes(), 0o644); err != nil {
			fmt.Fprintln(stderr, "checker: writing HTML:", err)
		} else {
			rep.HTML = o.htmlPath
		}
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	printSummary(stdout, rep, o.maxList)
	if o.jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err == nil {
			err = os.WriteFile(o.jsonPath, append(b, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintln(stderr, "checker: writing JSON:", err)
			return exitBadInput
		}
	}
	return code
}

var kindOrder = map[string]int{kindNotLinearizable: 0, kindLost: 1, kindDuplicate: 2, kindPhantom: 3, kindOutOfOrder: 4, kindRedelivered: 5, kindRedriveLimit: 6, kindInconclusive: 7}

func sortAnomalies(as []Anomaly) {
	sort.SliceStable(as, func(i, j int) bool {
		if as[i].Mailbox != as[j].Mailbox {
			return as[i].Mailbox < as[j].Mailbox
		}
		return kindOrder[as[i].Kind] < kindOrder[as[j].Kind]
	})
}
