package ksmclient_test

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/internal/tlsutil/tlstest"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// logBuffer passes log lines on, dropping them when nobody reads.
type logBuffer struct {
	ch chan string
}

func (l logBuffer) Write(p []byte) (int, error) {
	select {
	case l.ch <- string(p):
	default:
	}
	return len(p), nil
}

// guardedKSM starts a real KSM holding the CI key with cfg's refusal
// settings, over TLS when tc is not nil, and returns its decrypt URL.
func guardedKSM(t *testing.T, cfg ksmserver.Config, tc *tls.Config) string {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.Import(ctx, []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
	cfg.Store = store
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	mux, err := ksmserver.NewMux(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ErrorLog: tlsutil.ErrorLog(slog.New(slog.DiscardHandler), nil)}
	scheme := "http"
	if tc != nil {
		scheme = "https"
		srv.TLSConfig = tc
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	t.Cleanup(func() { srv.Close() })
	return scheme + "://" + ln.Addr().String() + "/wsapi/decrypt"
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	stranger := tlstest.NewCA(t, "stranger CA")
	serverCert, serverKey := ca.Server(t).Write(t, dir, "server")
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	strangerFile := stranger.WriteCert(t, filepath.Join(dir, "stranger.crt"))
	goodCert, goodKey := ca.Client(t, "val1").Write(t, dir, "val1")
	badCert, badKey := stranger.Client(t, "val1").Write(t, dir, "mallory")

	tc, _, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: serverCert, KeyFile: serverKey, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	logs := logBuffer{make(chan string, 100)}
	url := guardedKSM(t, ksmserver.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))}, tc)

	c, err := ksmclient.New(ksmclient.Config{URLs: []string{url}, CAFile: caFile, CertFile: goodCert, KeyFile: goodKey})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Decrypt(context.Background(), ciOTP); err != nil || res != ciResult {
		t.Fatalf("Decrypt over mutual TLS = %+v, %v; want %+v", res, err, ciResult)
	}
	if l := <-logs.ch; !strings.Contains(l, "msg=decrypt result=ok") || !strings.Contains(l, "client=val1") {
		t.Errorf("audit line %q lacks the result or the client's name", l)
	}
	// A reloaded client certificate is used on new connections.
	ca.Client(t, "val2").Write(t, dir, "val1")
	if err := c.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	if _, err := c.Decrypt(context.Background(), ciOTP); err != nil {
		t.Fatalf("Decrypt after ReloadTLS = %v", err)
	}
	if l := <-logs.ch; !strings.Contains(l, "client=val2") {
		t.Errorf("audit line after ReloadTLS %q does not name val2", l)
	}

	for _, tt := range []struct {
		name string
		cfg  ksmclient.Config
	}{
		{"no client certificate", ksmclient.Config{CAFile: caFile}},
		{"client certificate of a stranger CA", ksmclient.Config{CAFile: caFile, CertFile: badCert, KeyFile: badKey}},
		{"server CA not trusted", ksmclient.Config{CAFile: strangerFile, CertFile: goodCert, KeyFile: goodKey}},
		{"system roots", ksmclient.Config{CertFile: goodCert, KeyFile: goodKey}},
	} {
		tt.cfg.URLs = []string{url}
		c, err := ksmclient.New(tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Decrypt(context.Background(), ciOTP)
		if !errors.Is(err, ksmclient.ErrUnavailable) || ksmclient.Verdict(err) {
			t.Errorf("%s: Decrypt = %v, want ErrUnavailable and no verdict", tt.name, err)
		}
	}
	// The client without TLS settings has no certificate to reload.
	if err := newClient(t, 0, url).ReloadTLS(); err != nil {
		t.Errorf("ReloadTLS without a client certificate = %v", err)
	}
}

