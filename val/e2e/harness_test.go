package e2e_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/cmd/ykvald/ksmadapter"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
)

// The CI key and client of YK-KSM's and YK-VAL's self-tests (spec 3.1, 3.2, 5.1).
var ciKey = ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
	AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}

const (
	ciPublicID = "idkfefrdhtru"
	ciSecret   = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
	nonceKaka  = "kakakakakakakakakakakaka"
	nonceBaka  = "bakabakabakabaka"

	// OTPs of the CI key (spec 5.2).
	line1 = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku" // counter=0001 low=8d40 high=0f use=00
	line2 = "idkfefrdhtrubfjfdhrjhtkehrntiubuvnkgeieirkfb" // counter=0001 low=8d48 high=0f use=01
	line3 = "idkfefrdhtrurlfvluuihdhitjnriedgtfufejrlgbhu" // counter=0001 low=8d50 high=0f use=02
	line4 = "idkfefrdhtruvbfrdfdtrfencnvvhhernhujccbnveej" // counter=0002 low=1234 high=00 use=00
)

// ciClient is the client line 1,1,1383728711,EHmo8FMxuhumBlTinC4uYL0Mgwg=,,,
var ciClient = val.Client{ID: 1, Active: true, Created: 1383728711, Secret: ciSecret}

var clientKey = val.DecodeKey(ciSecret)

// fixedTime is the response time of every test server: the t of spec 5.2's
// response signature vectors.
var fixedTime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

// A ksmMode is a way the validation server reaches its KSM.
type ksmMode struct {
	name string
	// connect returns the val.KSM over the KSM database st; for the HTTP
	// mode it also returns the KSM's server, to stop it.
	connect func(t testing.TB, st *ksmsqlstore.Store, logger *slog.Logger) (val.KSM, *httptest.Server)
}

var embedded = ksmMode{"embedded", func(t testing.TB, st *ksmsqlstore.Store, logger *slog.Logger) (val.KSM, *httptest.Server) {
	return ksmadapter.New(ksmserver.NewDecrypter(st, logger)), nil
}}

// overHTTP runs ksmserver's HTTP API on a loopback server and asks it with
// ksmclient, as ykvald --ksm-url does.
var overHTTP = ksmMode{"http", func(t testing.TB, st *ksmsqlstore.Store, logger *slog.Logger) (val.KSM, *httptest.Server) {
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c, err := ksmclient.New(ksmclient.Config{URLs: []string{srv.URL + "/wsapi/decrypt"}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return ksmadapter.New(c), srv
}}

// ksmModes are the KSM modes every end-to-end test runs in.
var ksmModes = []ksmMode{overHTTP, embedded}

// setup is one combination of store backend and KSM mode.
type setup struct {
	name    string
	backend testdb.Backend
	mode    ksmMode
}

// setups returns every backend × KSM mode.
func setups() []setup {
	var out []setup
	for _, b := range testdb.Backends() {
		for _, m := range ksmModes {
			out = append(out, setup{b.Name + "/" + m.name, b, m})
		}
	}
	return out
}

// stack is a running validation server with its KSM.
type stack struct {
	url      string
	store    *valsqlstore.Store
	ksmStore *ksmsqlstore.Store
	ksmSrv   *httptest.Server // nil in embedded mode
	ksm      val.KSM
	srv      *httptest.Server
	reg      *prometheus.Registry
	logs     *syncBuffer
	dsn      string // the validation store's DSN
}

// option adjusts the server's configuration before it starts.
type option func(*valserver.Config)

// quiet discards the validation server's logs, for tests sending thousands
// of requests.
func quiet(c *valserver.Config) { c.Logger = nil }

// newStack starts a validation server for su: a fresh store holding the CI
// client, a fresh KSM database holding the CI key.
func newStack(t testing.TB, su setup, opts ...option) *stack {
	t.Helper()
	ctx := context.Background()
	s := &stack{reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(s.logs, testWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))

	var err error
	s.ksmStore, err = ksmsqlstore.Open(ctx, sqldb.Config{DSN: su.backend.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.ksmStore.Close() })
	if err := s.ksmStore.Import(ctx, []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
	ksmClient, ksmSrv := su.mode.connect(t, s.ksmStore, logger.With("server", "ksm"))
	s.ksmSrv, s.ksm = ksmSrv, ksmClient

	s.dsn = su.backend.DSN(t)
	s.store, err = valsqlstore.Open(ctx, sqldb.Config{DSN: s.dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	if _, err := s.store.ImportClients(ctx, []val.Client{ciClient}); err != nil {
		t.Fatal(err)
	}

	cfg := valserver.Config{
		Store:    s.store,
		KSM:      ksmClient,
		Logger:   logger.With("server", "val"),
		Registry: s.reg,
		Now:      func() time.Time { return fixedTime },
	}
	for _, o := range opts {
		o(&cfg)
	}
	mux, err := valserver.NewMux(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	s.url = s.srv.URL
	return s
}

// get sends GET base+pathAndQuery and returns the body and parsed reply; it
// fails the test unless the answer is HTTP 200, text/plain and well-formed.
func (s *stack) get(t testing.TB, pathAndQuery string) (string, val.Reply) {
	t.Helper()
	resp, err := http.Get(s.url + pathAndQuery)
	if err != nil {
		t.Fatal(err)
	}
	return readReply(t, resp)
}

// post sends the form as a POST body to path.
func (s *stack) post(t testing.TB, path, contentType, body string) (string, val.Reply) {
	t.Helper()
	resp, err := http.Post(s.url+path, contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return readReply(t, resp)
}

func readReply(t testing.TB, resp *http.Response) (string, val.Reply) {
	t.Helper()
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("answer: HTTP %d, Content-Type %q, want 200 and text/plain; charset=utf-8; body %q",
			resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return string(body), r
}

// ciToken returns the CI key's token at (counter, use).
func ciToken(counter uint16, use uint8) otp.Token {
	uid, _ := otp.ParseUID(ciKey.InternalName)
	return otp.Token{UID: uid, Counter: counter, Use: use, TimestampLow: 0x1000 + uint16(use)*8, TimestampHigh: 1, Random: 0x4754}
}

// mint returns an OTP of the CI key at (counter, use).
func mint(counter uint16, use uint8) string {
	key, _ := otp.ParseKey(ciKey.AESKey)
	return otp.Generate(ciPublicID, key, ciToken(counter, use))
}

// otpSource hands out fresh OTPs of the CI key, each after the previous.
type otpSource struct{ n atomic.Int64 }

// next returns an OTP later than every one before, starting at counter 3
// (after the spec's vectors).
func (o *otpSource) next() string {
	n := o.n.Add(1) - 1
	return mint(uint16(3+n/256), uint8(n%256))
}

// syncBuffer is a log destination the servers may write to concurrently.
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

// testWriter sends log lines to the test's output.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// crlfBody builds an expected response body: h, t and the fields, then
// status, each line ended by CRLF, then an empty line.
func crlfBody(h string, fields ...string) string {
	var b strings.Builder
	b.WriteString("h=" + h + "\r\n")
	b.WriteString("t=" + val.FormatTime(fixedTime) + "\r\n")
	for _, f := range fields {
		b.WriteString(f + "\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// signed returns the signature of a response body's fields under key.
func sign(key []byte, fields ...string) string {
	fs := []val.Field{{Key: "t", Value: val.FormatTime(fixedTime)}}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		fs = append(fs, val.Field{Key: k, Value: v})
	}
	return val.Sign(key, fs)
}
