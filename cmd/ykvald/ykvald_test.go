package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
)

var ciKey = ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
	AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}

const (
	ciSecret = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
	line1    = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku" // counter 1 use 0
	line2    = "idkfefrdhtrubfjfdhrjhtkehrntiubuvnkgeieirkfb" // counter 1 use 1
	nonce    = "kakakakakakakakakakakaka"
)

// lockedBuffer collects a server's log while it runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func getenv(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// ksmDB returns the DSN of a fresh KSM database on b holding the CI key.
func ksmDB(t *testing.T, b testdb.Backend) string {
	t.Helper()
	dsn := b.DSN(t)
	st, err := ksmsqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(context.Background(), []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// ksmServer runs a real KSM (ksmserver over a SQLite key database holding
// the CI key) and returns its decrypt URL.
func ksmServer(t *testing.T) string {
	t.Helper()
	st, err := ksmsqlstore.Open(context.Background(), sqldb.Config{DSN: ksmDB(t, testdb.Backends()[0])})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/wsapi/decrypt"
}

// valDB returns the DSN of a fresh validation database on b holding the CI client.
func valDB(t *testing.T, b testdb.Backend) string {
	t.Helper()
	dsn := b.DSN(t)
	st, err := valsqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ImportClients(context.Background(), []val.Client{{ID: 1, Active: true, Created: 1383728711, Secret: ciSecret}}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// started is a ykvald running in the test.
type started struct {
	url    string
	stop   func() error // cancels the context and returns serve's error
	stderr logBuffer
}

// logBuffer collects a server's log.
type logBuffer interface {
	io.Writer
	String() string
}

// start runs serve with args and environment until the test stops it.
func start(t *testing.T, args []string, vars map[string]string) *started {
	t.Helper()
	return startLogging(t, args, vars, &lockedBuffer{})
}

// startLogging is start with the server's log going to stderr.
func startLogging(t *testing.T, args []string, vars map[string]string, stderr logBuffer) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	env := cli.Env{Args: args, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: stderr, Getenv: getenv(vars)}
	addrs := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, env, func(a string) { addrs <- a }) }()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { stop() })
	select {
	case a := <-addrs:
		return &started{url: "http://" + a, stop: stop, stderr: stderr}
	case err := <-done:
		done <- err // for stop, called at cleanup
		t.Fatalf("serve(%q) = %v before listening; log:\n%s", args, err, stderr)
	case <-time.After(30 * time.Second):
		t.Fatalf("serve(%q) did not start; log:\n%s", args, stderr)
	}
	return nil
}

