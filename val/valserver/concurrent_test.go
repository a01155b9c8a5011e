package valserver_test

import (
	"context"
	"sync"
	"testing"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
)

// siblingStore is a real store with a sibling server's write slipped in
// between this server's read of a key and its compare-and-set: the
// interleaving two servers on one database meet when a client sends one
// request to both at once.
// It embeds val.Store, not *sqlstore.Store, so that it is no KeyChecker:
// the server reads, then stores with AdvanceKeyQueued.
type siblingStore struct {
	val.Store
	once    sync.Once
	sibling val.KeyState // what the other server stores first
}

// siblingChecker is the same for a server that reads and stores in one
// call (a KeyChecker): the sibling's write comes just before that call,
// the nearest it can come.
type siblingChecker struct {
	*sqlstore.Store
	once    sync.Once
	sibling val.KeyState
}

func (s *siblingChecker) CheckAndAdvance(ctx context.Context, name string, decide func(val.KeyState) (val.KeyState, bool)) (val.KeyState, bool, error) {
	var err error
	s.once.Do(func() { _, err = s.Store.AdvanceKey(ctx, s.sibling) })
	if err != nil {
		return val.KeyState{}, false, err
	}
	return s.Store.CheckAndAdvance(ctx, name, decide)
}

func (s *siblingStore) AdvanceKeyQueued(ctx context.Context, next val.KeyState, q []val.QueueEntry) (bool, error) {
	var err error
	s.once.Do(func() { _, err = s.Store.AdvanceKey(ctx, s.sibling) })
	if err != nil {
		return false, err
	}
	return s.Store.AdvanceKeyQueued(ctx, next, q)
}

// TestConcurrentSibling: when another server wins the compare-and-set with
// the very same request (OTP and nonce), the loser answers REPLAYED_REQUEST,
// on which clients wait for the winner's OK; with another nonce (someone
// else's request) it answers REPLAYED_OTP. Never OK either way.
func TestConcurrentSibling(t *testing.T) {
	tests := []struct {
		name, siblingNonce string
		want               val.Status
	}{
		{"same request", nonce1, val.StatusReplayedRequest},
		{"other request", "bakabakabakabaka", val.StatusReplayedOTP},
	}
	for _, b := range testdb.Backends() {
		for _, tt := range tests {
			for _, checker := range []bool{false, true} {
				name := b.Name + "/" + tt.name
				if checker {
					name += "/checker"
				}
				t.Run(name, func(t *testing.T) {
					base := openStore(t, b)
					if _, err := base.EnrollKey(context.Background(), ciPublicID, 1); err != nil {
						t.Fatal(err)
					}
					// ciOTP is at counter 1, use 0.
					sibling := val.KeyState{PublicName: ciPublicID, Modified: 2, Counter: 1, Use: 0, Low: 0x8d40, High: 0x0f, Nonce: tt.siblingNonce}
					var st val.Store = &siblingStore{Store: base, sibling: sibling}
					if checker {
						st = &siblingChecker{Store: base, sibling: sibling}
					}
					e := start(t, b, valserver.Config{Store: st})
					_, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", ciOTP, "nonce", nonce1))
					if r.Status() != tt.want {
						t.Errorf("verify after a sibling's %s = %s, want %s", tt.name, r.Status(), tt.want)
					}
				})
			}
		}
	}
}
