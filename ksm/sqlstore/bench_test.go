package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp/modhex"
)

// benchKeys returns n random active keys with 12-character public names.
func benchKeys(n int) []ksm.Key {
	keys := make([]ksm.Key, n)
	for i := range keys {
		b := make([]byte, 6+6+16)
		rand.Read(b)
		keys[i] = ksm.Key{
			SerialNr: int64(i + 1), PublicName: modhex.EncodeToString(b[:6]), Created: "2024-01-01T00:00:00",
			InternalName: hex.EncodeToString(b[6:12]), AESKey: hex.EncodeToString(b[12:]), Active: true, Hardware: true,
		}
	}
	return keys
}

// openBench opens a fresh store of backend be holding keys.
func openBench(b *testing.B, be testdb.Backend, keys []ksm.Key) *sqlstore.Store {
	b.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: be.DSN(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if err := st.Import(ctx, keys); err != nil {
		b.Fatal(err)
	}
	return st
}

// BenchmarkLookup times the KSM's one query per decrypt, on a table of
// 10,000 keys, from one goroutine and from GOMAXPROCS×4 goroutines.
func BenchmarkLookup(b *testing.B) {
	keys := benchKeys(10_000)
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st := openBench(b, be, keys)
			ctx := context.Background()
			b.Run("serial", func(b *testing.B) {
				i := 0
				for b.Loop() {
					k := keys[i%len(keys)]
					i++
					if _, err := st.Lookup(ctx, k.PublicName); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("parallel", func(b *testing.B) {
				var start atomic.Int64
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					i := int(start.Add(1)) * 1013 // each goroutine walks the keys from its own place
					for pb.Next() {
						k := keys[i%len(keys)]
						i += 7
						if _, err := st.Lookup(ctx, k.PublicName); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		})
	}
}

// BenchmarkImport times importing keys in one transaction, per key.
func BenchmarkImport(b *testing.B) {
	const batch = 5_000
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st := openBench(b, be, nil)
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				keys := benchKeys(batch)
				for i := range keys { // 16 random modhex characters: no collisions between batches
					var r [2]byte
					rand.Read(r[:])
					keys[i].PublicName += modhex.EncodeToString(r[:])
				}
				b.StartTimer()
				if err := st.Import(ctx, keys); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/key")
		})
	}
}
