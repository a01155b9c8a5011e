package valsync_test

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valsync"
)

// fast is a worker configuration for tests: short rounds and back-offs.
var fast = valsync.WorkerConfig{Interval: 50 * time.Millisecond, OldLimit: time.Second, Timeout: 5 * time.Second, MaxBackoff: 200 * time.Millisecond}

// runWorker runs p's queue worker until the test ends (or stop is called)
// and checks that it returns nil.
func runWorker(t *testing.T, p *valsync.Pool, cfg valsync.WorkerConfig) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := p.RunQueue(ctx, cfg); err != nil {
			t.Errorf("RunQueue = %v, want nil", err)
		}
	})
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// TestWorkerDrains: with C down, OTPs accepted on A queue rows for C; the
// worker backs off while C is down and, once C is back, delivers every row:
// C ends with A's counters, nothing lost, and the OTPs are replays on C.
func TestWorkerDrains(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			nodes := newPool(t, b, 3, poolOptions{verbose: true})
			a, c := nodes[0], nodes[2]
			c.sw.down.Store(true)
			const n = 30
			for i := range n {
				if st, _ := a.verify(t, nil, mint(1, uint8(i)), "nonceAnonceAnonceA", "&sl=fast"); st != val.StatusOK {
					t.Fatalf("verify %d on A with C down = %s, want OK", i, st)
				}
			}
			eventually(t, "A's rows for C due", func() bool {
				due, err := a.store.DueEntries(context.Background(), c.syncURL(), 0, 1000)
				return err == nil && len(due) == n && len(a.queue(t)) == 1
			})
			// A row as YK-VAL's resync writes it (stored values, fake OTP), for B.
			k := a.key(t)
			queued := time.Now().Unix() - 3600
			if err := a.store.Enqueue(context.Background(), []val.QueueEntry{{Queued: &queued, Modified: k.Modified, ServerNonce: strings.Repeat("f", 32),
				OTP: ciPublicID + strings.Repeat("c", 32), Server: nodes[1].syncURL(), Info: valsync.Info(k, k)}}); err != nil {
				t.Fatal(err)
			}

			stop := runWorker(t, a.pool, fast)
			eventually(t, "B's resync row delivered", func() bool { return a.queue(t)[nodes[1].syncURL()] == 0 })
			eventually(t, "the worker backs off C", func() bool { return strings.Contains(a.logs.String(), "peer does not answer; backing off") })
			if q := a.queue(t)[c.syncURL()]; q != n {
				t.Fatalf("while C is down A's queue for C = %d, want %d", q, n)
			}
			c.sw.down.Store(false)
			eventually(t, "A's queue drains", func() bool { return len(a.queue(t)) == 0 })
			stop()

			ka, kc := a.key(t), c.key(t)
			if kc.Pos() != ka.Pos() || kc.Nonce != ka.Nonce || kc.Modified != ka.Modified || kc.Low != ka.Low || kc.High != ka.High {
				t.Errorf("C's key after the drain = %+v, want A's %+v", kc, ka)
			}
			for _, i := range []uint8{0, n - 1} {
				if st, _ := c.verify(t, nil, mint(1, i), "nonceCnonceCnonceC", "&sl=fast"); st != val.StatusReplayedOTP {
					t.Errorf("OTP %d, accepted on A, on C = %s, want REPLAYED_OTP", i, st)
				}
			}
			if v := a.metric(t, `ykval_sync_requests_total{peer="`+c.syncURL()+`",result="error"}`); v < 1 {
				t.Errorf("A counted %v failed requests to C, want some", v)
			}
			if v := a.metric(t, `ykval_queue_length{peer="`+c.syncURL()+`"}`); v != 0 {
				t.Errorf("ykval_queue_length for C = %v, want 0", v)
			}
		})
	}
}

