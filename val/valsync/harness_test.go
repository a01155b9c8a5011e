package valsync_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// The CI key and client of YK-KSM's and YK-VAL's self-tests (spec 5.1).
const (
	ciPublicID = "idkfefrdhtru"
	ciUID      = "609963eae7b5"
	ciAESKey   = "c68c9df8cbfe7d2f994cb904046c7218"
	ciSecret   = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
)

var bg = context.Background()

// otpKSM decrypts the CI key's OTPs in-process with package otp; the val
// packages never import the ksm ones (val/e2e runs the real KSM server).
type otpKSM struct {
	key otp.Key
	uid otp.UID
}

func (k otpKSM) Decrypt(_ context.Context, s string) (val.Decrypted, error) {
	pub, token, err := otp.Split(s)
	if err != nil || pub != ciPublicID {
		return val.Decrypted{}, fmt.Errorf("%w: unknown key", val.ErrKSMRejected)
	}
	t, err := otp.Decrypt(k.key, k.uid, token)
	if err != nil {
		return val.Decrypted{}, fmt.Errorf("%w: %v", val.ErrKSMRejected, err)
	}
	return val.Decrypted{Counter: t.Counter, Low: t.TimestampLow, High: t.TimestampHigh, Use: t.Use}, nil
}

func ciKSM() otpKSM {
	key, _ := otp.ParseKey(ciAESKey)
	uid, _ := otp.ParseUID(ciUID)
	return otpKSM{key, uid}
}

// mint returns an OTP of the CI key at (counter, use).
func mint(counter uint16, use uint8) string {
	k := ciKSM()
	return otp.Generate(ciPublicID, k.key, otp.Token{UID: k.uid, Counter: counter, Use: use, TimestampLow: 0x1000 + uint16(use)*8, TimestampHigh: 1, Random: 0x4754})
}

// switchable is a handler that can be taken down: then every request has
// its connection closed without an answer, as a crashed server would.
type switchable struct {
	h    atomic.Pointer[http.Handler]
	down atomic.Bool
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		panic(http.ErrAbortHandler)
	}
	(*s.h.Load()).ServeHTTP(w, r)
}

// node is one validation server of a test pool: its store, its Pool and its
// HTTP server on loopback.
type node struct {
	name  string
	url   string
	store *sqlstore.Store
	pool  *valsync.Pool
	reg   *prometheus.Registry
	sw    *switchable
	logs  *syncBuffer
	log   *slog.Logger
}

// syncURL is the node's sync endpoint.
func (n *node) syncURL() string { return n.url + "/wsapi/2.0/sync" }

// poolOptions adjust a test pool.
type poolOptions struct {
	key     func(i int) []byte         // the pool key of node i; nil: none
	allow   func(i int) []netip.Prefix // the sync allow-list of node i; nil: loopback
	verbose bool                       // log at Info (else Warn)
	ksm     val.KSM                    // nil: the CI key's
}

// newPool starts n nodes on fresh stores of backend b, each listing the
// others as peers.
func newPool(t testing.TB, b testdb.Backend, n int, o poolOptions) []*node {
	t.Helper()
	nodes := make([]*node, n)
	for i := range nodes {
		sw := &switchable{}
		srv := httptest.NewServer(sw)
		t.Cleanup(srv.Close)
		// At most 16 connections each: three servers must not exhaust a
		// MariaDB's max_connections (151 by default).
		st, err := sqlstore.Open(bg, sqldb.Config{DSN: b.DSN(t), MaxOpenConns: 16})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.ImportClients(bg, []val.Client{{ID: 1, Active: true, Created: 1, Secret: ciSecret}}); err != nil {
			t.Fatal(err)
		}
		nodes[i] = &node{name: string(rune('A' + i)), url: srv.URL, store: st, reg: prometheus.NewRegistry(), sw: sw, logs: &syncBuffer{}}
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	for i, nd := range nodes {
		var peers []string
		for j, other := range nodes {
			if j != i {
				peers = append(peers, other.syncURL())
			}
		}
		var key []byte
		if o.key != nil {
			key = o.key(i)
		}
		allow := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		if o.allow != nil {
			allow = o.allow(i)
		}
		logger := slog.New(slog.NewTextHandler(io.MultiWriter(nd.logs, testWriter{t}), &slog.HandlerOptions{Level: level})).With("node", nd.name)
		nd.log = logger
		pool, err := valsync.New(valsync.Config{Store: nd.store, Peers: peers, Key: key, Logger: logger, Registerer: nd.reg})
		if err != nil {
			t.Fatal(err)
		}
		nd.pool = pool
		t.Cleanup(pool.Close)
		var ksm val.KSM = ciKSM()
		if o.ksm != nil {
			ksm = o.ksm
		}
		mux, err := valserver.NewMux(valserver.Config{Store: nd.store, KSM: ksm, Syncer: pool, Logger: logger,
			Registry: nd.reg, SyncAllow: allow, SyncKey: key})
		if err != nil {
			t.Fatal(err)
		}
		var h http.Handler = mux
		nd.sw.h.Store(&h)
	}
	return nodes
}

// verify sends a verify request and returns the answer's status and sl; it
// fails the test unless the answer is well-formed and signed with the
// client's key.
func (n *node) verify(t testing.TB, c *http.Client, otp, nonce, extra string) (val.Status, string) {
	t.Helper()
	st, sl, err := n.tryVerify(c, otp, nonce, extra)
	if err != nil {
		t.Fatal(err)
	}
	return st, sl
}

func (n *node) tryVerify(c *http.Client, otp, nonce, extra string) (val.Status, string, error) {
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(n.url + "/wsapi/2.0/verify?id=1&otp=" + otp + "&nonce=" + nonce + extra)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		return "", "", fmt.Errorf("node %s: answer %q: %w", n.name, body, err)
	}
	if !r.Verify(val.DecodeKey(ciSecret)) {
		return "", "", fmt.Errorf("node %s: answer %q not signed with the client key", n.name, body)
	}
	return r.Status(), r.Get("sl"), nil
}

// key returns the node's state of the CI key.
func (n *node) key(t testing.TB) val.KeyState {
	t.Helper()
	k, err := n.store.KeyState(bg, ciPublicID)
	if err != nil {
		t.Fatalf("node %s: KeyState: %v", n.name, err)
	}
	return k
}

// queue returns the node's queue lengths by server.
func (n *node) queue(t testing.TB) map[string]int {
	t.Helper()
	l, err := n.store.QueueLengths(bg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// eventually polls cond until it holds, failing the test after a generous
// deadline (a condition that must come true, not a speed requirement).
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric returns the value of the sample line starting with name{labels} in
// the node's registry, or -1.
func (n *node) metric(t testing.TB, series string) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+fmt.Sprintf("%q", l.GetValue()))
			}
			s := mf.GetName() + "{" + strings.Join(labels, ",") + "}"
			if s != series {
				continue
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return -1
}

// syncBuffer is a log destination written to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testWriter sends log lines to the test's output.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
