package valserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
)

// The CI key and client of YK-KSM's and YK-VAL's self-tests.
const (
	ciPublicID = "idkfefrdhtru"
	ciUID      = "609963eae7b5"
	ciAESKey   = "c68c9df8cbfe7d2f994cb904046c7218"
	ciSecret   = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
	ciOTP      = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku" // counter=0001 low=8d40 high=0f use=00
	nonce1     = "kakakakakakakakakakakaka"
)

// otpKSM decrypts OTPs in-process with the otp package, like an embedded
// KSM; it keeps this package's tests free of the ksm packages (val and ksm
// never import each other). val/e2e runs the real KSM server.
type otpKSM map[string]struct {
	key otp.Key
	uid otp.UID
}

func (k otpKSM) Decrypt(_ context.Context, s string) (val.Decrypted, error) {
	pub, token, err := otp.Split(s)
	if err != nil {
		return val.Decrypted{}, fmt.Errorf("%w: format", val.ErrKSMRejected)
	}
	e, ok := k[pub]
	if !ok {
		return val.Decrypted{}, fmt.Errorf("%w: unknown key", val.ErrKSMRejected)
	}
	t, err := otp.Decrypt(e.key, e.uid, token)
	if err != nil {
		return val.Decrypted{}, fmt.Errorf("%w: %v", val.ErrKSMRejected, err)
	}
	return val.Decrypted{Counter: t.Counter, Low: t.TimestampLow, High: t.TimestampHigh, Use: t.Use}, nil
}

func ciKSM(t testing.TB) otpKSM {
	key, err := otp.ParseKey(ciAESKey)
	if err != nil {
		t.Fatal(err)
	}
	uid, err := otp.ParseUID(ciUID)
	if err != nil {
		t.Fatal(err)
	}
	return otpKSM{ciPublicID: {key, uid}}
}

// mint returns an OTP of the CI key at (counter, use).
func mint(t testing.TB, counter uint16, use uint8) string {
	key, _ := otp.ParseKey(ciAESKey)
	uid, _ := otp.ParseUID(ciUID)
	return otp.Generate(ciPublicID, key, otp.Token{UID: uid, Counter: counter, Use: use, TimestampLow: 0x8d40 + uint16(use)*8, TimestampHigh: 0x0f, Random: 0x4754})
}

// ksmFunc adapts a function to val.KSM, for KSM failures the real KSM
// cannot produce on demand (a panic, an error of no known kind).
type ksmFunc func(ctx context.Context, otp string) (val.Decrypted, error)

func (f ksmFunc) Decrypt(ctx context.Context, otp string) (val.Decrypted, error) { return f(ctx, otp) }

// syncBuffer is a log destination the handlers may write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// env is a running validation server.
type env struct {
	url   string
	store *sqlstore.Store
	reg   *prometheus.Registry
	logs  *syncBuffer
	now   time.Time
}

// openStore opens a fresh store on b with the CI client (id 1).
func openStore(t *testing.T, b testdb.Backend) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: b.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.ImportClients(context.Background(), []val.Client{{ID: 1, Active: true, Created: 1383728711, Secret: ciSecret}}); err != nil {
		t.Fatal(err)
	}
	return st
}

// start runs a server over a fresh store on b. cfg's Store, Registry,
// Logger and Now are filled in unless set; KSM defaults to the CI key.
func start(t *testing.T, b testdb.Backend, cfg valserver.Config) *env {
	t.Helper()
	e := &env{reg: prometheus.NewRegistry(), logs: &syncBuffer{}, now: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}
	if cfg.Store == nil {
		e.store = openStore(t, b)
		cfg.Store = e.store
	}
	if cfg.KSM == nil {
		cfg.KSM = ciKSM(t)
	}
	if cfg.Registry == nil {
		cfg.Registry = e.reg
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return e.now }
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(e.logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	mux, err := valserver.NewMux(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// testWriter sends log lines to the test's output.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// verify sends a GET to path with the query and parses the answer; it
// fails the test unless the answer is HTTP 200, text/plain and well-formed.
func (e *env) verify(t *testing.T, path, query string) (string, val.Reply) {
	t.Helper()
	resp, err := http.Get(e.url + path + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	return readReply(t, resp)
}

func readReply(t *testing.T, resp *http.Response) (string, val.Reply) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("answer: HTTP %d, Content-Type %q, want 200 text/plain; charset=utf-8", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return string(body), r
}

// query builds a query string from key, value pairs, in order.
func query(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(kv[i]) + "=" + url.QueryEscape(kv[i+1]))
	}
	return b.String()
}

var clientKey = val.DecodeKey(ciSecret)
