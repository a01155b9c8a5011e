package main

import (
	"context"
	"database/sql"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/val"
)

// ksmKEKFile writes a new KSM KEK to a private file and returns its path
// and KEK.
func ksmKEKFile(t *testing.T) (string, *seal.KEK) {
	t.Helper()
	raw := seal.GenerateKEK()
	k, err := seal.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ykksm.kek")
	if err := os.WriteFile(p, []byte(seal.FormatKEK(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// sealedKSMDB returns the DSN of a fresh KSM database on b holding the CI
// key sealed under kek, written by ksm/sqlstore as ykksm-import would.
func sealedKSMDB(t *testing.T, b testdb.Backend, kek *seal.KEK) string {
	t.Helper()
	dsn := b.DSN(t)
	st, err := ksmsqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, ksmsqlstore.Options{Sealer: seal.New(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(context.Background(), []ksm.Key{ciKey}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// TestSealedKSM: the in-process KSM reads a sealed KSM database with
// --ksm-kek-file (or the environment, or during a rotation with the old
// KEK); without a KEK, or with a wrong one, ykvald does not start.
func TestSealedKSM(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			file, kek := ksmKEKFile(t)
			dsn := sealedKSMDB(t, b, kek)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-db", dsn, "--ksm-kek-file", file}, nil)
			if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
				t.Errorf("verify with a sealed KSM database: %s, want OK", r.Status())
			}
			s.stop()
			logs := s.stderr.String()
			for _, want := range []string{"kek=" + kek.ID(), "keys=sealed sealed=1 plaintext=0", `kek_source="--ksm-kek-file ` + file + `"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, ciKey.AESKey) || strings.Contains(logs, "level=WARN") {
				t.Errorf("log shows the AES key or a warning:\n%s", logs)
			}

			// A rotation: the new KEK current, the old one still read.
			newFile, _ := ksmKEKFile(t)
			s = start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-db", dsn},
				map[string]string{"YKVAL_KSM_KEK_FILE": newFile, "YKVAL_KSM_OLD_KEK_FILE": file})
			if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
				t.Errorf("verify during a KEK rotation: %s, want OK", r.Status())
			}
			s.stop()

			wrong, _ := ksmKEKFile(t)
			for _, tt := range []struct {
				name string
				args []string
				want string
			}{
				{"no KEK", nil, "no KEK is configured: give --ksm-kek-file"},
				{"wrong KEK", []string{"--ksm-kek-file", wrong}, "sealed under a KEK that is not configured"},
			} {
				args := append([]string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-db", dsn}, tt.args...)
				err := run(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
				if code := cli.Report("ykvald", io.Discard, err); code != cli.ExitFailure || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: run = %v (exit %d), want a runtime failure saying %q", tt.name, err, code, tt.want)
				}
			}
		})
	}
	// A world-readable KEK file is refused.
	file, _ := ksmKEKFile(t)
	os.Chmod(file, 0o644)
	args := []string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0]), "--ksm-db", ksmDB(t, testdb.Backends()[0]), "--ksm-kek-file", file}
	err := run(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
	if err == nil || !strings.Contains(err.Error(), "--ksm-kek-file: seal: invalid KEK") {
		t.Errorf("run with a world-readable KEK file = %v, want it refused", err)
	}
}

// TestKSMKeyCacheTTL: with --ksm-key-cache-ttl 0 a key deactivated in the
// KSM database stops decrypting at once (BAD_OTP); with a long TTL it keeps
// decrypting from memory, the documented trade-off, while /wsapi/revoke
// still disables the key at once.
func TestKSMKeyCacheTTL(t *testing.T) {
	tests := []struct {
		ttl  string
		want val.Status // after the key is deactivated in the KSM
	}{
		{"0", val.StatusBadOTP},
		{"1h", val.StatusOK},
	}
	for _, tt := range tests {
		t.Run("ttl="+tt.ttl, func(t *testing.T) {
			b := testdb.Backends()[0]
			kdsn := ksmDB(t, b)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-db", kdsn, "--ksm-key-cache-ttl", tt.ttl, "--revoke-ip", "127.0.0.1"}, nil)
			if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
				t.Fatalf("first verify: %s, want OK", r.Status())
			}
			db, err := sql.Open("sqlite", strings.TrimPrefix(kdsn, "sqlite:"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("UPDATE yubikeys SET active = 0"); err != nil {
				t.Fatal(err)
			}
			if r := s.verify(t, line2, nonce); r.Status() != tt.want {
				t.Errorf("verify after the KSM deactivated the key: %s, want %s", r.Status(), tt.want)
			}
			if _, body := s.get(t, "/wsapi/revoke?yk=idkfefrdhtru&do=disable"); body != "OK Processed idkfefrdhtru with disable\n" {
				t.Fatalf("revoke = %q", body)
			}
			if r := s.verify(t, mint(3, 0), nonce); r.Status() != val.StatusBadOTP {
				t.Errorf("verify after revoke: %s, want BAD_OTP at once", r.Status())
			}
		})
	}
}
