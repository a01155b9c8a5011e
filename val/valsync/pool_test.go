package valsync_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// TestPoolVerify runs a pool of three servers on SQLite and on MariaDB: an
// OTP accepted on one is known to the others, a peer down makes sl=100
// impossible and sl=fast still possible, and a peer that had seen a later
// OTP makes the verify REPLAYED_OTP.
func TestPoolVerify(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			nodes := newPool(t, b, 3, poolOptions{})
			a, bb, c := nodes[0], nodes[1], nodes[2]

			o := mint(1, 0)
			if st, sl := a.verify(t, nil, o, "nonceAnonceAnonceA", ""); st != val.StatusOK || sl != "100" {
				t.Fatalf("verify on A = %s sl=%s, want OK sl=100", st, sl)
			}
			for _, n := range []*node{bb, c} {
				if k := n.key(t); k.Counter != 1 || k.Use != 0 || k.Nonce != "nonceAnonceAnonceA" {
					t.Errorf("node %s after A's verify: %+v, want counter 1 use 0 and A's nonce", n.name, k)
				}
				if st, _ := n.verify(t, nil, o, "nonceBnonceBnonceB", ""); st != val.StatusReplayedOTP {
					t.Errorf("the same OTP on %s = %s, want REPLAYED_OTP", n.name, st)
				}
			}
			eventually(t, "A's queue empties", func() bool { return len(a.queue(t)) == 0 })
			for _, p := range []string{bb.syncURL(), c.syncURL()} {
				if v := a.metric(t, `ykval_sync_requests_total{peer="`+p+`",result="ok"}`); v != 1 {
					t.Errorf("A's ykval_sync_requests_total{%s, ok} = %v, want 1", p, v)
				}
			}

			// C is down: sl=100 cannot be met, sl=fast can.
			c.sw.down.Store(true)
			if st, sl := a.verify(t, nil, mint(1, 1), "nonceAnonceAnonceA", "&sl=100"); st != val.StatusNotEnoughAnswers || sl != "50" {
				t.Errorf("verify on A, sl=100, C down = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=50", st, sl)
			}
			if st, sl := a.verify(t, nil, mint(1, 2), "nonceAnonceAnonceA", "&sl=fast"); st != val.StatusOK || sl != "50" {
				t.Errorf("verify on A, sl=fast, C down = %s sl=%s, want OK sl=50", st, sl)
			}
			// The rows for C wait for the worker, due at once (queued NULL).
			eventually(t, "C's rows marked due", func() bool {
				due, err := a.store.DueEntries(bg, c.syncURL(), 0, 10)
				return err == nil && len(due) == 2
			})
			if q := a.queue(t); q[c.syncURL()] != 2 || len(q) != 1 {
				t.Errorf("A's queue = %v, want 2 rows for C only", q)
			}
			if v := a.metric(t, `ykval_queue_length{peer="`+c.syncURL()+`"}`); v != 2 {
				t.Errorf("ykval_queue_length for C = %v, want 2", v)
			}
			c.sw.down.Store(false)

			// B has seen a later OTP (its sync to A was lost): A's verify of
			// an earlier one wins locally, and B's answer refuses it.
			later := val.KeyState{PublicName: ciPublicID, Modified: 1, Counter: 5, Use: 0, Low: 1, High: 1, Nonce: "nonceBnonceBnonceB"}
			if ok, err := bb.store.AdvanceKey(bg, later); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if st, _ := a.verify(t, nil, mint(2, 0), "nonceAnonceAnonceA", ""); st != val.StatusReplayedOTP {
				t.Errorf("verify on A of an OTP older than B's = %s, want REPLAYED_OTP", st)
			}
			if k := a.key(t); k.Counter != 5 || k.Nonce != "nonceBnonceBnonceB" {
				t.Errorf("A after B's higher answer: %+v, want B's counters (update if higher)", k)
			}
			// Same counters, another nonce: a replay vote too.
			if ok, err := c.store.AdvanceKey(bg, val.KeyState{PublicName: ciPublicID, Modified: 1, Counter: 6, Use: 0, Nonce: "nonceCnonceCnonceC"}); !ok || err != nil {
				t.Fatal(ok, err)
			}
			if st, _ := a.verify(t, nil, mint(6, 0), "nonceAnonceAnonceA", ""); st != val.StatusReplayedOTP {
				t.Errorf("verify on A of an OTP C accepted for another request = %s, want REPLAYED_OTP", st)
			}
		})
	}
}

