package sqlstore

import (
	"context"
	"strconv"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
)

// TestKeyCache: the cache holds at most its size, keeps the newest put of
// a key, forgets on drop, and does not hold rows with notes.
func TestKeyCache(t *testing.T) {
	c := newKeyCache(4)
	for i := range 10 {
		c.put(val.KeyState{PublicName: "k" + strconv.Itoa(i), Counter: i})
		if len(c.m) > 4 {
			t.Fatalf("after %d puts the cache holds %d keys, more than its size 4", i+1, len(c.m))
		}
	}
	if _, ok := c.get("k9"); !ok {
		t.Fatal("the key put last is not held")
	}
	c.put(val.KeyState{PublicName: "k9", Counter: 99})
	if k, _ := c.get("k9"); k.Counter != 99 || len(c.m) != 4 {
		t.Fatalf("after a second put: %+v, %d keys; want counter 99, 4 keys", k, len(c.m))
	}
	c.drop("k9")
	if _, ok := c.get("k9"); ok {
		t.Fatal("a dropped key is still held")
	}
	c.put(val.KeyState{PublicName: "k8", Notes: "spare key"})
	if _, ok := c.get("k8"); ok {
		t.Fatal("a row with notes is held")
	}
	next := advanced(val.KeyState{PublicName: "k1", Active: true, Created: 5, Notes: "n", Counter: 1},
		val.KeyState{PublicName: "k1", Modified: 7, Counter: 2, Use: 3, Low: 4, High: 5, Nonce: "x"})
	want := val.KeyState{PublicName: "k1", Active: true, Created: 5, Notes: "n", Modified: 7, Counter: 2, Use: 3, Low: 4, High: 5, Nonce: "x"}
	if next != want {
		t.Fatalf("advanced = %+v, want %+v", next, want)
	}
}

// TestGuessStats: guessing turns off when most guesses of a window were
// stale, still probes one call in guessProbe while off, and turns back on
// after a window of mostly current guesses.
func TestGuessStats(t *testing.T) {
	var g guessStats
	for range guessWindow {
		if !g.use() {
			t.Fatal("guessing off before any stale guess")
		}
		g.record(true)
	}
	uses := 0
	for range 10 * guessProbe {
		if g.use() {
			uses++
		}
	}
	if uses != 10 {
		t.Fatalf("after a stale window, %d of %d calls guessed, want 10 (one in %d)", uses, 10*guessProbe, guessProbe)
	}
	for i := range guessWindow {
		g.record(i%4 == 0) // a quarter stale
	}
	for range guessProbe {
		if !g.use() {
			t.Fatal("guessing still off after a mostly current window")
		}
	}
}

// TestGuessesAlternating: two stores on one MySQL database taking turns on
// the same keys (two ykvalds behind a round-robin balancer) find their
// remembered states stale and stop guessing; a store left alone with the
// keys starts again.
func TestGuessesAlternating(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	stores := make([]*Store, 2)
	for i := range stores {
		s, err := Open(ctx, sqldb.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	names := []string{"cccccccccccb", "cccccccccccd", "ccccccccccce"}
	for _, n := range names {
		if _, err := stores[0].EnrollKey(ctx, n, 1); err != nil {
			t.Fatal(err)
		}
	}
	advance := func(s *Store, name string, counter int) {
		t.Helper()
		next := val.KeyState{PublicName: name, Active: true, Modified: int64(counter), Counter: counter, Use: 1, Nonce: "n"}
		_, ok, err := s.CheckAndAdvance(ctx, name, func(p val.KeyState) (val.KeyState, bool) { return next, p.Pos().Less(next.Pos()) })
		if err != nil || !ok {
			t.Fatalf("advance %s to %d: %v, %v", name, counter, ok, err)
		}
	}
	counter := 1
	for range 3 * guessWindow {
		for _, n := range names {
			advance(stores[counter%2], n, counter)
		}
		counter++
	}
	for i, s := range stores {
		if !s.guesses.off.Load() {
			t.Errorf("store %d still guesses with the other store moving every key in between", i)
		}
		if current, stale := s.Guesses(); stale < guessWindow/2 || stale < current {
			t.Errorf("store %d counted %d current and %d stale guesses; want mostly stale", i, current, stale)
		}
	}
	current0, _ := stores[0].Guesses()
	for range 3 * guessWindow * guessProbe / len(names) {
		for _, n := range names {
			advance(stores[0], n, counter)
		}
		counter++
	}
	if stores[0].guesses.off.Load() {
		t.Error("a store alone with its keys does not guess again")
	}
	if current, _ := stores[0].Guesses(); current-current0 < guessWindow {
		t.Errorf("a store alone with its keys counted %d more current guesses, want at least %d", current-current0, guessWindow)
	}
}
