package ratelimit

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// clock is a settable clock for a Limiter.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func mustNew(t *testing.T, cfg Config) *Limiter {
	t.Helper()
	l, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return l
}

// allowed counts how many of n events key is allowed.
func allowed(l *Limiter, key string, n int) int {
	k := 0
	for range n {
		if l.Allow(key) {
			k++
		}
	}
	return k
}

func TestBurstThenRate(t *testing.T) {
	c := newClock()
	l := mustNew(t, Config{Rate: 10, Burst: 5, Now: c.Now})
	if got := allowed(l, "a", 8); got != 5 {
		t.Errorf("8 events at once: %d allowed, want the burst 5", got)
	}
	if got := allowed(l, "b", 8); got != 5 {
		t.Errorf("another key: %d allowed, want its own burst 5", got)
	}
	c.Add(300 * time.Millisecond) // 3 tokens at 10/s
	if got := allowed(l, "a", 8); got != 3 {
		t.Errorf("after 300 ms at 10/s: %d allowed, want 3", got)
	}
	c.Add(time.Hour)
	if got := allowed(l, "a", 8); got != 5 {
		t.Errorf("after an hour: %d allowed, want the burst 5", got)
	}
	if l.Rate() != 10 || l.Burst() != 5 || l.RetryAfter() != time.Second {
		t.Errorf("Rate, Burst, RetryAfter = %v, %d, %v; want 10, 5, 1s", l.Rate(), l.Burst(), l.RetryAfter())
	}
}

func TestDefaultBurst(t *testing.T) {
	for _, tt := range []struct {
		rate  float64
		burst int
	}{{0.1, 1}, {1, 1}, {2.5, 3}, {100, 100}} {
		if l := mustNew(t, Config{Rate: tt.rate}); l.Burst() != tt.burst {
			t.Errorf("New(Rate: %v).Burst() = %d, want %d", tt.rate, l.Burst(), tt.burst)
		}
	}
	if got := mustNew(t, Config{Rate: 0.01}).RetryAfter(); got != 100*time.Second {
		t.Errorf("RetryAfter at 0.01/s = %v, want 100s", got)
	}
	if got := mustNew(t, Config{Rate: 1e-300}).RetryAfter(); got != maxIdle {
		t.Errorf("RetryAfter at 1e-300/s = %v, want %v", got, maxIdle)
	}
}

// TestIdleExpiry: a bucket idle until full again is dropped, and a key
// that comes back gets no more than it would have had.
func TestIdleExpiry(t *testing.T) {
	c := newClock()
	l := mustNew(t, Config{Rate: 2, Burst: 4, MaxKeys: 10, Now: c.Now}) // refills in 2 s
	for i := range 5 {
		l.Allow(fmt.Sprint("k", i))
	}
	if l.Len() != 5 {
		t.Fatalf("Len = %d after 5 keys, want 5", l.Len())
	}
	c.Add(1999 * time.Millisecond)
	l.Allow("k0")
	if l.Len() != 5 {
		t.Errorf("Len = %d before the buckets refilled, want 5", l.Len())
	}
	c.Add(time.Millisecond)
	l.Allow("new") // k1..k4 are full again and go; k0 was used 1 ms ago
	if l.Len() != 2 {
		t.Errorf("Len = %d after the idle buckets refilled, want 2 (k0 and new)", l.Len())
	}
	if l.Evicted() != 0 {
		t.Errorf("Evicted = %d, want 0: expiry is not eviction", l.Evicted())
	}
}