// TestPoolSameOTPEverywhere sends one fresh OTP to the three servers at
// once, with three nonces and sl=60 (both peers must confirm), round
// after round: never more than one OK.
func TestPoolSameOTPEverywhere(t *testing.T) {
	rounds := 100
	if testing.Short() {
		rounds = 20
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			nodes := newPool(t, b, 3, poolOptions{})
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			defer client.CloseIdleConnections()
			totals := map[val.Status]int{}
			for r := range rounds {
				o := mint(uint16(1+r/256), uint8(r%256))
				var wg sync.WaitGroup
				statuses := make([]val.Status, len(nodes))
				errs := make([]error, len(nodes))
				start := make(chan struct{})
				for i, n := range nodes {
					wg.Go(func() {
						<-start
						statuses[i], _, errs[i] = n.tryVerify(client, o, fmt.Sprintf("round%04dnode%dxx", r, i), "&sl=60")
					})
				}
				close(start)
				wg.Wait()
				oks := 0
				for i, st := range statuses {
					if errs[i] != nil {
						t.Fatalf("round %d, node %d: %v", r, i, errs[i])
					}
					totals[st]++
					switch st {
					case val.StatusOK:
						oks++
					case val.StatusReplayedOTP, val.StatusNotEnoughAnswers:
					default:
						t.Errorf("round %d, node %s: %s", r, nodes[i].name, st)
					}
				}
				if oks > 1 {
					t.Fatalf("round %d: %d servers accepted the same OTP: %v", r, oks, statuses)
				}
			}
			t.Logf("%d rounds × 3 servers: %v", rounds, totals)
		})
	}
}

// TestPoolKey: a pool sharing a key works; a server with the wrong key is
// refused by its peers (OPERATION_NOT_ALLOWED, counted as refused), and an
// answer not signed with the key does not count.
func TestPoolKey(t *testing.T) {
	good := []byte("the pool's key, 32 random bytes!")
	nodes := newPool(t, testdb.Backends()[0], 3, poolOptions{key: func(i int) []byte {
		if i == 2 {
			return []byte("a stale key")
		}
		return good
	}})
	a, c := nodes[0], nodes[2]
	if st, sl := a.verify(t, nil, mint(1, 0), "nonceAnonceAnonceA", "&sl=50"); st != val.StatusOK || sl != "50" {
		t.Errorf("verify on A, sl=50, C with another key = %s sl=%s, want OK sl=50 (B only)", st, sl)
	}
	if st, sl := a.verify(t, nil, mint(1, 1), "nonceAnonceAnonceA", "&sl=100"); st != val.StatusNotEnoughAnswers || sl != "50" {
		t.Errorf("verify on A, sl=100 = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=50", st, sl)
	}
	if st, sl := c.verify(t, nil, mint(1, 2), "nonceCnonceCnonceC", "&sl=fast"); st != val.StatusNotEnoughAnswers || sl != "0" {
		t.Errorf("verify on C (wrong key) = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=0", st, sl)
	}
	eventually(t, "C's refusals counted", func() bool {
		return c.metric(t, `ykval_sync_requests_total{peer="`+a.syncURL()+`",result="bad_answer"}`) == 1
	})
}

