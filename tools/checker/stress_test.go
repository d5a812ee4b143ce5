package main

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// TestStress checks 150 generated correct histories of ~2000 ops each with
// varied clients, mailboxes, put shares, failures and unknown outcomes (up
// to 200 with CHECKER_STRESS=many). Off by default: CHECKER_STRESS=1.
func TestStress(t *testing.T) {
	mode := os.Getenv("CHECKER_STRESS")
	if mode == "" {
		t.Skip("set CHECKER_STRESS=1 (or =many) to run")
	}
	var worst time.Duration
	for seed := int64(1); seed <= 150; seed++ {
		clients := 2 + int(seed%9)
		cfg := genConfig{seed: seed, clients: clients, opsPerClient: 2000 / clients, mailboxes: 1 + int(seed%2),
			unknown: int(seed % 40), failProb: float64(seed%3) * 0.02, putFrac: []float64{0.3, 0.45, 0.5, 0.6, 0.8}[seed%5]}
		if mode == "many" {
			cfg.unknown = int(seed%5) * 50
		}
		h := generate(cfg)
		start := time.Now()
		r := check(t, encodeHistory(h), "--timeout", "20s", "--no-html")
		el := time.Since(start)
		worst = max(worst, el)
		if r.code != exitOK {
			p := fmt.Sprintf("%s/stress_fail_%d.jsonl", os.TempDir(), seed)
			os.WriteFile(p, []byte(encodeHistory(h)), 0o644)
			t.Fatalf("seed %d %+v: exit %d in %v (history kept in %s)\n%s", seed, cfg, r.code, el, p, r.stdout)
		}
	}
	t.Logf("slowest check: %v", worst)
}
