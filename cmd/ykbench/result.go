package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// runResult is the machine-readable record of one load run: one JSON line.
type runResult struct {
	Kind        string  `json:"kind"`            // "load" ("prime" for --prime-only)
	Label       string  `json:"label,omitempty"` // the scenario, from --label
	Mode        string  `json:"mode"`            // "ksm", "val", "val-replay"
	URL         string  `json:"url"`
	Client      string  `json:"client"`
	Concurrency int     `json:"concurrency"`
	Keys        int     `json:"keys"`
	Start       string  `json:"start"` // RFC 3339, UTC
	Load1       float64 `json:"load1"` // 1-minute load average when the run started
	Warmup      float64 `json:"warmup_s"`
	Elapsed     float64 `json:"elapsed_s"` // measured time
	Requests    uint64  `json:"requests"`  // measured requests
	Errors      uint64  `json:"errors"`    // measured requests that failed or got a wrong answer
	WarmupReqs  uint64  `json:"warmup_requests"`
	WarmupErrs  uint64  `json:"warmup_errors"`
	PrimeReqs   uint64  `json:"prime_requests,omitempty"` // unmeasured fresh OTPs sent before the run (val)
	RPS         float64 `json:"rps"`
	MeanMS      float64 `json:"mean_ms"`
	P50MS       float64 `json:"p50_ms"`
	P90MS       float64 `json:"p90_ms"`
	P99MS       float64 `json:"p99_ms"`
	MaxMS       float64 `json:"max_ms"`
	ClientCPU   float64 `json:"client_cpu_s"` // the generator's own CPU time while measuring
	NextCounter int     `json:"next_counter,omitempty"`
	// SkippedDvorak counts minted OTPs not sent because YK-VAL would read
	// them as Dvorak modhex (val mode; about 1 in 10,000).
	SkippedDvorak uint64   `json:"skipped_dvorak,omitempty"`
	ErrorSample   []string `json:"error_sample,omitempty"`

	// servers are the server records bench.sh wrote right after this run
	// (filled in by readResults; not part of the JSON line).
	servers []serverRecord
}

func newRunResult(mode, label string, base string, client string, cfg loadConfig, keys int, started time.Time, load1 float64, s *loadStats) runResult {
	ms := func(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }
	return runResult{
		Kind: "load", Label: label, Mode: mode, URL: base, Client: client,
		Concurrency: cfg.Concurrency, Keys: keys,
		Start: started.UTC().Format(time.RFC3339), Load1: load1,
		Warmup: cfg.Warmup.Seconds(), Elapsed: round3(s.elapsed.Seconds()),
		Requests: s.hist.n, Errors: s.errors, WarmupReqs: s.warmupN, WarmupErrs: s.warmupErr,
		RPS:    round3(s.rps()),
		MeanMS: ms(s.hist.mean()), P50MS: ms(s.hist.quantile(0.50)), P90MS: ms(s.hist.quantile(0.90)),
		P99MS: ms(s.hist.quantile(0.99)), MaxMS: ms(s.hist.max),
		ClientCPU:   round3(s.cpu.Seconds()),
		ErrorSample: s.samples,
	}
}

func round3(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

// human returns the one-line summary of r.
func (r runResult) human() string {
	var b strings.Builder
	name := r.Mode
	if r.Label != "" {
		name = r.Label
	}
	fmt.Fprintf(&b, "%s c=%d: %.0f req/s, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, %d errors (%d requests in %.1f s, %d keys, %s client, load %.2f)",
		name, r.Concurrency, r.RPS, r.P50MS, r.P90MS, r.P99MS, r.MaxMS, r.Errors, r.Requests, r.Elapsed, r.Keys, r.Client, r.Load1)
	for _, s := range r.ErrorSample {
		b.WriteString("\n  error (warmup included): ")
		b.WriteString(s)
	}
	return b.String()
}

// emit writes r's human line and JSON line to w, and appends the JSON
// line to the file out when it is not empty.
func emit(w io.Writer, out string, r any, human string) error {
	js, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(w, "%s\n%s\n", human, js); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "%s\n", js); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// loadAverage returns the 1-minute load average, or -1 when it is unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f, _, _ := strings.Cut(string(b), " ")
	v, err := strconv.ParseFloat(f, 64)
	if err != nil {
		return -1
	}
	return v
}
