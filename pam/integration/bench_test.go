package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/msteinert/pam/v2"
)

// BenchmarkLoginRoundTrip measures one pam_authenticate + pam_acct_mgmt
// through libpam: the C module starts the helper, which prompts, reads the
// authfile and verifies a fresh OTP with the validation server (SQLite) on
// loopback. It reports p50 and p99 in milliseconds.
func BenchmarkLoginRoundTrip(b *testing.B) {
	s := newSetup(b)
	dir := newStackB(b, s.line("required"), s.account())
	times := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		tx, err := pam.StartConfDir("ykpam", "alice", &answerer{answer: s.tok.Next()}, dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Authenticate(0); err != nil {
			b.Fatal(err)
		}
		if err := tx.AcctMgmt(0); err != nil {
			b.Fatal(err)
		}
		tx.End()
		times = append(times, time.Since(start))
	}
	reportPercentiles(b, times)
}

// BenchmarkHelperStart measures the module's fixed cost: starting the
// helper for a user without tokens (no prompt, no network).
func BenchmarkHelperStart(b *testing.B) {
	s := newSetup(b)
	dir := newStackB(b, s.line("required"))
	times := make([]time.Duration, 0, b.N)
	for b.Loop() {
		start := time.Now()
		tx, err := pam.StartConfDir("ykpam", "nobody-here", &answerer{}, dir)
		if err != nil {
			b.Fatal(err)
		}
		if err := tx.Authenticate(0); err == nil {
			b.Fatal("authenticated a user without tokens")
		}
		tx.End()
		times = append(times, time.Since(start))
	}
	reportPercentiles(b, times)
}

func reportPercentiles(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	ms := func(p float64) float64 {
		return float64(d[min(len(d)-1, int(float64(len(d))*p))]) / float64(time.Millisecond)
	}
	b.ReportMetric(ms(0.50), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
