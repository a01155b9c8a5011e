package keycache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keycache"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/ksm/storetest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t *testing.T, dsn string) *sqlstore.Store { return openStoreTB(t, dsn) }

func openStoreTB(t testing.TB, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance: a cache in front of a store still keeps the KeyStore contract.
func TestConformance(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) ksm.KeyStore {
				c, err := keycache.New(openStore(t, b.DSN(t)), keycache.Config{TTL: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		})
	}
}

var key = ksm.Key{SerialNr: 1, PublicName: "cccccccccccb", InternalName: "609963eae7b5",
	AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true, Hardware: true}

// TestTTL: a deactivation in the database takes effect within the TTL, not before.
func TestTTL(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.SQLite(t)
	s := openStore(t, dsn)
	clk := &clock{t: time.Unix(1e9, 0)}
	c, err := keycache.New(s, keycache.Config{TTL: 10 * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Import(ctx, []ksm.Key{key}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, key.PublicName); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if _, err := s.DB().Exec("UPDATE yubikeys SET active = 0"); err != nil {
		t.Fatal(err)
	}
	clk.add(9 * time.Second)
	if _, err := c.Lookup(ctx, key.PublicName); err != nil {
		t.Errorf("Lookup within the TTL = %v, want the cached key", err)
	}
	clk.add(2 * time.Second)
	if _, err := c.Lookup(ctx, key.PublicName); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup after the TTL = %v, want ErrUnknownKey (deactivated)", err)
	}
}

// TestNegative: unknown names are cached briefly, and an Import through the cache is seen at once.
func TestNegative(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testdb.SQLite(t))
	clk := &clock{t: time.Unix(1e9, 0)}
	c, _ := keycache.New(s, keycache.Config{TTL: 10 * time.Second, Now: clk.now})
	if _, err := c.Lookup(ctx, key.PublicName); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Fatalf("Lookup(unknown) = %v", err)
	}
	// Imported behind the cache's back: still unknown until the negative TTL (1 s) passes.
	if err := s.Import(ctx, []ksm.Key{key}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, key.PublicName); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup within the negative TTL = %v, want ErrUnknownKey", err)
	}
	clk.add(1500 * time.Millisecond)
	if _, err := c.Lookup(ctx, key.PublicName); err != nil {
		t.Errorf("Lookup after the negative TTL = %v, want the key", err)
	}
	// Through the cache, an import is visible at once.
	k2 := key
	k2.PublicName, k2.SerialNr = "cccccccccccd", 2
	c.Lookup(ctx, k2.PublicName)
	if err := c.Import(ctx, []ksm.Key{k2}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Lookup(ctx, k2.PublicName); err != nil {
		t.Errorf("Lookup after Import through the cache = %v", err)
	}
}

// TestErrorsNotCached: a database failure is never remembered, and never becomes a key or "unknown".
func TestErrorsNotCached(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testdb.SQLite(t))
	c, _ := keycache.New(s, keycache.Config{TTL: time.Hour})
	s.DB().Close()
	for range 2 {
		_, err := c.Lookup(ctx, key.PublicName)
		if !errors.Is(err, ksm.ErrDatabase) || errors.Is(err, ksm.ErrUnknownKey) {
			t.Errorf("Lookup on a closed database = %v, want ErrDatabase", err)
		}
	}
	if n := c.Len(); n != 0 {
		t.Errorf("cache holds %d entries after errors, want 0", n)
	}
}

func TestMaxEntries(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, testdb.SQLite(t))
	c, _ := keycache.New(s, keycache.Config{TTL: time.Hour, MaxEntries: 3})
	for _, n := range []string{"cccccccccccb", "cccccccccccd", "ccccccccccce", "cccccccccccf", "cccccccccccg"} {
		c.Lookup(ctx, n)
		if c.Len() > 3 {
			t.Fatalf("cache holds %d entries, max 3", c.Len())
		}
	}
}

func TestConfig(t *testing.T) {
	if _, err := keycache.New(nil, keycache.Config{}); err == nil {
		t.Error("New with TTL 0 succeeded")
	}
}
