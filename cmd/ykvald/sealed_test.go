package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

// valKEKFile writes a new VAL KEK to a private file and returns its path
// and KEK.
func valKEKFile(t *testing.T) (string, *valseal.KEK) {
	t.Helper()
	raw := valseal.GenerateKEK()
	k, err := valseal.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ykval.kek")
	if err := os.WriteFile(p, []byte(valseal.FormatKEK(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// sealedValDB returns the DSN of a fresh validation database on b whose CI
// client's secret is sealed under kek.
func sealedValDB(t *testing.T, b testdb.Backend, kek *valseal.KEK) string {
	t.Helper()
	dsn := b.DSN(t)
	st, err := valsqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, valsqlstore.Options{Sealer: valseal.New(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ImportClients(context.Background(), []val.Client{{ID: 1, Active: true, Created: 1383728711, Secret: ciSecret}}); err != nil {
		t.Fatal(err)
	}
	return dsn
}

// TestSealedSecrets: with --kek-file ykvald verifies for clients whose
// secret is sealed (answers signed with the secret); without the KEK, or
// with another, it does not start.
func TestSealedSecrets(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			file, kek := valKEKFile(t)
			dsn := sealedValDB(t, b, kek)
			ksm := ksmServer(t)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--ksm-url", ksm, "--kek-file", file, "--client-cache-ttl", "0"}, nil)
			if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK { // verify checks the signature
				t.Errorf("verify with a sealed secret: %s, want OK", r.Status())
			}
			s.stop()
			logs := s.stderr.String()
			for _, want := range []string{"kek=" + kek.ID(), "secrets=sealed sealed=1 plaintext=0", `kek_source="--kek-file ` + file + `"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, ciSecret) || strings.Contains(logs, "level=WARN") {
				t.Errorf("log shows the secret or a warning:\n%s", logs)
			}

			wrong, _ := valKEKFile(t)
			open, _ := valKEKFile(t)
			os.Chmod(open, 0o644)
			for _, tt := range []struct {
				name string
				args []string
				want string
			}{
				{"no KEK", nil, "1 sealed API secrets"},
				{"wrong KEK", []string{"--kek-file", wrong}, "sealed under a KEK that is not configured"},
				{"world-readable KEK", []string{"--kek-file", open}, "has mode 0644"},
			} {
				args := append([]string{"--listen", "127.0.0.1:0", "--db", dsn, "--ksm-url", ksm}, tt.args...)
				err := run(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
				if code := cli.Report("ykvald", io.Discard, err); code != cli.ExitFailure || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("%s: run = %v (exit %d), want a runtime failure saying %q", tt.name, err, code, tt.want)
				}
			}
		})
	}
}

// TestSealInPlace: a running ykvald with --kek-file on a plaintext
// database keeps verifying signed requests while its secrets are sealed
// under it (as ykval-seal seal does), and after a restart on the sealed
// database.
func TestSealInPlace(t *testing.T) {
	b := testdb.Backends()[0]
	file, kek := valKEKFile(t)
	dsn := valDB(t, b)
	ksm := ksmServer(t)
	args := []string{"--listen", "127.0.0.1:0", "--db", dsn, "--ksm-url", ksm, "--kek-file", file, "--client-cache-ttl", "0"}
	s := start(t, args, map[string]string{})
	if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
		t.Fatalf("verify before the seal: %s", r.Status())
	}
	if !strings.Contains(s.stderr.String(), "still holds plaintext API secrets") {
		t.Errorf("no warning about plaintext secrets:\n%s", s.stderr)
	}
	st, err := valsqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, valsqlstore.Options{Sealer: valseal.New(kek)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if res, err := st.ConvertSecrets(context.Background(), valsqlstore.Seal, valsqlstore.ConvertOptions{}); err != nil || res.Changed != 1 {
		t.Fatalf("seal = %+v, %v", res, err)
	}
	if r := s.verify(t, line2, nonce); r.Status() != val.StatusOK {
		t.Errorf("verify after the seal: %s, want OK", r.Status())
	}
	s.stop()
	s = start(t, args, nil)
	if r := s.verify(t, mint(2, 0), nonce); r.Status() != val.StatusOK {
		t.Errorf("verify after a restart on the sealed database: %s, want OK", r.Status())
	}
}
