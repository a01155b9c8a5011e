package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
)

// enrolledStore opens a store on a fresh database of be with keys keys
// enrolled, cccccccc0000 and up; it is closed when b ends.
func enrolledStore(b *testing.B, be testdb.Backend, keys int) *sqlstore.Store {
	b.Helper()
	ctx := context.Background()
	s, err := sqlstore.Open(ctx, sqldb.Config{DSN: be.DSN(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	for i := range keys {
		if _, err := s.EnrollKey(ctx, fmt.Sprintf("cccccccc%04d", i), 1); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

// BenchmarkAdvanceKeyParallel measures durable replay-guard updates from many
// goroutines (b.SetParallelism(16) → 16×GOMAXPROCS), each on its own key, as a
// busy validation server does: run with -cpu to vary the concurrency.
func BenchmarkAdvanceKeyParallel(b *testing.B) {
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			const keys = 1024
			s := enrolledStore(b, be, keys)
			var next atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				name := fmt.Sprintf("cccccccc%04d", next.Add(1)%keys)
				ctr := 0
				for pb.Next() {
					ctr++
					ok, err := s.AdvanceKey(ctx, val.KeyState{PublicName: name, Modified: 1, Counter: ctr, Use: 0, Nonce: "abcdefghijklmnop"})
					if err != nil {
						b.Fatal(err)
					}
					_ = ok // keys are shared by several goroutines: some lose, as designed
				}
			})
		})
	}
}

// BenchmarkVerifyPath measures a verify's key-state work, from 16×GOMAXPROCS
// goroutines each on keys of its own: the read then the compare-and-set
// (KeyState, AdvanceKey) against CheckAndAdvance. cpu-ns/op is the
// process's CPU time per op (user+system), less sensitive to the disk
// than ns/op.
func BenchmarkVerifyPath(b *testing.B) {
	for _, be := range testdb.Backends() {
		for _, mode := range []string{"read-advance", "check-and-advance"} {
			b.Run(be.Name+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				const keys = 1024
				s := enrolledStore(b, be, keys)
				var next atomic.Int64
				b.SetParallelism(16)
				cpu0 := cpuTime()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					// Each goroutine plays keys of its own, like ykbench's workers.
					first := int(next.Add(1)-1) * 16
					i, ctr := 0, 0
					for pb.Next() {
						i++
						if i%16 == 0 {
							ctr++
						}
						name := fmt.Sprintf("cccccccc%04d", (first+i%16)%keys)
						k := val.KeyState{PublicName: name, Active: true, Modified: 1, Counter: ctr, Use: i, Nonce: "abcdefghijklmnop"}
						decide := func(prev val.KeyState) (val.KeyState, bool) { return k, prev.Active && prev.Pos().Less(k.Pos()) }
						if mode == "read-advance" {
							prev, err := s.KeyState(ctx, name)
							if err != nil {
								b.Fatal(err)
							}
							if _, ok := decide(prev); ok {
								if _, err := s.AdvanceKey(ctx, k); err != nil {
									b.Fatal(err)
								}
							}
							continue
						}
						if _, _, err := s.CheckAndAdvance(ctx, name, decide); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.StopTimer()
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
