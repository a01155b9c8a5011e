package sqlstore_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
)

// TestCheckAndAdvance: a key without a row is ErrNotFound and decide is not
// called; decide sees the stored state; a refusal writes nothing; of many
// concurrent calls with one position exactly one advances, and on SQLite
// every other one's decide sees the winner's state.
func TestCheckAndAdvance(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			s := open(t, sqldb.Config{DSN: b.DSN(t)})
			const name = "cccccccccccb"
			called := false
			_, _, err := s.CheckAndAdvance(ctx, name, func(val.KeyState) (val.KeyState, bool) { called = true; return val.KeyState{}, false })
			if !errors.Is(err, val.ErrNotFound) || called {
				t.Fatalf("unknown key: err %v, decide called %v; want ErrNotFound, not called", err, called)
			}
			if _, err := s.EnrollKey(ctx, name, 100); err != nil {
				t.Fatal(err)
			}
			next := val.KeyState{PublicName: name, Active: true, Modified: 200, Counter: 1, Use: 1, Low: 2, High: 3, Nonce: "n1n1n1n1n1n1n1n1"}
			prev, advanced, err := s.CheckAndAdvance(ctx, name, func(prev val.KeyState) (val.KeyState, bool) { return next, false })
			if err != nil || advanced || prev.Counter != -1 || !prev.Active {
				t.Fatalf("refused: prev %+v, advanced %v, err %v; want the enrolled state, false, nil", prev, advanced, err)
			}
			if k, _ := s.KeyState(ctx, name); k.Counter != -1 {
				t.Fatalf("a refusal wrote: %+v", k)
			}

			// Many at once with one position: one wins.
			next.Counter = 2
			const n = 16
			var sawWinner atomic.Int64
			wins := concurrentWins(t, n, func(int) (bool, error) {
				_, advanced, err := s.CheckAndAdvance(ctx, name, func(prev val.KeyState) (val.KeyState, bool) {
					if prev.Pos() == next.Pos() {
						sawWinner.Add(1)
					}
					return next, prev.Pos().Less(next.Pos())
				})
				return advanced, err
			})
			if wins != 1 {
				t.Fatalf("%d of %d concurrent calls advanced, want 1", wins, n)
			}
			// On SQLite decide runs under the write lock, so every loser
			// decided on the winner's state. On MySQL a loser may have
			// read the row before the winner's commit; its UPDATE then
			// changed nothing (counted above).
			if b.Name == "sqlite" && sawWinner.Load() < n-1 {
				t.Errorf("%d of the %d losers' decide saw the winner's state, want all", sawWinner.Load(), n-1)
			}
			if k, _ := s.KeyState(ctx, name); k.Pos() != next.Pos() || k.Nonce != next.Nonce || k.Modified != 200 {
				t.Fatalf("stored %+v, want %+v", k, next)
			}
			// A decide that asks for a position not above the stored one
			// changes nothing: the compare-and-set has the last word.
			_, advanced, err = s.CheckAndAdvance(ctx, name, func(val.KeyState) (val.KeyState, bool) { return next, true })
			if err != nil || advanced {
				t.Fatalf("same position forced: advanced %v, err %v; want false, nil", advanced, err)
			}
		})
	}
}