// TestBounded: the map never holds more than MaxKeys buckets; the least
// recently used goes first.
func TestBounded(t *testing.T) {
	c := newClock()
	l := mustNew(t, Config{Rate: 1, Burst: 3, MaxKeys: 4, Now: c.Now})
	allowed(l, "keep", 3) // empty bucket
	for i := range 10 {
		l.Allow(fmt.Sprint("k", i))
		l.Allow("keep") // stays the most recently used
		if l.Len() > 4 {
			t.Fatalf("Len = %d, want at most 4", l.Len())
		}
	}
	if l.Evicted() != 7 {
		t.Errorf("Evicted = %d after 11 keys in a map of 4, want 7", l.Evicted())
	}
	if l.Allow("keep") {
		t.Error("the most recently used key was evicted: its empty bucket became full")
	}

	// The sharded map of the default size stays bounded too.
	big := mustNew(t, Config{Rate: 1, MaxKeys: 1000, Now: c.Now})
	for i := range 5000 {
		big.Allow(fmt.Sprint(i))
	}
	if n := big.Len(); n > 1000+16 || n < 900 {
		t.Errorf("Len = %d after 5000 keys with MaxKeys 1000, want about 1000", n)
	}
	if e := big.Evicted(); e != uint64(5000-big.Len()) {
		t.Errorf("Evicted = %d, want %d", e, 5000-big.Len())
	}
}

// TestConcurrent: goroutines sharing keys get exactly the bursts, no more.
func TestConcurrent(t *testing.T) {
	c := newClock() // frozen: no refill
	l := mustNew(t, Config{Rate: 1, Burst: 50, MaxKeys: 100, Now: c.Now})
	var ok [4]atomic.Int64
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % 4
				if l.Allow(fmt.Sprint("key", k)) {
					ok[k].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for k := range ok {
		if got := ok[k].Load(); got != 50 {
			t.Errorf("key%d: %d allowed, want the burst 50", k, got)
		}
	}
}

func TestNilLimiter(t *testing.T) {
	var l *Limiter
	if !l.Allow("x") || l.Len() != 0 || l.Evicted() != 0 || l.RetryAfter() != 0 {
		t.Error("a nil Limiter does not allow everything")
	}
}

func TestNewErrors(t *testing.T) {
	_, err := New(Config{Rate: -1, Burst: -1, MaxKeys: -1})
	if err == nil {
		t.Fatal("New with three bad fields = nil error")
	}
	for _, want := range []string{"rate -1", "burst -1", "keys -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error %q lacks %q", err, want)
		}
	}
	for _, r := range []float64{0, math.NaN(), math.Inf(1)} {
		if _, err := New(Config{Rate: r}); err == nil {
			t.Errorf("New(Rate: %v) = nil error", r)
		}
	}
}

func TestAddrKey(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"192.0.2.1", "192.0.2.1"},
		{"::ffff:192.0.2.1", "192.0.2.1"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::9%eth0", "2001:db8:1:2::/64"},
	} {
		if got := AddrKey(netip.MustParseAddr(tt.in)); got != tt.want {
			t.Errorf("AddrKey(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

var rateTests = []struct {
	in   string
	want float64
	ok   bool
}{
	{"100", 100, true},
	{"100/s", 100, true},
	{" 100 / s ", 100, true},
	{"0.5/s", 0.5, true},
	{"600/m", 10, true},
	{"600/min", 10, true},
	{"7200/h", 2, true},
	{"0", 0, true},
	{"", 0, false},
	{"-1", 0, false},
	{"1/d", 0, false},
	{"inf", 0, false},
	{"NaN/s", 0, false},
	{"ten/s", 0, false},
	{"1e400", 0, false},
}

func TestParseRate(t *testing.T) {
	for _, tt := range rateTests {
		got, err := ParseRate(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseRate(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseRate(f *testing.F) {
	for _, tt := range rateTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRate(s)
		if err != nil {
			return
		}
		if r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
			t.Fatalf("ParseRate(%q) = %v, want a finite rate ≥ 0", s, r)
		}
		if r > 0 {
			if _, err := New(Config{Rate: r}); err != nil {
				t.Fatalf("New(Rate: ParseRate(%q) = %v) = %v", s, r, err)
			}
		}
	})
}