func (s *started) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(s.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (s *started) verify(t *testing.T, otp, nonce string) val.Reply {
	t.Helper()
	code, body := s.get(t, "/wsapi/2.0/verify?id=1&otp="+otp+"&nonce="+nonce)
	r, err := val.ParseResponse([]byte(body))
	if code != 200 || err != nil {
		t.Fatalf("verify: HTTP %d %q: %v", code, body, err)
	}
	if !r.Verify(val.DecodeKey(ciSecret)) {
		t.Errorf("verify: %q not signed with the client key", body)
	}
	return r
}

// TestRun starts ykvald on each backend with each kind of KSM, verifies,
// checks /healthz and /metrics, and stops it by cancelling its context.
func TestRun(t *testing.T) {
	for _, b := range testdb.Backends() {
		for _, mode := range []string{"url", "db"} {
			t.Run(b.Name+"/"+mode, func(t *testing.T) {
				args := []string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--revoke-ip", "127.0.0.1"}
				if mode == "url" {
					args = append(args, "--ksm-url", ksmServer(t))
				} else {
					args = append(args, "--ksm-db", ksmDB(t, b))
				}
				s := start(t, args, nil)
				if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK || r.Get("sl") != "0" {
					t.Errorf("verify line1: %s sl=%s, want OK sl=0", r.Status(), r.Get("sl"))
				}
				if r := s.verify(t, line1, "bakabakabakabaka"); r.Status() != val.StatusReplayedOTP {
					t.Errorf("verify line1 again: %s, want REPLAYED_OTP", r.Status())
				}
				if code, body := s.get(t, "/healthz"); code != 200 || body != "OK\n" {
					t.Errorf("/healthz = %d %q", code, body)
				}
				if _, body := s.get(t, "/wsapi/revoke?yk=idkfefrdhtru&do=disable"); body != "OK Processed idkfefrdhtru with disable\n" {
					t.Errorf("revoke = %q", body)
				}
				if r := s.verify(t, line2, nonce); r.Status() != val.StatusBadOTP {
					t.Errorf("verify with the key disabled: %s, want BAD_OTP", r.Status())
				}
				_, metrics := s.get(t, "/metrics")
				for _, want := range []string{`ykval_verify_total{client="1",status="OK"} 1`, "go_goroutines", "process_"} {
					if !strings.Contains(metrics, want) {
						t.Errorf("/metrics has no %q", want)
					}
				}
				if err := s.stop(); err != nil {
					t.Errorf("serve after cancel = %v, want nil", err)
				}
				logs := s.stderr.String()
				for _, want := range []string{"ykvald listening", "ykvald stopped"} {
					if !strings.Contains(logs, want) {
						t.Errorf("log has no %q:\n%s", want, logs)
					}
				}
				if strings.Contains(logs, line1) || strings.Contains(logs, ciSecret) {
					t.Errorf("log shows an OTP or the secret:\n%s", logs)
				}
			})
		}
	}
}

// TestEnvironment configures ykvald through YKVAL_* variables only.
func TestEnvironment(t *testing.T) {
	b := testdb.Backends()[0]
	s := start(t, nil, map[string]string{
		"YKVAL_LISTEN":     "127.0.0.1:0",
		"YKVAL_DB":         valDB(t, b),
		"YKVAL_KSM_URL":    "http://127.0.0.1:1/wsapi/decrypt, " + ksmServer(t),
		"YKVAL_REVOKE_IPS": "192.0.2.1 127.0.0.1",
	})
	if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
		t.Errorf("verify: %s, want OK (one of two KSMs answers)", r.Status())
	}
	if _, body := s.get(t, "/wsapi/revoke?yk=idkfefrdhtru&do=enable"); body != "OK Processed idkfefrdhtru with enable\n" {
		t.Errorf("revoke = %q", body)
	}
}

// TestRoutes sends OTPs to KSMs by public-ID prefix.
func TestRoutes(t *testing.T) {
	b := testdb.Backends()[0]
	good := ksmServer(t)
	down := "http://127.0.0.1:1/wsapi/decrypt"
	tests := []struct {
		name   string
		args   []string
		status val.Status
	}{
		{"route only", []string{"--ksm-route", "idkf=" + good}, val.StatusOK},
		{"no route matches", []string{"--ksm-route", "cccc=" + good}, val.StatusBadOTP},
		{"longest prefix wins", []string{"--ksm-url", down, "--ksm-route", "idkfef=" + down + "," + good, "--ksm-route", "idk=" + down}, val.StatusOK},
		{"longest prefix is down", []string{"--ksm-url", good, "--ksm-route", "idkfef=" + down}, val.StatusBackendError},
		{"embedded default, routed elsewhere", []string{"--ksm-db", ksmDB(t, b), "--ksm-route", "vv=" + down}, val.StatusOK},
		{"empty prefix replaces the default", []string{"--ksm-route", "=" + good}, val.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, append([]string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-timeout", "5s"}, tt.args...), nil)
			if r := s.verify(t, line1, nonce); r.Status() != tt.status {
				t.Errorf("verify: %s, want %s", r.Status(), tt.status)
			}
		})
	}
}

