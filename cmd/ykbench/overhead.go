package main

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Scenario labels that measure a cost against plaintext carry one of these
// suffixes; the same label without it is the plaintext run they are
// compared with (ksm-sqlite-tls against ksm-sqlite,
// val-sqlite-embedded-tls against val-sqlite-embedded).
var overheadSuffixes = []string{"-tls", "-mtls", "-sealed"}

// plaintextLabel returns the label of label's plaintext run, or "" when
// label is not an overhead scenario.
func plaintextLabel(label string) string {
	for _, suf := range overheadSuffixes {
		if p, ok := strings.CutSuffix(label, suf); ok && p != "" {
			return p
		}
	}
	return ""
}

// A pair is an overhead run and the plaintext run it is compared with.
type pair struct{ run, plain runResult }

func (p pair) rpsRatio() float64 {
	if p.plain.RPS <= 0 {
		return math.NaN()
	}
	return p.run.RPS / p.plain.RPS
}

func (p pair) cpuRatio() float64 {
	a, b := cpuPerReq(p.run), cpuPerReq(p.plain)
	if math.IsNaN(a) || math.IsNaN(b) || b <= 0 {
		return math.NaN()
	}
	return a / b
}

// cpuPerReq is the CPU time of run l's first server per request, in µs
// (NaN when bench.sh did not record it).
func cpuPerReq(l runResult) float64 {
	n := l.Requests + l.WarmupReqs + l.PrimeReqs
	if len(l.servers) == 0 || n == 0 || l.servers[0].WallSeconds <= 0 {
		return math.NaN()
	}
	return l.servers[0].CPUSeconds * 1e6 / float64(n)
}

// overheadGroup is every pair of one overhead scenario, client and
// concurrency.
type overheadGroup struct {
	label, plain, client string
	c                    int
	pairs                []pair
}

func median(v []float64) float64 {
	var xs []float64
	for _, x := range v {
		if !math.IsNaN(x) {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return math.NaN()
	}
	sort.Float64s(xs)
	if n := len(xs); n%2 == 1 {
		return xs[n/2]
	} else {
		return (xs[n/2-1] + xs[n/2]) / 2
	}
}

func (g *overheadGroup) med(f func(pair) float64) float64 {
	v := make([]float64, len(g.pairs))
	for i, p := range g.pairs {
		v[i] = f(p)
	}
	return median(v)
}

// medianRPSRatio is the median over the pairs of req/s against plaintext.
func (g *overheadGroup) medianRPSRatio() float64 { return g.med(pair.rpsRatio) }

// medianCPURatio is the median over the pairs of server CPU per request
// against plaintext.
func (g *overheadGroup) medianCPURatio() float64 { return g.med(pair.cpuRatio) }

// overheads pairs every overhead run with a plaintext run of the same
// results: the plaintext run of the same client and concurrency that came
// in the same position (the k-th TLS run at c=32 with the k-th plaintext run
// at c=32, which bench.sh interleaves), or the last one when there are
// fewer plaintext runs.
type overheads struct {
	groups []*overheadGroup
	byRun  map[*runResult]pair
}

func pairPlaintext(loads []runResult) *overheads {
	o := &overheads{byRun: map[*runResult]pair{}}
	seen := map[string][]int{} // label/client/c -> indexes of its runs
	for i, l := range loads {
		k := serverKey(l.Label, l.Client, l.Concurrency)
		seen[k] = append(seen[k], i)
	}
	groups := map[string]*overheadGroup{}
	count := map[string]int{}
	for i := range loads {
		l := &loads[i]
		pl := plaintextLabel(l.Label)
		if pl == "" || l.Mode == "val-replay" {
			continue
		}
		k := serverKey(l.Label, l.Client, l.Concurrency)
		plains := seen[serverKey(pl, l.Client, l.Concurrency)]
		if len(plains) == 0 {
			continue
		}
		j := plains[min(count[k], len(plains)-1)]
		count[k]++
		p := pair{run: *l, plain: loads[j]}
		o.byRun[l] = p
		g := groups[k]
		if g == nil {
			g = &overheadGroup{label: l.Label, plain: pl, client: l.Client, c: l.Concurrency}
			groups[k] = g
			o.groups = append(o.groups, g)
		}
		g.pairs = append(g.pairs, p)
	}
	return o
}

// vs returns the "vs plaintext" cell of run l: its req/s and its server CPU
// per request against its plaintext run, or "–".
func (o *overheads) vs(l *runResult) string {
	p, ok := o.byRun[l]
	if !ok {
		return "–"
	}
	return fmt.Sprintf("req/s %.0f%%, CPU/req %s", 100*p.rpsRatio(), pct(p.cpuRatio()))
}

// table returns the medians of every overhead scenario against plaintext.
func (o *overheads) table() string {
	if len(o.groups) == 0 {
		return ""
	}
	b := &strings.Builder{}
	b.WriteString("#### Against plaintext HTTP (medians over the pairs of this run)\n\n")
	b.WriteString("| Scenario | vs | Client | c | pairs | req/s | plaintext req/s | req/s vs plaintext | p99 ms | plaintext p99 ms | server CPU µs/req | plaintext CPU µs/req | CPU/req vs plaintext |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, g := range o.groups {
		m := func(f func(pair) float64) float64 { return g.med(f) }
		fmt.Fprintf(b, "| %s | %s | %s | %d | %d | %.0f | %.0f | %s | %.3f | %.3f | %s | %s | %s |\n",
			g.label, g.plain, g.client, g.c, len(g.pairs),
			m(func(p pair) float64 { return p.run.RPS }), m(func(p pair) float64 { return p.plain.RPS }), pct(g.medianRPSRatio()),
			m(func(p pair) float64 { return p.run.P99MS }), m(func(p pair) float64 { return p.plain.P99MS }),
			num(m(func(p pair) float64 { return cpuPerReq(p.run) })), num(m(func(p pair) float64 { return cpuPerReq(p.plain) })),
			pct(g.medianCPURatio()))
	}
	b.WriteString("\n")
	return b.String()
}

func pct(ratio float64) string {
	if math.IsNaN(ratio) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*ratio)
}

func signedPct(ratio float64) string {
	if math.IsNaN(ratio) {
		return "–"
	}
	return fmt.Sprintf("%+.0f%%", 100*(ratio-1))
}

func num(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

// slower words a req/s ratio against plaintext: "8.0% slower than" or
// "3.0% faster than".
func slower(ratio float64) string {
	if ratio > 1 {
		return fmt.Sprintf("%.1f%% faster than", 100*(ratio-1))
	}
	return fmt.Sprintf("%.1f%% slower than", 100*(1-ratio))
}
