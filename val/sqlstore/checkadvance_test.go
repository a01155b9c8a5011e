package sqlstore_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
)

// TestCheckAndAdvance: a key without a row is ErrNotFound and decide is not
// called; decide sees the stored state; a refusal writes nothing; of many
// concurrent calls with one position exactly one advances, and every other
// one's decide sees the winner's state.
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
			var wins, sawWinner atomic.Int64
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, advanced, err := s.CheckAndAdvance(ctx, name, func(prev val.KeyState) (val.KeyState, bool) {
						if prev.Pos() == next.Pos() {
							sawWinner.Add(1)
						}
						return next, prev.Pos().Less(next.Pos())
					})
					if err != nil {
						t.Error(err)
					}
					if advanced {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			if wins.Load() != 1 {
				t.Fatalf("%d of %d concurrent calls advanced, want 1", wins.Load(), n)
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