// TestWorkerKeepsRefused: rows a peer refuses (OPERATION_NOT_ALLOWED) stay
// queued; rows a peer answers BAD_OTP (key disabled there) are dropped.
func TestWorkerKeepsRefused(t *testing.T) {
	nodes := newPool(t, testdb.Backends()[0], 3, poolOptions{allow: func(i int) []netip.Prefix {
		if i == 1 { // B refuses everyone
			return []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
		}
		return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}})
	a, bb, c := nodes[0], nodes[1], nodes[2]
	if _, err := c.store.ImportKey(bg, val.KeyState{PublicName: ciPublicID, Active: false, Modified: -1, Counter: -1, Use: -1, Low: -1, High: -1}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if st, _ := a.verify(t, nil, mint(1, uint8(i)), "nonceAnonceAnonceA", "&sl=fast"); st != val.StatusNotEnoughAnswers {
			t.Fatalf("verify on A, B refusing, C with the key disabled = %s, want NOT_ENOUGH_ANSWERS", st)
		}
	}
	eventually(t, "A's verify-time rounds settled", func() bool {
		q := a.queue(t)
		return q[bb.syncURL()] == 3 && q[c.syncURL()] == 0
	})
	// Put C's row back, as if its verify-time request had failed.
	k := a.key(t)
	if err := a.store.Enqueue(bg, []val.QueueEntry{{Modified: k.Modified, ServerNonce: strings.Repeat("e", 32), OTP: mint(1, 2), Server: c.syncURL(), Info: valsync.Info(k, k)}}); err != nil {
		t.Fatal(err)
	}
	runWorker(t, a.pool, fast)
	eventually(t, "C's BAD_OTP row dropped", func() bool { return a.queue(t)[c.syncURL()] == 0 })
	eventually(t, "B's refusals logged", func() bool { return strings.Contains(a.logs.String(), "peer refused sync requests") })
	if q := a.queue(t)[bb.syncURL()]; q != 3 {
		t.Errorf("A's rows for B (refusing) = %d, want 3 kept", q)
	}
	if v := a.metric(t, `ykval_sync_requests_total{peer="`+bb.syncURL()+`",result="refused"}`); v < 3 {
		t.Errorf("refused requests to B = %v, want at least 3", v)
	}
}

// flakyStore fails the queue reads while fails is positive, like a
// database that went away.
type flakyStore struct {
	val.Store
	fails atomic.Int32
}

var errFlaky = errors.New("flaky: database went away")

func (f *flakyStore) QueueLengths(ctx context.Context) (map[string]int, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errFlaky
	}
	return f.Store.QueueLengths(ctx)
}

func (f *flakyStore) DueEntries(ctx context.Context, server string, before int64, limit int) ([]val.QueueEntry, error) {
	if f.fails.Add(-1) >= 0 {
		return nil, errFlaky
	}
	return f.Store.DueEntries(ctx, server, before, limit)
}

// TestWorkerSurvivesDatabase: a worker whose database fails keeps going and
// delivers the rows once it is back.
func TestWorkerSurvivesDatabase(t *testing.T) {
	nodes := newPool(t, testdb.Backends()[0], 2, poolOptions{verbose: true})
	a, bb := nodes[0], nodes[1]
	bb.sw.down.Store(true)
	if st, _ := a.verify(t, nil, mint(1, 0), "nonceAnonceAnonceA", "&sl=fast"); st != val.StatusNotEnoughAnswers {
		t.Fatalf("verify with B down = %s", st)
	}
	bb.sw.down.Store(false)
	eventually(t, "A's row for B due", func() bool {
		due, err := a.store.DueEntries(bg, bb.syncURL(), 0, 10)
		return err == nil && len(due) == 1
	})
	flaky := &flakyStore{Store: a.store}
	flaky.fails.Store(6)
	p, err := valsync.New(valsync.Config{Store: flaky, Peers: a.pool.Peers(), Logger: a.log})
	if err != nil {
		t.Fatal(err)
	}
	runWorker(t, p, fast)
	eventually(t, "A's queue drains after the database comes back", func() bool { return len(a.queue(t)) == 0 })
	if !strings.Contains(a.logs.String(), "queue round failed; retrying") {
		t.Errorf("no log line for the failed rounds")
	}
	if k := bb.key(t); k.Counter != 1 || k.Use != 0 {
		t.Errorf("B's key = %+v, want the OTP's counters", k)
	}
}

func TestWorkerConfigValidate(t *testing.T) {
	bad := valsync.WorkerConfig{Interval: -1, Parallel: -1}
	nodes := newPool(t, testdb.Backends()[0], 1, poolOptions{})
	if err := nodes[0].pool.RunQueue(bg, bad); err == nil {
		t.Error("RunQueue with a negative interval succeeded")
	}
}
