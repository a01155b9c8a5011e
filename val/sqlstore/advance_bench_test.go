package sqlstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
)

// BenchmarkAdvanceKeyParallel measures durable replay-guard updates from many
// goroutines (b.SetParallelism(16) → 16×GOMAXPROCS), each on its own key, as a
// busy validation server does: run with -cpu to vary the concurrency.
func BenchmarkAdvanceKeyParallel(b *testing.B) {
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			ctx := context.Background()
			s, err := sqlstore.Open(ctx, sqldb.Config{DSN: be.DSN(b)})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const keys = 1024
			for i := range keys {
				if _, err := s.EnrollKey(ctx, fmt.Sprintf("cccccccc%04d", i), 1); err != nil {
					b.Fatal(err)
				}
			}
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
