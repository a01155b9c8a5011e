// Package clientcache keeps active API clients in memory in front of a
// val.Store, so a busy validation server does not read the clients table on
// every verify.
//
// The cost is staleness: a client deactivated, deleted or given a new secret
// in the database keeps being served for at most the TTL; 0 disables the
// cache. Unknown or inactive ids are not cached (they answer NO_SUCH_CLIENT
// from the database each time), nor is any error, so a storage failure is
// retried on the next request and never turns into a verdict.
package clientcache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ykstack/ykstack/val"
)

// Store is a val.Store whose Client answers from memory for up to TTL after
// reading the store behind it. Every other method goes to that store;
// CreateClients and ImportClients also drop what the cache holds.
type Store struct {
	val.Store
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.RWMutex
	clients map[int64]entry
}

type entry struct {
	c       val.Client
	expires time.Time
}

var _ val.Store = (*Store)(nil)

// Config says how the cache behaves.
type Config struct {
	TTL        time.Duration    // how long a client is served from memory; must be > 0
	MaxEntries int              // bound on cached clients; 0 means 100,000
	Now        func() time.Time // the clock; nil means time.Now
}

// New returns a cache in front of store.
func New(store val.Store, cfg Config) (*Store, error) {
	if cfg.TTL <= 0 {
		return nil, errors.New("clientcache: TTL must be positive")
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 100_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Store{Store: store, ttl: cfg.TTL, max: cfg.MaxEntries, now: cfg.Now, clients: make(map[int64]entry)}, nil
}

// Client implements val.Store.
func (s *Store) Client(ctx context.Context, id int64) (val.Client, error) {
	now := s.now()
	s.mu.RLock()
	e, ok := s.clients[id]
	s.mu.RUnlock()
	if ok && now.Before(e.expires) {
		return e.c, nil
	}
	c, err := s.Store.Client(ctx, id)
	if err != nil {
		return c, err
	}
	s.mu.Lock()
	if len(s.clients) >= s.max {
		clear(s.clients)
	}
	s.clients[id] = entry{c: c, expires: now.Add(s.ttl)}
	s.mu.Unlock()
	return c, nil
}

// CreateClients implements val.Store.
func (s *Store) CreateClients(ctx context.Context, template val.Client, n int) ([]val.Client, error) {
	defer s.Flush()
	return s.Store.CreateClients(ctx, template, n)
}

// ImportClients implements val.Store.
func (s *Store) ImportClients(ctx context.Context, clients []val.Client) (int, error) {
	defer s.Flush()
	return s.Store.ImportClients(ctx, clients)
}

// Flush empties the cache.
func (s *Store) Flush() {
	s.mu.Lock()
	clear(s.clients)
	s.mu.Unlock()
}