// TestCheckAndAdvanceSharedRow: two stores, each with its own connection
// pool (as two ykvald processes on one database), take turns and race on
// one key. Whatever a store remembers of the row (on MySQL it keeps the
// states it read and wrote), every decision is taken on the row as stored:
// an OTP the other store has passed is refused, a key the other store
// disabled is refused, the state handed back is the stored one, and of
// concurrent calls across both stores exactly one wins each round.
func TestCheckAndAdvanceSharedRow(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			a, other := open(t, sqldb.Config{DSN: dsn}), open(t, sqldb.Config{DSN: dsn})
			const name = "ccccccccccdb"
			if _, err := a.EnrollKey(ctx, name, 100); err != nil {
				t.Fatal(err)
			}
			at := func(counter int, modified int64) val.KeyState {
				return val.KeyState{PublicName: name, Active: true, Modified: modified, Counter: counter, Use: 1, Low: counter, High: 7, Nonce: "nonce" + strconv.Itoa(counter) + "xxxxxxxxxx"}
			}
			// step asks s to advance to next when the state it is shown
			// is below it; it returns the last state decide saw.
			step := func(s *sqlstore.Store, next val.KeyState) (seen, prev val.KeyState, advanced bool) {
				t.Helper()
				prev, advanced, err := s.CheckAndAdvance(ctx, name, func(p val.KeyState) (val.KeyState, bool) {
					seen = p
					return next, p.Active && p.Pos().Less(next.Pos())
				})
				if err != nil {
					t.Fatal(err)
				}
				return seen, prev, advanced
			}

			if _, _, ok := step(a, at(1, 201)); !ok {
				t.Fatal("first advance refused")
			}
			if _, _, ok := step(a, at(2, 202)); !ok { // now a remembers counter 2
				t.Fatal("second advance refused")
			}
			if _, _, ok := step(other, at(5, 205)); !ok {
				t.Fatal("the other store's advance refused")
			}
			// a remembers 2; the row holds 5: 3 must be refused.
			seen, prev, ok := step(a, at(3, 203))
			if ok || seen.Counter != 5 || prev.Counter != 5 || prev.Modified != 205 {
				t.Fatalf("OTP behind the row: advanced %v, last decide saw %+v, returned %+v; want refused on counter 5", ok, seen, prev)
			}
			// The other store moves the row on again; a's next advance is
			// above it, succeeds, and hands back the row's state as stored.
			if _, _, ok := step(other, at(6, 206)); !ok {
				t.Fatal("the other store's advance refused")
			}
			if _, prev, ok := step(a, at(7, 207)); !ok || prev.Counter != 6 || prev.Modified != 206 || prev.Nonce != at(6, 0).Nonce {
				t.Fatalf("advance over the other store's write: advanced %v, prev %+v; want true over counter 6", ok, prev)
			}
			// Disabled by the other store: refused, and nothing written.
			if err := other.SetActive(ctx, name, false); err != nil {
				t.Fatal(err)
			}
			if seen, _, ok := step(a, at(8, 208)); ok || seen.Active {
				t.Fatalf("disabled key: advanced %v, decide saw %+v", ok, seen)
			}
			if k, _ := other.KeyState(ctx, name); k.Counter != 7 {
				t.Fatalf("stored %+v, want counter 7", k)
			}
			if err := other.SetActive(ctx, name, true); err != nil {
				t.Fatal(err)
			}
			if seen, _, ok := step(a, at(8, 208)); !ok || !seen.Active {
				t.Fatalf("re-enabled key: advanced %v, decide saw %+v", ok, seen)
			}

			// Rounds of 16 concurrent calls, half on each store, one
			// position per round: exactly one winner per round.
			stores := []*sqlstore.Store{a, other}
			for round := range 50 {
				next := at(10+round, int64(300+round))
				wins := concurrentWins(t, 16, func(i int) (bool, error) {
					_, advanced, err := stores[i%2].CheckAndAdvance(ctx, name, func(p val.KeyState) (val.KeyState, bool) {
						return next, p.Active && p.Pos().Less(next.Pos())
					})
					return advanced, err
				})
				if wins != 1 {
					t.Fatalf("round %d: %d of 16 calls advanced, want 1", round, wins)
				}
				if k, _ := a.KeyState(ctx, name); k.Pos() != next.Pos() || k.Modified != next.Modified {
					t.Fatalf("round %d: stored %+v, want %+v", round, k, next)
				}
			}
		})
	}
}

// concurrentWins runs call(0) … call(n-1) at once and returns how many
// reported true; an error fails the test.
func concurrentWins(t *testing.T, n int, call func(i int) (bool, error)) int64 {
	t.Helper()
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			won, err := call(i)
			if err != nil {
				t.Error(err)
			}
			if won {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	return wins.Load()
}
