package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// kekFile writes a new KEK to a file of mode perm and returns its path and KEK.
func kekFile(t *testing.T, perm os.FileMode) (string, *seal.KEK) {
	t.Helper()
	raw := seal.GenerateKEK()
	k, err := seal.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ykksm.kek")
	if err := os.WriteFile(p, []byte(seal.FormatKEK(raw)), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, perm); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// seedSealed creates the database behind dsn holding the CI key sealed under kek.
func seedSealed(t *testing.T, dsn string, kek *seal.KEK) {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(ctx, []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
}

func TestServeSealed(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			file, kek := kekFile(t, 0o600)
			seedSealed(t, dsn, kek)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--kek-file", file}, nil)
			if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusOK || body != ciOK {
				t.Errorf("decrypt with a sealed key = %d %q, want %q", code, body, ciOK)
			}
			if err := s.stop(); err != nil {
				t.Fatal(err)
			}
			logs := s.stderr.String()
			for _, want := range []string{"kek=" + kek.ID(), "keys=sealed sealed=1 plaintext=0", "kek_source=\"--kek-file " + file + "\""} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, "level=WARN") || strings.Contains(logs, ciKey.AESKey) {
				t.Errorf("log has a warning or the key:\n%s", logs)
			}
		})
	}
}

// TestServeRotation: during a KEK rotation the server holds both KEKs and
// reads keys sealed under either; the KEK can come from a credential.
func TestServeRotation(t *testing.T) {
	dsn := testdb.SQLite(t)
	oldFile, oldKEK := kekFile(t, 0o400)
	seedSealed(t, dsn, oldKEK)
	creds := t.TempDir()
	raw := seal.GenerateKEK()
	if err := os.WriteFile(filepath.Join(creds, "ykksm-kek"), []byte(seal.FormatKEK(raw)), 0o444); err != nil {
		t.Fatal(err)
	}
	newKEK, _ := seal.NewKEK(raw)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--old-kek-file", oldFile},
		map[string]string{"CREDENTIALS_DIRECTORY": creds})
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusOK || body != ciOK {
		t.Errorf("decrypt during a rotation = %d %q, want %q", code, body, ciOK)
	}
	s.stop()
	if logs := s.stderr.String(); !strings.Contains(logs, "kek="+newKEK.ID()) || !strings.Contains(logs, "old KEK from --old-kek-file") {
		t.Errorf("log does not name the new KEK %s and the old one:\n%s", newKEK.ID(), logs)
	}
}

// TestServeSealing: a server with a KEK on a plaintext database (sealing
// not done yet) warns with the count and reads the plaintext keys; a server
// started on a sealed database refuses a plaintext key planted later.
func TestServeSealing(t *testing.T) {
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	file, kek := kekFile(t, 0o600)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--kek-file", file}, nil)
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusOK || body != ciOK {
		t.Errorf("decrypt of a plaintext key with a KEK during sealing = %d %q, want %q", code, body, ciOK)
	}
	s.stop()
	if logs := s.stderr.String(); !strings.Contains(logs, "level=WARN") || !strings.Contains(logs, "plaintext=1") {
		t.Errorf("log lacks the warning about 1 plaintext key:\n%s", logs)
	}

	ctx := context.Background()
	st, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Convert(ctx, sqlstore.Seal, sqlstore.ConvertOptions{}); err != nil {
		t.Fatal(err)
	}
	s = start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--kek-file", file}, nil)
	if _, err := st.DB().Exec("UPDATE yubikeys SET aeskey = ?", ciKey.AESKey); err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusOK || body != "ERR Database error\n" {
		t.Errorf("decrypt of a plaintext key planted in a sealed database = %d %q, want ERR Database error", code, body)
	}
	s.stop()
	if logs := s.stderr.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "plaintext key refused") {
		t.Errorf("log lacks the error about the refused plaintext key:\n%s", logs)
	}

	// --allow-plaintext reads it (an unseal in progress).
	s = start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--kek-file", file, "--allow-plaintext"}, nil)
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != http.StatusOK || body != ciOK {
		t.Errorf("decrypt with --allow-plaintext = %d %q, want %q", code, body, ciOK)
	}
}

// TestKEKStartupErrors: a missing or wrong KEK stops ykksmd before it
// listens, with a clear message and exit 1; it never serves the keys as
// plaintext.
func TestKEKStartupErrors(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			good, kek := kekFile(t, 0o600)
			seedSealed(t, dsn, kek)
			wrong, other := kekFile(t, 0o600)
			open, _ := kekFile(t, 0o644)
			for _, tt := range []struct {
				name string
				args []string
				env  map[string]string
				want string
				code int
			}{
				{"missing KEK", nil, nil, "the database holds 1 sealed keys (KEK key IDs " + kek.ID() + ") and no KEK is configured", cli.ExitFailure},
				{"wrong KEK", []string{"--kek-file", wrong}, nil, "keys sealed 1 under key ID " + kek.ID() + ", the configured KEKs have key IDs " + other.ID(), cli.ExitFailure},
				{"wrong KEK from the environment", nil, map[string]string{"YKKSM_KEK_FILE": wrong}, "not configured", cli.ExitFailure},
				{"world-readable KEK file", []string{"--kek-file", open}, nil, "has mode 0644", cli.ExitFailure},
				{"missing KEK file", []string{"--kek-file", good + ".nope"}, nil, "no such file", cli.ExitFailure},
				{"bad KEK in the environment", nil, map[string]string{"YKKSM_KEK": "dG9vIHNob3J0"}, "$YKKSM_KEK: seal: invalid KEK", cli.ExitFailure},
				{"--allow-plaintext without a KEK", []string{"--allow-plaintext"}, nil, "--allow-plaintext goes with a KEK", cli.ExitUsage},
				{"--old-kek-file alone", []string{"--old-kek-file", good}, nil, "no current KEK", cli.ExitUsage},
			} {
				var stderr bytes.Buffer
				args := append([]string{"--listen", "127.0.0.1:0", "--db", dsn}, tt.args...)
				ready := false
				err := serve(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: &stderr, Getenv: getenv(tt.env)},
					func(string) { ready = true })
				code := cli.Report("ykksmd", &stderr, err)
				if err == nil || code != tt.code || !strings.Contains(err.Error(), tt.want) || ready {
					t.Errorf("%s: serve = %v (exit %d, listened %v), want exit %d and %q", tt.name, err, code, ready, tt.code, tt.want)
				}
			}
		})
	}
}
