package clientcache_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/clientcache"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/storetest"
)

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

func open(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance: the cached store still keeps the val.Store contract.
func TestConformance(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) val.Store {
				c, err := clientcache.New(open(t, b.DSN(t)), clientcache.Config{TTL: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				return c
			})
		})
	}
}

var ci = val.Client{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="}

// TestTTL: a client deactivated in the database is served until the TTL
// passes, then refused; unknown ids and errors are never cached.
func TestTTL(t *testing.T) {
	ctx := context.Background()
	s := open(t, testdb.SQLite(t))
	clk := &clock{t: time.Unix(1e9, 0)}
	c, err := clientcache.New(s, clientcache.Config{TTL: 5 * time.Second, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Client(ctx, 1); !errors.Is(err, val.ErrNotFound) {
		t.Fatalf("Client(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := s.ImportClients(ctx, []val.Client{ci}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Client(ctx, 1); err != nil || got.Secret != ci.Secret {
		t.Fatalf("Client(1) after import behind the cache = %+v, %v; unknown ids must not be cached", got, err)
	}
	if _, err := s.DB().Exec("UPDATE clients SET active = 0"); err != nil {
		t.Fatal(err)
	}
	clk.add(4 * time.Second)
	if _, err := c.Client(ctx, 1); err != nil {
		t.Errorf("Client(1) within the TTL = %v, want the cached client", err)
	}
	clk.add(2 * time.Second)
	if _, err := c.Client(ctx, 1); !errors.Is(err, val.ErrNotFound) {
		t.Errorf("Client(1) after the TTL = %v, want ErrNotFound (deactivated)", err)
	}
}

func TestErrorsNotCached(t *testing.T) {
	ctx := context.Background()
	s := open(t, testdb.SQLite(t))
	c, _ := clientcache.New(s, clientcache.Config{TTL: time.Hour})
	s.Close()
	for range 2 {
		if _, err := c.Client(ctx, 1); err == nil || errors.Is(err, val.ErrNotFound) {
			t.Errorf("Client on a closed store = %v, want a storage error", err)
		}
	}
}

func TestConfig(t *testing.T) {
	if _, err := clientcache.New(nil, clientcache.Config{}); err == nil {
		t.Error("New with TTL 0 succeeded")
	}
}
