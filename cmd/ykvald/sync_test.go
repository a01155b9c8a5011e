package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
)

const poolKey = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="

// TestPool runs two ykvalds on each backend, A listing B as its peer (from
// a config file, with a pool key) and B allowing loopback: an OTP verified
// on A reaches B's database, A's queue is empty afterwards, and /metrics
// shows the pool.
func TestPool(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "pool.key")
			if err := os.WriteFile(keyFile, []byte(poolKey+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ksm := ksmServer(t)
			bDB := valDB(t, b)
			peer := start(t, []string{"--listen", "127.0.0.1:0", "--db", bDB, "--ksm-url", ksm,
				"--sync-allow", "10.0.0.0/8", "--sync-allow", "127.0.0.0/8", "--sync-key-file", keyFile}, nil)

			conf := filepath.Join(dir, "ykvald.conf")
			os.WriteFile(conf, []byte("# pool A\nsync-peer = "+peer.url+"/wsapi/2.0/sync\nsync-key-file = "+keyFile+
				"\nsync-allow = 127.0.0.1\nqueue-interval = 100ms\nlisten = 127.0.0.1:0\n"), 0o600)
			a := start(t, []string{"--config", conf, "--db", valDB(t, b), "--ksm-url", ksm}, nil)
			if r := a.verify(t, line1, nonce); r.Status() != val.StatusOK || r.Get("sl") != "100" {
				t.Errorf("verify on A: %s sl=%s, want OK sl=100", r.Status(), r.Get("sl"))
			}
			if r := peer.verify(t, line1, "bakabakabakabaka"); r.Status() != val.StatusReplayedOTP {
				t.Errorf("the same OTP on B: %s, want REPLAYED_OTP", r.Status())
			}
			peerURL := peer.url + "/wsapi/2.0/sync"
			deadline := time.Now().Add(30 * time.Second)
			for {
				_, m := a.get(t, "/metrics")
				if strings.Contains(m, `ykval_queue_length{peer="`+peerURL+`"} 0`) &&
					strings.Contains(m, `ykval_sync_requests_total{peer="`+peerURL+`",result="ok"} 1`) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("A's /metrics never showed an empty queue and one OK sync:\n%s", m)
				}
				time.Sleep(50 * time.Millisecond)
			}
			// B allows A's address; an unsigned request is refused.
			_, body := peer.get(t, "/wsapi/2.0/sync?otp="+line2+"&modified=1&yk_publicname=idkfefrdhtru&yk_counter=9&yk_use=0&yk_high=0&yk_low=0&nonce="+nonce)
			if r, _ := val.ParseResponse([]byte(body)); r.Status() != val.StatusOperationNotAllowed {
				t.Errorf("unsigned sync to B: %q, want OPERATION_NOT_ALLOWED", body)
			}
			// Resync from A queues the key for B; the worker sends it.
			if _, body := a.get(t, "/wsapi/2.0/resync?yk=idkfefrdhtru"); body != "OK Initiated resync of idkfefrdhtru\n" {
				t.Errorf("resync on A = %q", body)
			}
			if err := a.stop(); err != nil {
				t.Errorf("A stopped with %v", err)
			}
			logs := a.stderr.String()
			for _, want := range []string{"sync=\"1 peers, pool key, queue worker\"", "queue worker started", "queue worker stopped", "ykvald stopped"} {
				if !strings.Contains(logs, want) {
					t.Errorf("A's log has no %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, line1) || strings.Contains(peer.stderr.String(), line1) {
				t.Errorf("a log shows an OTP")
			}
			st, err := valsqlstore.Open(context.Background(), sqldb.Config{DSN: bDB})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if k, err := st.KeyState(context.Background(), "idkfefrdhtru"); err != nil || k.Counter != 1 || k.Use != 0 || k.Nonce != nonce {
				t.Errorf("B's key = %+v, %v; want A's OTP", k, err)
			}
		})
	}
}

// TestSyncUsage: every problem of the sync settings, at once, from flags,
// the environment and the config file.
func TestSyncUsage(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.key")
	os.WriteFile(open, []byte(poolKey), 0o644)
	os.Chmod(open, 0o644)
	conf := filepath.Join(dir, "bad.conf")
	os.WriteFile(conf, []byte("sync-peers = https://x/\nqueue-parallel = many\nconfig = again\n"), 0o600)
	tests := []struct {
		name string
		args []string
		vars map[string]string
		want []string
	}{
		{"flags", []string{"--ksm-url", "http://k/", "--sync-peer", "ftp://a/", "--sync-peer", "https://b/s?x=1",
			"--sync-peer", "https://c/s", "--sync-peer", "https://c/s", "--sync-allow", "10.0.0.0/33", "--sync-allow", "host",
			"--resync-allow", "::g", "--sync-key-file", open, "--sync-fast-level", "0", "--sync-default-level", "101",
			"--sync-default-timeout", "0s", "--queue-interval", "-1s", "--queue-parallel", "0", "--queue-old-limit", "0s"}, nil, []string{
			`"ftp://a/"`, `"https://b/s?x=1"`, `"https://c/s": listed twice`, `"10.0.0.0/33"`, `"host"`, `--resync-allow`, `"::g"`,
			"readable by every user", "--sync-fast-level 0", "--sync-default-level 101", "--sync-default-timeout 0s",
			"--queue-interval -1s", "--queue-parallel 0", "--queue-old-limit 0s",
		}},
		{"environment", []string{"--ksm-url", "http://k/"}, map[string]string{
			"YKVAL_SYNC_PEERS": "https://ok/s gopher://x/", "YKVAL_SYNC_ALLOW": "1.2.3.4,nope", "YKVAL_SYNC_KEY_FILE": filepath.Join(dir, "missing"),
		}, []string{`"gopher://x/"`, `"nope"`, "--sync-key-file"}},
		{"config file", []string{"--ksm-url", "http://k/", "--config", conf}, nil, []string{
			`bad.conf:1: unknown setting "sync-peers"`, "bad.conf:2: queue-parallel", `bad.conf:3: "config" cannot be set`,
		}},
		{"missing config file", []string{"--ksm-url", "http://k/"}, map[string]string{"YKVAL_CONFIG": filepath.Join(dir, "none.conf")}, []string{"none.conf"}},
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

// TestConfigPrecedence: the command line wins over the file, the file over
// the environment.
func TestConfigPrecedence(t *testing.T) {
	b := testdb.Backends()[0]
	dir := t.TempDir()
	conf := filepath.Join(dir, "ykvald.conf")
	os.WriteFile(conf, []byte("listen = 127.0.0.1:1\nrevoke-ip = 127.0.0.1\nksm-url = "+ksmServer(t)+"\n"), 0o600)
	s := start(t, []string{"--config", conf, "--listen", "127.0.0.1:0", "--db", valDB(t, b)},
		map[string]string{"YKVAL_REVOKE_IPS": "192.0.2.1", "YKVAL_KSM_URL": "http://127.0.0.1:1/wsapi/decrypt"})
	if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
		t.Errorf("verify: %s, want OK (the file's KSM, not the environment's)", r.Status())
	}
	if _, body := s.get(t, "/wsapi/revoke?yk=idkfefrdhtru&do=enable"); body != "OK Processed idkfefrdhtru with enable\n" {
		t.Errorf("revoke = %q, want the file's allow-list", body)
	}
	if _, body := s.get(t, "/wsapi/2.0/resync?yk=all"); body != "ERROR Authorization failed (logged 127.0.0.1)\n" {
		t.Errorf("resync without an allow-list = %q", body)
	}
}
