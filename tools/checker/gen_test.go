package main

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
)

// histLine is one history line as the chaos test writes it.
type histLine struct {
	Client   int     `json:"client"`
	Op       string  `json:"op"`
	Mailbox  string  `json:"mailbox"`
	Value    *string `json:"value"`
	Outcome  string  `json:"outcome"`
	CallNs   int64   `json:"call_ns"`
	ReturnNs int64   `json:"return_ns"`
}

func encodeHistory(lines []histLine) string {
	var b strings.Builder
	for _, l := range lines {
		j, err := json.Marshal(l)
		if err != nil {
			panic(err)
		}
		b.Write(j)
		b.WriteByte('\n')
	}
	return b.String()
}

// genConfig describes a randomized concurrent history.
type genConfig struct {
	seed         int64
	clients      int
	opsPerClient int
	mailboxes    int
	unknown      int     // number of put/consume ops given an unknown outcome (spread at random)
	failProb     float64 // probability that an op fails (no effect)
	putFrac      float64 // share of puts (default 0.45); consumes get 0.40/0.55 of the rest, peeks the remainder
}

var (
	genNoUnknownPut, genNoUnknownConsume bool
	genModes                             = 3
)

func genMode(rng *rand.Rand) int { return rng.Intn(genModes) }

// realQueue is a real FIFO queue per mailbox behind a lock.
type realQueue struct {
	mu sync.Mutex
	q  map[string][]string
}

func (r *realQueue) put(box, v string) {
	r.mu.Lock()
	r.q[box] = append(r.q[box], v)
	r.mu.Unlock()
}

func (r *realQueue) consume(box string) *string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q[box]
	if len(q) == 0 {
		return nil
	}
	v := q[0]
	r.q[box] = q[1:]
	return &v
}

func (r *realQueue) peek(box string) *string {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q[box]
	if len(q) == 0 {
		return nil
	}
	v := q[0]
	return &v
}

// generate runs clients as goroutines against a real locked queue, taking
// timestamps from a shared logical clock before invoking and after
// completing each op, so the history is correct by construction (the
// effect happens inside [call, return], or, for some unknown outcomes, after
// the client gave up). Op choices are seeded; interleavings are whatever
// the scheduler does. The history ends with a drain of every mailbox.
func generate(cfg genConfig) []histLine {
	rq := &realQueue{q: map[string][]string{}}
	var clock atomic.Int64
	tick := func() int64 { return clock.Add(1) * 1000 }
	total := cfg.clients * cfg.opsPerClient
	master := rand.New(rand.NewSource(cfg.seed))
	unknownAt := map[int]bool{}
	for len(unknownAt) < cfg.unknown && len(unknownAt) < total {
		unknownAt[master.Intn(total)] = true
	}
	putFrac := cfg.putFrac
	if putFrac == 0 {
		putFrac = 0.45
	}
	consFrac := putFrac + (1-putFrac)*0.40/0.55
	out := make([][]histLine, cfg.clients)
	var wg sync.WaitGroup
	for c := 0; c < cfg.clients; c++ {
		c := c
		rng := rand.New(rand.NewSource(cfg.seed*1000 + int64(c)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var late []func() // effects of unknown ops applied after the client gave up
			for i := 0; i < cfg.opsPerClient; i++ {
				box := fmt.Sprintf("m%d", rng.Intn(cfg.mailboxes))
				l := histLine{Client: c, Mailbox: box, Outcome: outOK}
				unknown := unknownAt[c*cfg.opsPerClient+i]
				fail := !unknown && rng.Float64() < cfg.failProb
				r := rng.Float64()
				l.CallNs = tick()
				if rng.Intn(2) == 0 {
					runtime.Gosched()
				}
				switch {
				case r < putFrac:
					l.Op = opPut
					v := fmt.Sprintf("c%d-%d", c, i)
					l.Value = &v
					switch {
					case fail:
						l.Outcome = outFail
					case unknown && !genNoUnknownPut:
						l.Outcome = outUnknown
						switch genMode(rng) {
						case 0: // took effect before the client gave up
							rq.put(box, v)
						case 1: // took effect later
							late = append(late, func() { rq.put(box, v) })
						}
					default:
						rq.put(box, v)
					}
				case r < consFrac || unknown:
					unknown = unknown && !genNoUnknownConsume
					l.Op = opConsume
					switch {
					case fail:
						l.Outcome = outFail
					case unknown:
						l.Outcome = outUnknown
						switch genMode(rng) {
						case 0:
							rq.consume(box)
						case 1:
							late = append(late, func() { rq.consume(box) })
						}
					default:
						l.Value = rq.consume(box)
					}
				default:
					l.Op = opPeek
					if fail {
						l.Outcome = outFail
					} else {
						l.Value = rq.peek(box)
					}
				}
				if rng.Intn(2) == 0 {
					runtime.Gosched()
				}
				l.ReturnNs = tick()
				out[c] = append(out[c], l)
				if len(late) > 0 && rng.Intn(4) == 0 {
					late[0]()
					late = late[1:]
				}
			}
			for _, f := range late {
				f()
			}
		}()
	}
	wg.Wait()
	var all []histLine
	for _, ls := range out {
		all = append(all, ls...)
	}
	// Drain every mailbox (client "clients", after everything else).
	for m := 0; m < cfg.mailboxes; m++ {
		box := fmt.Sprintf("m%d", m)
		for {
			l := histLine{Client: cfg.clients, Op: opConsume, Mailbox: box, Outcome: outOK, CallNs: tick()}
			l.Value = rq.consume(box)
			l.ReturnNs = tick()
			all = append(all, l)
			if l.Value == nil {
				break
			}
		}
	}
	// Shuffle the lines: the checker must not depend on file order.
	master.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	return all
}
