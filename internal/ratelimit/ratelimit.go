// Package ratelimit limits how often each of many keys (source addresses,
// API clients) may act: one token bucket per key, from
// golang.org/x/time/rate, in a map of bounded size.
//
// A key's bucket holds Burst tokens and refills at Rate tokens a second;
// each allowed event takes one. A bucket idle long enough to be full again
// is dropped (lazily, as keys come and go), since a new bucket would be the
// same: expiry never lets a key through faster. When the map is full of
// buckets still refilling, the least recently used one is evicted and
// counted (see [Limiter.Evicted]): that key starts over with a full bucket.
// Size MaxKeys for the number of keys expected in a refill period; each
// bucket costs about 200 bytes.
//
// Keys of IPv6 sources should be networks, not addresses: one host holds a
// whole /64 and could otherwise take a new key per request. [AddrKey] makes
// such keys.
package ratelimit

import (
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// DefaultMaxKeys is Config.MaxKeys's default.
const DefaultMaxKeys = 1 << 16

// maxIdle bounds how long an idle bucket is kept.
const maxIdle = 24 * time.Hour

// Config configures a Limiter.
type Config struct {
	// Rate is the number of events a second each key may have in the long
	// run. Must be positive.
	Rate float64
	// Burst is the number of events a key may have at once, after being
	// idle. Zero means Rate rounded up, and at least 1.
	Burst int
	// MaxKeys bounds the number of buckets kept. Zero means DefaultMaxKeys.
	MaxKeys int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Limiter holds one token bucket per key. It is safe for concurrent use.
// A nil *Limiter allows everything.
type Limiter struct {
	limit   rate.Limit
	burst   int
	idle    time.Duration // time to refill an empty bucket
	now     func() time.Time
	seed    maphash.Seed
	shards  []shard
	evicted atomic.Uint64
}

type shard struct {
	mu         sync.Mutex
	m          map[string]*entry
	max        int
	head, tail *entry // most and least recently used
}

type entry struct {
	key        string
	lim        *rate.Limiter
	last       time.Time
	prev, next *entry
}

// New returns a Limiter for cfg, or an error naming every problem with it.
func New(cfg Config) (*Limiter, error) {
	var errs []error
	if !(cfg.Rate > 0) || math.IsInf(cfg.Rate, 0) {
		errs = append(errs, fmt.Errorf("ratelimit: rate %v is not a positive number", cfg.Rate))
	}
	if cfg.Burst < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: burst %d is negative", cfg.Burst))
	}
	if cfg.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("ratelimit: maximum number of keys %d is negative", cfg.MaxKeys))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	burst := cfg.Burst
	if burst == 0 {
		burst = int(min(math.Ceil(cfg.Rate), math.MaxInt32))
	}
	maxKeys := cfg.MaxKeys
	if maxKeys == 0 {
		maxKeys = DefaultMaxKeys
	}
	nShards := 16
	if maxKeys < 64 {
		nShards = 1 // small maps: one exact LRU order
	}
	l := &Limiter{
		limit: rate.Limit(cfg.Rate),
		burst: burst,
		idle:  maxIdle, // for tiny rates; the map is still bounded by MaxKeys
		now:   cfg.Now,
		seed:  maphash.MakeSeed(),
	}
	if secs := float64(burst) / cfg.Rate; secs < maxIdle.Seconds() {
		l.idle = time.Duration(math.Ceil(secs * float64(time.Second)))
	}
	if l.now == nil {
		l.now = time.Now
	}
	l.shards = make([]shard, nShards)
	for i := range l.shards {
		l.shards[i] = shard{m: make(map[string]*entry), max: (maxKeys + nShards - 1) / nShards}
	}
	return l, nil
}

// Allow reports whether key may act now, and if so takes a token from its
// bucket.
func (l *Limiter) Allow(key string) bool {
	if l == nil {
		return true
	}
	now := l.now()
	s := &l.shards[0]
	if len(l.shards) > 1 {
		s = &l.shards[maphash.String(l.seed, key)%uint64(len(l.shards))]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.tail != nil && now.Sub(s.tail.last) >= l.idle {
		s.remove(s.tail) // full again: nothing is lost
	}
	e := s.m[key]
	if e == nil {
		if len(s.m) >= s.max {
			s.remove(s.tail)
			l.evicted.Add(1)
		}
		e = &entry{key: key, lim: rate.NewLimiter(l.limit, l.burst)}
		s.m[key] = e
	} else {
		s.unlink(e)
	}
	s.pushFront(e)
	e.last = now
	return e.lim.AllowN(now, 1)
}

// Len returns the number of buckets kept.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Evicted returns how many buckets were evicted before they were full
// again because the map was full.
func (l *Limiter) Evicted() uint64 {
	if l == nil {
		return 0
	}
	return l.evicted.Load()
}

// RetryAfter returns the time a refused key should wait for one token:
// 1/Rate, rounded up to a whole second as an HTTP Retry-After header
// wants it.
func (l *Limiter) RetryAfter() time.Duration {
	if l == nil {
		return 0
	}
	secs := math.Ceil(1 / float64(l.limit))
	if secs > maxIdle.Seconds() {
		return maxIdle
	}
	return max(time.Second, time.Duration(secs)*time.Second)
}

// Rate returns the events a second each key may have.
func (l *Limiter) Rate() float64 { return float64(l.limit) }

// Burst returns the bucket size.
func (l *Limiter) Burst() int { return l.burst }

func (s *shard) remove(e *entry) {
	s.unlink(e)
	delete(s.m, e.key)
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

// AddrKey returns the rate-limit key of a source address: an IPv4 address
// itself (also when IPv4-mapped), and the /64 network of an IPv6 address,
// which one host or customer usually holds whole.
func AddrKey(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// ParseRate parses a rate: a non-negative number of events, optionally
// per unit: "100", "100/s", "6000/m" (or "/min"), "3600/h". It returns
// events a second; "0" is 0 (which callers take as "no limit").
func ParseRate(s string) (float64, error) {
	num, unit, hasUnit := strings.Cut(strings.TrimSpace(s), "/")
	per := 1.0
	if hasUnit {
		switch strings.TrimSpace(unit) {
		case "s", "sec", "second":
			per = 1
		case "m", "min", "minute":
			per = 60
		case "h", "hour":
			per = 3600
		default:
			return 0, fmt.Errorf("ratelimit: rate %q: unit must be s, m or h", s)
		}
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 || math.IsInf(n, 0) || math.IsNaN(n) {
		return 0, fmt.Errorf("ratelimit: rate %q: not a non-negative number of events", s)
	}
	return n / per, nil
}