// TestPoolBadAnswers: answers a peer must not count: unsigned (wrong h),
// malformed, for another key, an HTTP error, a redirect.
func TestPoolBadAnswers(t *testing.T) {
	answers := map[string]string{
		"badsig":   "h=AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\nt=2020-01-01T00:00:00Z0000\r\nmodified=-1\r\nnonce=0000000000000000\r\nyk_publicname=idkfefrdhtru\r\nyk_counter=-1\r\nyk_use=-1\r\nyk_high=-1\r\nyk_low=-1\r\nstatus=OK\r\n\r\n",
		"garbage":  "<html>oops</html>",
		"otherkey": "",
	}
	otherKey := val.Response{Status: val.StatusOK, Extras: []val.Field{{Key: "modified", Value: "-1"}, {Key: "nonce", Value: "0000000000000000"},
		{Key: "yk_publicname", Value: "cccccccccccb"}, {Key: "yk_counter", Value: "-1"}, {Key: "yk_use", Value: "-1"}, {Key: "yk_high", Value: "-1"}, {Key: "yk_low", Value: "-1"}}}
	answers["otherkey"] = string(otherKey.Format(nil))
	fake := http.NewServeMux()
	for name, body := range answers {
		fake.HandleFunc("/"+name+"/wsapi/2.0/sync", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })
	}
	fake.HandleFunc("/http500/wsapi/2.0/sync", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) })
	fake.HandleFunc("/redirect/wsapi/2.0/sync", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/badsig/wsapi/2.0/sync?"+r.URL.RawQuery, http.StatusFound)
	})
	srv := httptest.NewServer(fake)
	defer srv.Close()

	nodes := newPool(t, testdb.Backends()[0], 1, poolOptions{})
	a := nodes[0]
	for i, name := range []string{"badsig", "garbage", "otherkey", "http500", "redirect"} {
		peer := srv.URL + "/" + name + "/wsapi/2.0/sync"
		p, err := valsync.New(valsync.Config{Store: a.store, Peers: []string{peer}})
		if err != nil {
			t.Fatal(err)
		}
		next := val.KeyState{PublicName: ciPublicID, Active: true, Modified: 1, Counter: 1, Use: i, Nonce: "nonceAnonceAnonceA"}
		req := valserver.SyncRequest{OTP: mint(1, uint8(i)), Accepted: next, Level: 100, Timeout: 5 * time.Second}
		req.Queued = p.Queue(req)
		if _, err := a.store.EnrollKey(bg, ciPublicID, 1); err != nil {
			t.Fatal(err)
		}
		if ok, err := a.store.AdvanceKeyQueued(bg, next, req.Queued); !ok || err != nil {
			t.Fatal(ok, err)
		}
		res, err := p.Sync(bg, req)
		if err != nil || res.Valid != 0 || res.Replayed || res.Pool != 1 || res.Required != 1 {
			t.Errorf("peer answering %s: Sync = %+v, %v; want no valid answer of 1 required", name, res, err)
		}
		p.Close()
		if due, err := a.store.DueEntries(bg, peer, 0, 10); err != nil || len(due) != 1 {
			t.Errorf("peer answering %s: %d due rows, %v; want its row kept for the worker", name, len(due), err)
		}
	}
}

// TestPoolConfig: bad peers are reported, all at once.
func TestPoolConfig(t *testing.T) {
	nodes := newPool(t, testdb.Backends()[0], 1, poolOptions{})
	_, err := valsync.New(valsync.Config{Store: nodes[0].store, Peers: []string{"ftp://x/", "https://a/s", "https://a/s", "https://b/s?x"}})
	if err == nil {
		t.Fatal("New with bad peers succeeded")
	}
	for _, want := range []string{"ftp://x/", "listed twice", "https://b/s?x"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error %q does not mention %q", err, want)
		}
	}
	if _, err := valsync.New(valsync.Config{Peers: []string{"https://a/s"}}); err == nil {
		t.Error("New without a store succeeded")
	}
	// An empty pool: nothing queued, OK with sl=0.
	p, err := valsync.New(valsync.Config{Store: nodes[0].store})
	if err != nil {
		t.Fatal(err)
	}
	req := valserver.SyncRequest{OTP: mint(1, 0), Accepted: val.KeyState{PublicName: ciPublicID}, Level: 100}
	if q := p.Queue(req); q != nil {
		t.Errorf("Queue with no peers = %+v", q)
	}
	if res, err := p.Sync(bg, req); err != nil || res != (valserver.SyncResult{}) {
		t.Errorf("Sync with no peers = %+v, %v", res, err)
	}
}