// TestRefused: a KSM's refusals are not verdicts: the client reports the
// KSM unavailable, so a VAL answers BACKEND_ERROR, never BAD_OTP.
func TestRefused(t *testing.T) {
	denied := guardedKSM(t, ksmserver.Config{Allow: netallow.MustParse("192.0.2.1")}, nil)
	lim, err := ratelimit.New(ratelimit.Config{Rate: 0.001, Burst: 1})
	if err != nil {
		t.Fatal(err)
	}
	limited := guardedKSM(t, ksmserver.Config{RateLimit: lim}, nil)
	if _, err := newClient(t, 0, limited).Decrypt(context.Background(), ciOTP); err != nil {
		t.Fatalf("first Decrypt under the rate limit = %v", err)
	}
	unknown, _ := ksmServer(t)
	good, _ := ksmServer(t, ciKey)

	for _, tt := range []struct {
		name string
		urls []string
		want string // in the error
	}{
		{"access denied", []string{denied}, `HTTP status 403 Forbidden: "ERR Access denied"`},
		{"rate limited", []string{limited}, `HTTP status 429 Too Many Requests: "ERR Rate limited"`},
		{"denied and unknown", []string{denied, unknown}, "ERR Access denied"},
	} {
		_, err := newClient(t, 0, tt.urls...).Decrypt(context.Background(), ciOTP)
		if !errors.Is(err, ksmclient.ErrUnavailable) || errors.Is(err, ksm.ErrUnknownKey) || err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Decrypt = %v, want ErrUnavailable without a verdict, naming %s", tt.name, err, tt.want)
		}
	}
	// Another KSM's OK still wins.
	if res, err := newClient(t, 0, denied, good).Decrypt(context.Background(), ciOTP); err != nil || res != ciResult {
		t.Errorf("Decrypt from a refusing and a good KSM = %+v, %v; want %+v", res, err, ciResult)
	}
}

func TestTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	cert, _ := ca.Client(t, "val1").Write(t, dir, "val1")
	for _, tt := range []struct {
		name string
		cfg  ksmclient.Config
		want []string
	}{
		{"certificate without key", ksmclient.Config{CertFile: cert}, []string{"both a certificate file and a key file"}},
		{"missing CA file", ksmclient.Config{CAFile: filepath.Join(dir, "none.pem")}, []string{"CA file"}},
		{"files with a caller's HTTPClient", ksmclient.Config{CAFile: cert, HTTPClient: http.DefaultClient}, []string{"default HTTPClient"}},
	} {
		tt.cfg.URLs = []string{"https://127.0.0.1:1/wsapi/decrypt"}
		c, err := ksmclient.New(tt.cfg)
		if c != nil || !errors.Is(err, ksmclient.ErrConfig) {
			t.Errorf("%s: New = %v, %v; want ErrConfig", tt.name, c, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: New error %q does not mention %q", tt.name, err, w)
			}
		}
	}
}

// TestHTTP1OverTLS: the default client speaks HTTP/1.1 to an https KSM
// even when the server offers HTTP/2.
func TestHTTP1OverTLS(t *testing.T) {
	protos := make(chan string, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case protos <- r.Proto:
		default:
		}
		io.WriteString(w, "OK counter=0001 low=8d40 high=0f use=00\n")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := ksmclient.New(ksmclient.Config{URLs: []string{srv.URL + "/wsapi/decrypt"}, CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.Decrypt(context.Background(), ciOTP); err != nil || res != ciResult {
		t.Fatalf("Decrypt = %+v, %v", res, err)
	}
	if p := <-protos; p != "HTTP/1.1" {
		t.Errorf("the client spoke %s to a server offering HTTP/2, want HTTP/1.1", p)
	}
}

// TestMaxConnsPerHost: the calls in flight to a KSM stay under the cap.
func TestMaxConnsPerHost(t *testing.T) {
	var mu sync.Mutex
	inflight, peak := 0, 0
	url := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		peak = max(peak, inflight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // let the callers pile up
		mu.Lock()
		inflight--
		mu.Unlock()
		io.WriteString(w, "OK counter=0001 low=8d40 high=0f use=00\n")
	})
	c, err := ksmclient.New(ksmclient.Config{URLs: []string{url}, MaxConnsPerHost: 2})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if res, err := c.Decrypt(context.Background(), ciOTP); err != nil || res != ciResult {
				t.Errorf("Decrypt = %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
	if peak > 2 || peak == 0 {
		t.Errorf("%d calls in flight at once, want 1 or 2 (MaxConnsPerHost 2)", peak)
	}
	if _, err := ksmclient.New(ksmclient.Config{URLs: []string{url}, MaxConnsPerHost: -1}); !errors.Is(err, ksmclient.ErrConfig) {
		t.Errorf("New(MaxConnsPerHost -1) = %v, want ErrConfig", err)
	}
}