// TestUsage checks that every configuration problem is reported at once,
// as a usage error, before anything is opened.
func TestUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want []string
	}{
		{"no KSM", []string{"--db", "sqlite:/nonexistent/x.db"}, nil, []string{"no KSM"}},
		{"everything wrong", []string{
			"--listen", "nowhere", "--db", "dbi:Pg:dbname=x", "--max-conns", "-1",
			"--ksm-url", "ftp://ksm/decrypt", "--ksm-db", "sqlite:/x.db",
			"--ksm-route", "XX=http://a/", "--ksm-route", "cc", "--ksm-route", "bb=gopher://b", "--ksm-route", "bb=http://c/",
			"--revoke-ip", "localhost", "--read-timeout", "0", "--ksm-timeout", "-1s", "extra",
		}, nil, []string{
			`--listen "nowhere"`, `unsupported DBI driver "Pg"`, "--max-conns -1", "give one of them, not both", `--ksm-url: `, `"ftp://ksm/decrypt"`,
			`--ksm-route "XX=http://a/": prefix`, `--ksm-route "cc": want PREFIX=URL`, `"gopher://b"`, `--ksm-route "bb=http://c/": a route for prefix "bb"`,
			`--revoke-ip: netallow: "localhost"`, "--read-timeout 0s", "--ksm-timeout -1s", `unexpected argument "extra"`,
		}},
		{"bad environment", nil, map[string]string{"YKVAL_LISTEN": "x", "YKVAL_KSM_URL": "nope", "YKVAL_REVOKE_IPS": "1.2.3.4,foo"}, []string{
			`--listen "x"`, `"nope"`, `--revoke-ip: netallow: "foo"`,
		}},
		{"embedded DSN", []string{"--ksm-db", "sqlite:"}, nil, []string{"--ksm-db: sqldb: invalid DSN"}},
		{"unknown flag", []string{"--ksm-urls", "x"}, nil, []string{"unknown flag: --ksm-urls"}},
	}
	for _, tt := range tests {
		env := cli.Env{Args: tt.args, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(tt.vars)}
		err := run(context.Background(), env)
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("%s: run = %v, want a usage error", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: run = %v\nwant it to mention %s", tt.name, err, w)
			}
		}
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), cli.Env{Args: []string{"--help"}, Stdout: &out, Stderr: io.Discard})
	if !errors.Is(err, pflag.ErrHelp) || cli.Report("ykvald", io.Discard, err) != cli.ExitOK {
		t.Errorf("run(--help) = %v, want pflag.ErrHelp (exit 0)", err)
	}
	for _, want := range []string{"Usage: ykvald", "--ksm-url", "--ksm-db", "--ksm-route", "--revoke-ip", "127.0.0.1:8080", "sqlite:/var/lib/ykstack/ykval.db"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help output has no %q:\n%s", want, out.String())
		}
	}
}

// TestStartupFailures checks runtime errors (exit 1): a database that
// cannot be opened, a KSM database that cannot be opened, a busy address.
func TestStartupFailures(t *testing.T) {
	dir := t.TempDir()
	good := valDB(t, testdb.Backends()[0])
	busy := start(t, []string{"--listen", "127.0.0.1:0", "--db", good, "--ksm-url", "http://127.0.0.1:1/"}, nil)
	tests := []struct {
		name string
		args []string
	}{
		{"database", []string{"--db", "sqlite:" + filepath.Join(dir, "missing", "dir", "x.db"), "--ksm-url", "http://127.0.0.1:1/"}},
		{"KSM database", []string{"--db", good, "--ksm-db", "sqlite:" + filepath.Join(dir, "missing", "dir", "k.db")}},
		{"address in use", []string{"--db", good, "--ksm-url", "http://127.0.0.1:1/", "--listen", strings.TrimPrefix(busy.url, "http://")}},
	}
	for _, tt := range tests {
		env := cli.Env{Args: tt.args, Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)}
		err := run(context.Background(), env)
		if err == nil || cli.Report("ykvald", io.Discard, err) != cli.ExitFailure {
			t.Errorf("%s: run = %v, want a runtime error (exit 1)", tt.name, err)
		}
	}
}
