package ksmserver_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// guarded is a KSM with refusal settings on a real loopback server.
type guarded struct {
	url  string
	logs *syncBuffer
}

// newGuarded starts a KSM over a real SQLite store holding the CI key,
// with cfg's refusal settings.
func newGuarded(t *testing.T, cfg ksmserver.Config) *guarded {
	t.Helper()
	if cfg.Store == nil {
		store, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: testdb.SQLite(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		if err := store.Import(context.Background(), []ksm.Key{ciKey}); err != nil {
			t.Fatal(err)
		}
		cfg.Store = store
	}
	logs := &syncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registry = prometheus.NewRegistry()
	mux, err := ksmserver.NewMux(cfg)
	if err != nil {
		t.Fatalf("NewMux: %v", err)
	}
	srv := httptest.NewServer(mux) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return &guarded{url: srv.URL, logs: logs}
}

// from returns an HTTP client whose connections come from source, a
// loopback address (Linux routes all of 127/8 to lo).
func from(t *testing.T, source string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// fetch GETs url and returns status, body and headers.
func fetch(t *testing.T, c *http.Client, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// metric returns the /metrics line of name, or "".
func metric(t *testing.T, c *http.Client, base, name string) string {
	t.Helper()
	_, body, _ := fetch(t, c, base+"/metrics")
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

func TestAllowList(t *testing.T) {
	g := newGuarded(t, ksmserver.Config{Allow: netallow.MustParse("127.0.0.1", "10.0.0.0/8")})
	allowed, stranger := from(t, "127.0.0.1"), from(t, "127.0.0.2")

	if code, body, _ := fetch(t, allowed, g.url+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
		t.Errorf("GET from 127.0.0.1 = %d %q, want 200 %q", code, body, ciOK)
	}
	for _, path := range []string{"/wsapi/decrypt?otp=" + ciOTP, "/wsapi/decrypt.php?otp=" + ciOTP, "/wsapi/decrypt/", "/wsapi/decrypt"} {
		code, body, h := fetch(t, stranger, g.url+path)
		if code != http.StatusForbidden || body != "ERR Access denied\n" || h.Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("GET %s from 127.0.0.2 = %d %q (%s), want 403 \"ERR Access denied\\n\"", path, code, body, h.Get("Content-Type"))
		}
	}
	// POST is refused the same way.
	resp, err := stranger.Post(g.url+"/wsapi/decrypt", "application/x-www-form-urlencoded", strings.NewReader("otp="+ciOTP))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || string(b) != "ERR Access denied\n" {
		t.Errorf("POST from 127.0.0.2 = %d %q, want 403", resp.StatusCode, b)
	}
	// /healthz and /metrics are not limited.
	if code, body, _ := fetch(t, stranger, g.url+"/healthz"); code != 200 || body != "OK\n" {
		t.Errorf("GET /healthz from 127.0.0.2 = %d %q, want 200", code, body)
	}
	for name, want := range map[string]string{
		`ykksm_refused_total{reason="not_allowed"}`:  "5",
		`ykksm_refused_total{reason="rate_limited"}`: "0",
		`ykksm_refused_total{reason="busy"}`:         "0",
		`ykksm_decrypt_total{result="ok"}`:           "1",
	} {
		if got := metric(t, stranger, g.url, name); got != name+" "+want {
			t.Errorf("/metrics: %q, want %s %s", got, name, want)
		}
	}
	logs := g.logs.String()
	if !strings.Contains(logs, `level=INFO msg="decrypt refused" reason=not_allowed remote=127.0.0.2:`) {
		t.Errorf("log lacks the refusal of 127.0.0.2:\n%s", logs)
	}
	if !strings.Contains(logs, "level=INFO msg=decrypt result=ok public_id=idkfefrdhtru remote=127.0.0.1:") || !strings.Contains(logs, " duration=") {
		t.Errorf("log lacks the audit line of the allowed request with its duration:\n%s", logs)
	}
	if strings.Contains(logs, ciOTP) {
		t.Errorf("log shows the OTP:\n%s", logs)
	}
}

// TestAllowListEmpty: an empty, non-nil list allows nobody.
func TestAllowListEmpty(t *testing.T) {
	g := newGuarded(t, ksmserver.Config{Allow: netallow.MustParse()})
	if code, body, _ := fetch(t, from(t, "127.0.0.1"), g.url+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusForbidden || body != "ERR Access denied\n" {
		t.Errorf("GET with an empty allow-list = %d %q, want 403", code, body)
	}
}

func TestRateLimit(t *testing.T) {
	lim, err := ratelimit.New(ratelimit.Config{Rate: 0.001, Burst: 3}) // one token per 1000 s
	if err != nil {
		t.Fatal(err)
	}
	g := newGuarded(t, ksmserver.Config{RateLimit: lim})
	one, two := from(t, "127.0.0.1"), from(t, "127.0.0.3")
	for i := range 3 {
		if code, body, _ := fetch(t, one, g.url+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
			t.Errorf("request %d of the burst = %d %q, want 200 %q", i+1, code, body, ciOK)
		}
	}
	for range 2 {
		code, body, h := fetch(t, one, g.url+"/wsapi/decrypt?otp="+ciOTP)
		if code != http.StatusTooManyRequests || body != "ERR Rate limited\n" || h.Get("Retry-After") != "1000" {
			t.Errorf("request past the burst = %d %q, Retry-After %q; want 429 \"ERR Rate limited\\n\", 1000", code, body, h.Get("Retry-After"))
		}
	}
	// Another source has a bucket of its own.
	if code, body, _ := fetch(t, two, g.url+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
		t.Errorf("GET from 127.0.0.3 = %d %q, want 200", code, body)
	}
	// /metrics is not limited.
	if got := metric(t, one, g.url, `ykksm_refused_total{reason="rate_limited"}`); got != `ykksm_refused_total{reason="rate_limited"} 2` {
		t.Errorf("/metrics: %q, want 2 rate_limited", got)
	}
	if got := metric(t, one, g.url, `ykksm_decrypt_total{result="ok"}`); got != `ykksm_decrypt_total{result="ok"} 4` {
		t.Errorf("/metrics: %q, want 4 ok", got)
	}
	if !strings.Contains(g.logs.String(), `level=DEBUG msg="decrypt refused" reason=rate_limited remote=127.0.0.1:`) {
		t.Errorf("log lacks the rate-limit refusal at Debug:\n%s", g.logs)
	}
}

// gateStore holds every Lookup until its gate opens, and says when one
// has started.
type gateStore struct {
	ksm.KeyStore
	gate    chan struct{}
	started chan struct{}
}

func (s *gateStore) Lookup(ctx context.Context, publicID string) (ksm.Key, error) {
	s.started <- struct{}{}
	<-s.gate
	return s.KeyStore.Lookup(ctx, publicID)
}

func newGateStore(t *testing.T) *gateStore {
	t.Helper()
	store, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: testdb.SQLite(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Import(context.Background(), []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
	return &gateStore{KeyStore: store, gate: make(chan struct{}), started: make(chan struct{}, 100)}
}

func TestMaxInflight(t *testing.T) {
	store := newGateStore(t)
	g := newGuarded(t, ksmserver.Config{Store: store, MaxInflight: 2, InflightWait: 50 * time.Millisecond})
	c := from(t, "127.0.0.1")

	// Two requests take both slots and wait in the store.
	var wg sync.WaitGroup
	results := make(chan string, 2)
	for range 2 {
		wg.Go(func() {
			_, body, _ := fetch(t, c, g.url+"/wsapi/decrypt?otp="+ciOTP)
			results <- body
		})
	}
	<-store.started
	<-store.started
	// A third finds no slot within InflightWait.
	code, body, h := fetch(t, c, g.url+"/wsapi/decrypt?otp="+ciOTP)
	if code != http.StatusServiceUnavailable || body != "ERR Server busy\n" || h.Get("Retry-After") != "1" {
		t.Errorf("GET beyond MaxInflight = %d %q, Retry-After %q; want 503 \"ERR Server busy\\n\", 1", code, body, h.Get("Retry-After"))
	}
	// /healthz is not capped.
	if code, body, _ := fetch(t, c, g.url+"/healthz"); code != 200 || body != "OK\n" {
		t.Errorf("GET /healthz with the decrypt slots taken = %d %q", code, body)
	}
	close(store.gate)
	wg.Wait()
	close(results)
	for body := range results {
		if body != ciOK {
			t.Errorf("a request holding a slot got %q, want %q", body, ciOK)
		}
	}
	if code, body, _ := fetch(t, c, g.url+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
		t.Errorf("GET after the slots were freed = %d %q, want 200", code, body)
	}
	if got := metric(t, c, g.url, `ykksm_refused_total{reason="busy"}`); got != `ykksm_refused_total{reason="busy"} 1` {
		t.Errorf("/metrics: %q, want 1 busy", got)
	}
}

// TestInflightWait: a request waiting for a slot gets it when one frees.
func TestInflightWait(t *testing.T) {
	store := newGateStore(t)
	g := newGuarded(t, ksmserver.Config{Store: store, MaxInflight: 1, InflightWait: time.Minute})
	c := from(t, "127.0.0.1")
	first := make(chan string, 1)
	go func() { _, body, _ := fetch(t, c, g.url+"/wsapi/decrypt?otp="+ciOTP); first <- body }()
	<-store.started
	second := make(chan string, 1)
	go func() { _, body, _ := fetch(t, c, g.url+"/wsapi/decrypt?otp="+ciOTP); second <- body }()
	select {
	case <-store.started:
		t.Fatal("a second lookup started while the only slot was taken")
	case <-time.After(100 * time.Millisecond):
	}
	close(store.gate)
	if b := <-first; b != ciOK {
		t.Errorf("first request = %q, want %q", b, ciOK)
	}
	if b := <-second; b != ciOK {
		t.Errorf("waiting request = %q, want %q", b, ciOK)
	}
	if got := metric(t, c, g.url, `ykksm_refused_total{reason="busy"}`); got != `ykksm_refused_total{reason="busy"} 0` {
		t.Errorf("/metrics: %q, want 0 busy", got)
	}
}

// TestGuardOrder: an address not on the list is refused before it uses
// up a rate-limit token.
func TestGuardOrder(t *testing.T) {
	lim, err := ratelimit.New(ratelimit.Config{Rate: 0.001, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	g := newGuarded(t, ksmserver.Config{Allow: netallow.MustParse("127.0.0.1"), RateLimit: lim, MaxInflight: 4})
	stranger := from(t, "127.0.0.2")
	for range 3 {
		if code, _, _ := fetch(t, stranger, g.url+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusForbidden {
			t.Errorf("GET from 127.0.0.2 = %d, want 403", code)
		}
	}
	if lim.Len() != 0 {
		t.Errorf("refused sources hold %d rate-limit buckets, want 0", lim.Len())
	}
	if code, body, _ := fetch(t, from(t, "127.0.0.1"), g.url+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
		t.Errorf("GET from 127.0.0.1 = %d %q, want 200", code, body)
	}
}
