package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// lockedBuffer collects a log written concurrently.
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

// noKSM refuses every OTP: the peer here only answers sync requests.
type noKSM struct{}

func (noKSM) Decrypt(context.Context, string) (val.Decrypted, error) {
	return val.Decrypted{}, val.ErrKSMRejected
}

// peer runs a validation server answering sync requests from loopback, and
// returns its sync URL and store.
func peer(t *testing.T, b testdb.Backend) (string, *sqlstore.Store) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: b.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux, err := valserver.NewMux(valserver.Config{Store: st, KSM: noKSM{}, SyncAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/wsapi/2.0/sync", st
}

// TestDrain: ykval-queue sends rows queued by a verify (as ykvald queues
// them, and as YK-VAL's resync does) to a real peer, serves the metrics,
// and stops on cancel with exit 0.
func TestDrain(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			peerURL, peerStore := peer(t, b)
			dsn := b.DSN(t)
			st, err := sqlstore.Open(ctx, sqldb.Config{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var rows []val.QueueEntry
			for i := range 10 {
				k := val.KeyState{PublicName: "idkfefrdhtru", Modified: 1700000000 + int64(i), Counter: 3, Use: i, Low: 100 + i, High: 1, Nonce: "nonce000000000000000"}
				rows = append(rows, val.QueueEntry{Modified: k.Modified, ServerNonce: strings.Repeat("a", 31) + string(rune('a'+i)),
					OTP: "idkfefrdhtru" + strings.Repeat("c", 32), Server: peerURL, Info: valsync.Info(k, val.KeyState{Counter: 3, Use: i - 1})})
			}
			if err := st.Enqueue(ctx, rows); err != nil {
				t.Fatal(err)
			}

			conf := filepath.Join(t.TempDir(), "ykvald.conf")
			os.WriteFile(conf, []byte("listen = 127.0.0.1:0\nsync-peer = "+peerURL+"\nqueue-interval = 100ms\nksm-url = http://ignored/\n"), 0o600)
			stderr := &lockedBuffer{}
			runCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			addrs := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- work(runCtx, cli.Env{Args: []string{"--config", conf, "--db", dsn}, Stdout: io.Discard, Stderr: stderr, Getenv: getenv(nil)},
					func(a string) { addrs <- a })
			}()
			var addr string
			select {
			case addr = <-addrs:
			case err := <-done:
				t.Fatalf("ykval-queue = %v before listening:\n%s", err, stderr)
			}
			deadline := time.Now().Add(30 * time.Second)
			for {
				n, err := st.QueueLength(ctx)
				if err == nil && n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("queue not drained (%d rows, %v):\n%s", n, err, stderr)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if k, err := peerStore.KeyState(ctx, "idkfefrdhtru"); err != nil || k.Counter != 3 || k.Use != 9 || k.Low != 109 {
				t.Errorf("peer's key = %+v, %v; want the last row's counters", k, err)
			}
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			m, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(m), `ykval_queue_length{peer="`+peerURL+`"} 0`) || !strings.Contains(string(m), `ykval_sync_requests_total{peer="`+peerURL+`",result="ok"} 1`) {
				t.Errorf("/metrics lacks the queue length or the one request (the highest row covers the others):\n%s", m)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("ykval-queue after cancel = %v, want nil", err)
			}
			if !strings.Contains(stderr.String(), "queue worker stopped") {
				t.Errorf("log:\n%s", stderr)
			}
		})
	}
}

// TestSingleNode: no peers and an empty queue: exit 0 at once, as YK-VAL's.
func TestSingleNode(t *testing.T) {
	dsn := testdb.SQLite(t)
	st, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	var stderr bytes.Buffer
	if err := run(context.Background(), cli.Env{Args: []string{"--db", dsn}, Stdout: io.Discard, Stderr: &stderr, Getenv: getenv(nil)}); err != nil {
		t.Errorf("run(single node) = %v, want nil", err)
	}
	if !strings.Contains(stderr.String(), "single node") {
		t.Errorf("log %q does not say why it exits", stderr.String())
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want []string
	}{
		{"everything wrong", []string{"--sync-peer", "ftp://x/", "--queue-parallel", "0", "--queue-interval", "0s", "--listen", "nowhere",
			"--sync-key-file", filepath.Join(dir, "none"), "--db", "dbi:Pg:x", "extra"}, nil,
			[]string{`"ftp://x/"`, "--queue-parallel 0", "--queue-interval 0s", `--listen "nowhere"`, "--sync-key-file", `"Pg"`, `unexpected argument "extra"`}},
		{"environment", nil, map[string]string{"YKVAL_SYNC_PEERS": "gopher://y/", "YKVAL_CONFIG": filepath.Join(dir, "none.conf")},
			[]string{`"gopher://y/"`, "none.conf"}},
		{"unknown flag", []string{"--peer", "x"}, nil, []string{"unknown flag: --peer"}},
	}
	for _, tt := range tests {
		err := run(context.Background(), cli.Env{Args: tt.args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(tt.vars)})
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
	// A database that does not exist is a runtime error, not a new database.
	err := run(context.Background(), cli.Env{Args: []string{"--db", "sqlite:" + filepath.Join(dir, "missing.db")}, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
	if err == nil || errors.Is(err, cli.ErrUsage) {
		t.Errorf("run(missing database) = %v, want a runtime error", err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), cli.Env{Args: []string{"--help"}, Stdout: &out, Stderr: io.Discard}); !errors.Is(err, pflag.ErrHelp) || !strings.Contains(out.String(), "Usage: ykval-queue") {
		t.Errorf("run(--help) = %v, output %q", err, out.String())
	}
}

// TestSyncCA: a CA file that holds no certificate is a runtime error,
// reported before the worker starts.
func TestSyncCA(t *testing.T) {
	dsn := testdb.SQLite(t)
	st, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	bad := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(bad, []byte("no certificate here\n"), 0o600)
	err = run(context.Background(), cli.Env{Args: []string{"--db", dsn, "--sync-peer", "https://127.0.0.1:1/wsapi/2.0/sync", "--sync-ca", bad},
		Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
	if err == nil || cli.Report("ykval-queue", io.Discard, err) != cli.ExitFailure || !strings.Contains(err.Error(), "--sync-ca: tlsutil: CA file") {
		t.Errorf("run with a bad --sync-ca = %v, want a runtime failure naming it", err)
	}
}
