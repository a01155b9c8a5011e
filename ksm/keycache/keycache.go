// Package keycache keeps recently used KSM keys in memory, in front of a
// ksm.KeyStore, so that a busy KSM does not ask its database for the same key
// on every decrypt.
//
// The cost is staleness: a key deactivated, deleted or re-imported in the
// database keeps decrypting (or staying unknown) for at most the cache's TTL.
// Choose the TTL by how fast a revocation in the KSM must take effect; 0
// disables the cache. (Revoking a YubiKey is normally done at the validation
// server, whose /wsapi/revoke takes effect at once whatever the KSM caches.)
//
// Only successful lookups and "unknown key" answers are cached; a database
// error is never cached, so a failure is retried on the next request. Keys
// are held in process memory exactly as a lookup returns them (sealed keys
// already opened), the same as during any decrypt; the cache adds no copy on
// disk.
package keycache

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ykstack/ykstack/ksm"
)

// Cache is a ksm.KeyStore that answers Lookup from memory for up to TTL
// after asking the store behind it. Import, Each and Close go to that store;
// Import also drops the imported public names from the cache.
type Cache struct {
	store    ksm.KeyStore
	ttl      time.Duration
	negTTL   time.Duration
	maxItems int
	now      func() time.Time

	mu      sync.RWMutex
	entries map[string]entry
}

type entry struct {
	key     ksm.Key
	unknown bool // the store answered ErrUnknownKey
	expires time.Time
}

var _ ksm.KeyStore = (*Cache)(nil)

// Config says how a Cache behaves.
type Config struct {
	// TTL is how long a found key is served from memory. Required (> 0).
	TTL time.Duration
	// NegativeTTL is how long an unknown public name stays unknown without
	// asking the store; 0 means TTL/10 (so a fresh import is seen soon).
	NegativeTTL time.Duration
	// MaxEntries bounds the memory used; when full, expired entries are
	// dropped and, if none expired, the cache is emptied. 0 means 1,000,000.
	MaxEntries int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New returns a cache in front of store.
func New(store ksm.KeyStore, cfg Config) (*Cache, error) {
	if cfg.TTL <= 0 {
		return nil, errors.New("keycache: TTL must be positive")
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = cfg.TTL / 10
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = 1_000_000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{store: store, ttl: cfg.TTL, negTTL: cfg.NegativeTTL, maxItems: cfg.MaxEntries,
		now: cfg.Now, entries: make(map[string]entry)}, nil
}

// Lookup implements ksm.KeyStore.
func (c *Cache) Lookup(ctx context.Context, publicName string) (ksm.Key, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.entries[publicName]
	c.mu.RUnlock()
	if ok && now.Before(e.expires) {
		if e.unknown {
			return ksm.Key{}, ksm.ErrUnknownKey
		}
		return e.key, nil
	}
	k, err := c.store.Lookup(ctx, publicName)
	switch {
	case err == nil:
		c.put(publicName, entry{key: k, expires: now.Add(c.ttl)})
	case errors.Is(err, ksm.ErrUnknownKey) && !errors.Is(err, ksm.ErrDatabase):
		c.put(publicName, entry{unknown: true, expires: now.Add(c.negTTL)})
	}
	return k, err
}

func (c *Cache) put(name string, e entry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.maxItems {
		now := c.now()
		for n, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, n)
			}
		}
		if len(c.entries) >= c.maxItems {
			clear(c.entries)
		}
	}
	c.entries[name] = e
}

// Import implements ksm.KeyStore and forgets what the cache knew of the
// imported names (typically "unknown").
func (c *Cache) Import(ctx context.Context, keys []ksm.Key) error {
	err := c.store.Import(ctx, keys)
	c.mu.Lock()
	for _, k := range keys {
		delete(c.entries, k.PublicName)
	}
	c.mu.Unlock()
	return err
}

// Each implements ksm.KeyStore; it reads the store, never the cache.
func (c *Cache) Each(ctx context.Context, fn func(ksm.Key) error) error {
	return c.store.Each(ctx, fn)
}

// Flush empties the cache.
func (c *Cache) Flush() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// Len returns the number of cached entries, expired ones included.
func (c *Cache) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}

// Ping passes a health check on to the store when it has one.
func (c *Cache) Ping(ctx context.Context) error {
	if p, ok := c.store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

// Close implements ksm.KeyStore.
func (c *Cache) Close() error { return c.store.Close() }
