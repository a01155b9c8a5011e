package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
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
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

var ciKey = ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
	AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}

const (
	ciOTP = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"
	ciOK  = "OK counter=0001 low=8d40 high=0f use=00\n"
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

// started is a ykksmd running in the test.
type started struct {
	addr   string
	stop   func() error // cancels the context and returns serve's error
	stderr logBuffer
}

// start runs serve with args and environment until the test stops it.
func start(t testing.TB, args []string, vars map[string]string) *started {
	t.Helper()
	return startLogging(t, args, vars, &lockedBuffer{})
}

// logBuffer collects a server's log.
type logBuffer interface {
	io.Writer
	String() string
}

// startLogging is start with the server's log going to stderr.
func startLogging(t testing.TB, args []string, vars map[string]string, stderr logBuffer) *started {
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
		return &started{addr: a, stop: stop, stderr: stderr}
	case err := <-done:
		t.Fatalf("serve(%q) = %v before listening; log:\n%s", args, err, stderr)
	case <-time.After(time.Minute):
		t.Fatalf("serve(%q) did not listen within a minute", args)
	}
	return nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// seed creates the database behind dsn holding the CI key.
func seed(t testing.TB, dsn string) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(ctx, []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
}

func TestServe(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			seed(t, dsn)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--max-conns", "4"}, nil)
			base := "http://" + s.addr

			if code, body := get(t, base+"/healthz"); code != http.StatusOK || body != "OK\n" {
				t.Errorf("GET /healthz = %d %q, want 200 \"OK\\n\"", code, body)
			}
			for _, tt := range []struct{ path, want string }{
				{"/wsapi/decrypt?otp=" + ciOTP, ciOK},
				{"/wsapi/decrypt.php?otp=" + ciOTP, ciOK},
				{"/wsapi/decrypt?otp=cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv", "ERR Unknown yubikey\n"},
				{"/wsapi/decrypt", "ERR No OTP provided\n"},
			} {
				if code, body := get(t, base+tt.path); code != http.StatusOK || body != tt.want {
					t.Errorf("GET %s = %d %q, want 200 %q", tt.path, code, body, tt.want)
				}
			}
			code, body := get(t, base+"/metrics")
			for _, want := range []string{`ykksm_decrypt_total{result="ok"} 2`, "go_goroutines ", "process_start_time_seconds "} {
				if code != http.StatusOK || !strings.Contains(body, want) {
					t.Errorf("GET /metrics = %d, lacks %q", code, want)
				}
			}

			if err := s.stop(); err != nil {
				t.Errorf("serve after cancel = %v, want nil", err)
			}
			if _, err := http.Get(base + "/healthz"); err == nil {
				t.Error("the server still answers after it stopped")
			}
			logs := s.stderr.String()
			for _, want := range []string{"msg=\"ykksmd listening\" addr=" + s.addr, "msg=decrypt result=ok public_id=idkfefrdhtru", "msg=\"ykksmd stopped\""} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, ciOTP) || strings.Contains(logs, ciKey.AESKey) {
				t.Errorf("log contains the OTP or the AES key:\n%s", logs)
			}
		})
	}
}

// TestEnvironment: the listen address and database come from YKKSM_LISTEN
// and YKKSM_DB, and a new SQLite file gets the schema.
func TestEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "new.db")
	s := start(t, []string{"-v"}, map[string]string{"YKKSM_LISTEN": "127.0.0.1:0", "YKKSM_DB": "sqlite:" + path})
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusOK || body != "ERR Unknown yubikey\n" {
		t.Errorf("GET on a new database = %d %q, want 200 \"ERR Unknown yubikey\\n\"", code, body)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("database file: %v", err)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
	if logs := s.stderr.String(); !strings.Contains(logs, "db="+path) {
		t.Errorf("log does not name the database %s:\n%s", path, logs)
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{"extra"},
		{"--no-such-flag"},
		{"--listen", "nocolon"},
		{"--read-timeout", "0s", "--max-conns", "-1"},
		{"--idle-timeout", "soon"},
		{"--db", "dbi:Pg:dbname=x"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: &stderr, Getenv: getenv(nil)})
		if !errors.Is(err, cli.ErrUsage) || cli.Report("ykksmd", &stderr, err) != cli.ExitUsage {
			t.Errorf("run(%q) = %v, want a usage error (exit 2)", args, err)
		}
	}
	// Every problem is reported at once.
	err := run(context.Background(), cli.Env{Args: []string{"--read-timeout", "0s", "--max-conns", "-1"}, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
	if err == nil || !strings.Contains(err.Error(), "--read-timeout") || !strings.Contains(err.Error(), "--max-conns") {
		t.Errorf("run with two bad flags = %v, want both named", err)
	}

	var stdout bytes.Buffer
	err = run(context.Background(), cli.Env{Args: []string{"--help"}, Stdout: &stdout, Stderr: io.Discard, Getenv: getenv(nil)})
	if !errors.Is(err, pflag.ErrHelp) || !strings.Contains(stdout.String(), "--listen") || cli.Report("ykksmd", io.Discard, err) != cli.ExitOK {
		t.Errorf("run(--help) = %v, output %q; want the usage and exit 0", err, stdout.String())
	}
}

// TestFailures: a database that cannot be opened or an address that cannot
// be bound is a runtime failure (exit 1), and the password is not shown.
func TestFailures(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, tt := range []struct {
		name string
		args []string
	}{
		{"missing directory", []string{"--listen", "127.0.0.1:0", "--db", "sqlite:" + filepath.Join(t.TempDir(), "no", "such", "dir", "k.db")}},
		{"no MySQL server", []string{"--listen", "127.0.0.1:0", "--db", "mysql:ykksmreader@tcp(127.0.0.1:1)/ykksm", "--db-passwd-file", pwFile}},
		{"address in use", []string{"--listen", busy.Addr().String(), "--db", testdb.SQLite(t)}},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), cli.Env{Args: tt.args, Stdout: io.Discard, Stderr: &stderr, Getenv: getenv(nil)})
		code := cli.Report("ykksmd", &stderr, err)
		if err == nil || code != cli.ExitFailure {
			t.Errorf("%s: run = %v (exit %d), want a runtime failure (exit 1)", tt.name, err, code)
		}
		if strings.Contains(stderr.String(), "s3cret-pw") {
			t.Errorf("%s: stderr shows the password: %s", tt.name, stderr.String())
		}
	}
}
