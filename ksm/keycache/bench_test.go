package keycache_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keycache"
)

// BenchmarkLookup compares a SQLite lookup with a cached one over 10,000 keys.
func BenchmarkLookup(b *testing.B) {
	ctx := context.Background()
	s := openStoreB(b)
	var keys []ksm.Key
	for i := range 10_000 {
		k := key
		k.SerialNr, k.PublicName = int64(i), fmt.Sprintf("cccc%08d", i)
		keys = append(keys, k)
	}
	if err := s.Import(ctx, keys); err != nil {
		b.Fatal(err)
	}
	c, _ := keycache.New(s, keycache.Config{TTL: time.Hour})
	for _, bc := range []struct {
		name  string
		store ksm.KeyStore
	}{{"sqlite", s}, {"cached", c}} {
		b.Run(bc.name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				if _, err := bc.store.Lookup(ctx, keys[i%len(keys)].PublicName); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func openStoreB(b *testing.B) ksm.KeyStore { return openStoreTB(b, testdb.SQLite(b)) }
