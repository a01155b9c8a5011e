package sqlstore_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/val"
)

const failServer = "https://fail.example.com/wsapi/2.0/sync"

// refuseQueueInserts makes the database itself refuse queue rows for
// failServer, with a trigger: the INSERT fails inside the transaction,
// after the counter UPDATE ran.
func refuseQueueInserts(t *testing.T, db *sqldb.DB) {
	t.Helper()
	q := "CREATE TRIGGER queue_refuse BEFORE INSERT ON queue WHEN NEW.server = '" + failServer + "' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"
	if db.Dialect == sqldb.MySQL {
		q = "CREATE TRIGGER queue_refuse BEFORE INSERT ON queue FOR EACH ROW BEGIN IF NEW.server = '" + failServer + "' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused by test trigger'; END IF; END"
	}
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("create trigger: %v", err)
	}
}

func entry(k val.KeyState, server, nonce string) val.QueueEntry {
	queued := k.Modified
	return val.QueueEntry{Queued: &queued, Modified: k.Modified, ServerNonce: nonce, OTP: k.PublicName + strings.Repeat("c", 32),
		Server: server, Info: fmt.Sprintf("yk_publicname=%s&yk_counter=%d&yk_use=%d&yk_high=0&yk_low=0&nonce=%s,local_counter=-1&local_use=-1", k.PublicName, k.Counter, k.Use, k.Nonce)}
}

func state(name string, counter int) val.KeyState {
	return val.KeyState{PublicName: name, Active: true, Created: 1, Modified: int64(1700000000 + counter), Counter: counter, Use: 0, Nonce: fmt.Sprintf("nonce%011d", counter)}
}

// TestAdvanceKeyQueuedRollback: when the database refuses a queue row, the
// counter update of the same call is rolled back too, while concurrent
// calls sharing its transaction (SQLite's group commit) still commit.
func TestAdvanceKeyQueuedRollback(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := open(t, sqldb.Config{DSN: b.DSN(t)})
			refuseQueueInserts(t, s.DB())
			const victim = "cccccccccccb"
			others := []string{"cccccccccccc", "cccccccccccd", "ccccccccccce", "cccccccccccf", "cccccccccccg", "ccccccccccch", "ccccccccccci", "cccccccccccj"}
			for _, n := range append([]string{victim}, others...) {
				if _, err := s.ImportKey(bg, state(n, 1)); err != nil {
					t.Fatal(err)
				}
			}
			for round := 2; round < 12; round++ {
				var wg sync.WaitGroup
				errs := make([]error, len(others))
				oks := make([]bool, len(others))
				var victimOK bool
				var victimErr error
				wg.Go(func() {
					k := state(victim, round)
					victimOK, victimErr = s.AdvanceKeyQueued(bg, k, []val.QueueEntry{
						entry(k, "https://ok.example.com/wsapi/2.0/sync", "v"), entry(k, failServer, "v"),
					})
				})
				for i, n := range others {
					wg.Go(func() {
						k := state(n, round)
						oks[i], errs[i] = s.AdvanceKeyQueued(bg, k, []val.QueueEntry{entry(k, "https://ok.example.com/wsapi/2.0/sync", n)})
					})
				}
				wg.Wait()
				if victimOK || victimErr == nil {
					t.Fatalf("round %d: AdvanceKeyQueued with a refused queue row = %v, %v; want false and an error", round, victimOK, victimErr)
				}
				for i := range others {
					if !oks[i] || errs[i] != nil {
						t.Errorf("round %d: AdvanceKeyQueued(%s) next to a failing call = %v, %v; want true, nil", round, others[i], oks[i], errs[i])
					}
				}
			}
			if k, err := s.KeyState(bg, victim); err != nil || k.Counter != 1 {
				t.Errorf("after refused queue rows the key is %+v, %v; want counter 1 (rolled back)", k, err)
			}
			lengths, err := s.QueueLengths(bg)
			if err != nil {
				t.Fatal(err)
			}
			if want := 10 * len(others); lengths["https://ok.example.com/wsapi/2.0/sync"] != want || len(lengths) != 1 {
				t.Errorf("QueueLengths = %v, want only the others' %d rows", lengths, want)
			}
			for _, n := range others {
				if k, err := s.KeyState(bg, n); err != nil || k.Counter != 11 {
					t.Errorf("key %s = %+v, %v; want counter 11", n, k, err)
				}
			}
		})
	}
}
