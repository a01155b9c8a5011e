package sqlstore

import (
	"sync"
	"sync/atomic"

	"github.com/ykstack/ykstack/val"
)

// keyCacheSize is how many keys' states CheckAndAdvance remembers on MySQL.
// An entry takes about 200 bytes, so the cache stays under 7 MiB.
const keyCacheSize = 32768

// keyCache remembers the yubikeys rows CheckAndAdvance last read or wrote,
// so that a verify on MySQL can decide on the remembered state and store
// its new counters in one statement instead of a SELECT and an UPDATE.
//
// An entry is only a guess: the UPDATE that acts on it requires the row to
// still hold the remembered values (see Store.advanceExact), so a row that
// another process or another store changed in the meantime makes the
// UPDATE change nothing, and CheckAndAdvance then reads the row and decides
// again. Rows with notes are not remembered (they would cost memory for a
// column the verify path never reads).
type keyCache struct {
	mu  sync.Mutex
	m   map[string]val.KeyState
	max int
}

func newKeyCache(max int) *keyCache {
	return &keyCache{m: make(map[string]val.KeyState), max: max}
}

// get returns the remembered state of the key name.
func (c *keyCache) get(name string) (val.KeyState, bool) {
	c.mu.Lock()
	k, ok := c.m[name]
	c.mu.Unlock()
	return k, ok
}

// put remembers k as the stored state of its key, evicting an arbitrary
// entry when the cache is full.
func (c *keyCache) put(k val.KeyState) {
	if k.Notes != "" {
		c.drop(k.PublicName)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k.PublicName]; !ok && len(c.m) >= c.max {
		for name := range c.m { // map order: an arbitrary victim
			delete(c.m, name)
			break
		}
	}
	c.m[k.PublicName] = k
}

// drop forgets the key name.
func (c *keyCache) drop(name string) {
	c.mu.Lock()
	delete(c.m, name)
	c.mu.Unlock()
}

// advanced returns the state a row holds after the advance UPDATE wrote
// next over prev: the columns that statement sets come from next, the
// others from prev.
func advanced(prev, next val.KeyState) val.KeyState {
	k := prev
	k.Modified, k.Counter, k.Use, k.Low, k.High, k.Nonce = next.Modified, next.Counter, next.Use, next.Low, next.High, next.Nonce
	return k
}

// Guessing pays when one process sees most of its keys' verifies. When
// several processes share the database and a key's OTPs go to each in turn
// (two ykvalds behind a round-robin balancer), the remembered state is
// mostly stale and each guess costs a wasted UPDATE before the read. So
// the store counts, over windows of guessWindow guesses, how many found
// the row changed, and when more than half did, it stops guessing except
// for one call in guessProbe, which keeps the count going so that guessing
// resumes once the remembered states are current again.
const (
	guessWindow = 128
	guessProbe  = 32
)

// guessStats decides whether CheckAndAdvance acts on remembered states.
// The counts are updated without a lock and may be off by a few calls at
// a window's end; they only steer the choice of path, never a decision.
type guessStats struct {
	tries, stale atomic.Int64 // guesses and stale guesses in this window
	calls        atomic.Int64 // calls while guessing is off
	off          atomic.Bool

	current, staleTotal atomic.Int64 // all guesses since the store opened, by result
}

// use reports whether this call should guess.
func (g *guessStats) use() bool {
	return !g.off.Load() || g.calls.Add(1)%guessProbe == 0
}

// record counts a guess and whether it found the row changed.
func (g *guessStats) record(stale bool) {
	if stale {
		g.stale.Add(1)
		g.staleTotal.Add(1)
	} else {
		g.current.Add(1)
	}
	if g.tries.Add(1) < guessWindow {
		return
	}
	n, s := g.tries.Swap(0), g.stale.Swap(0)
	g.off.Store(2*s > n)
}
