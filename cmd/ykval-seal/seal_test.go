package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

type result struct {
	stdout, stderr string
	code           int
}

func runCmd(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] }})
	code := cli.Report("ykval-seal", &errOut, err)
	return result{out.String(), errOut.String(), code}
}

var secrets = []string{"EHmo8FMxuhumBlTinC4uYL0Mgwg=", "c2VjcmV0IG9mIGNsaWVudCAy", "c2VjcmV0IG9mIGNsaWVudCAz"}

// seed creates the database behind dsn with three plaintext clients.
func seed(t *testing.T, dsn string) {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var cs []val.Client
	for i, sec := range secrets {
		cs = append(cs, val.Client{ID: int64(i + 1), Active: true, Created: 1, Secret: sec})
	}
	if _, err := s.ImportClients(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
}

// readAll returns the clients' secrets through a store with kek.
func readAll(t *testing.T, dsn string, kek string) []string {
	t.Helper()
	k, err := valseal.ReadKEKFile(kek, "")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: valseal.New(k), Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []string
	if err := s.EachClient(context.Background(), func(c val.Client) error { out = append(out, c.Secret); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func noSecrets(t *testing.T, what string, r result) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(r.stdout+r.stderr, s) {
			t.Errorf("%s printed a secret:\n%s%s", what, r.stdout, r.stderr)
		}
	}
}

// TestSealRotateUnseal runs the whole life of a sealed database on each
// backend, checking the secrets after every step.
func TestSealRotateUnseal(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			dsn := b.DSN(t)
			seed(t, dsn)
			k1, k2 := filepath.Join(dir, "k1"), filepath.Join(dir, "k2")
			for _, k := range []string{k1, k2} {
				if r := runCmd(t, nil, "gen-kek", k); r.code != 0 || !strings.HasPrefix(r.stdout, "wrote a new KEK with key ID ") {
					t.Fatalf("gen-kek %s: %+v", k, r)
				}
				if fi, err := os.Stat(k); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("gen-kek wrote %v, %v; want mode 0600", fi, err)
				}
			}
			id1, _ := valseal.ReadKEKFile(k1, "")
			id2, _ := valseal.ReadKEKFile(k2, "")

			r := runCmd(t, nil, "status", "--database", dsn)
			if r.code != 0 || !strings.Contains(r.stdout, "mode: plaintext\nplaintext secrets: 3\nsealed secrets: 0\n") {
				t.Errorf("status before: %+v", r)
			}
			if b.Name == "mysql" && !strings.Contains(r.stdout, "secret column: varchar(60): too narrow") {
				t.Errorf("status on MySQL does not show the narrow column:\n%s", r.stdout)
			}

			r = runCmd(t, nil, "seal", "--database", dsn, "--kek-file", k1, "--batch", "2", "-v")
			if r.code != 0 || !strings.Contains(r.stdout, "sealed 3 secrets under KEK "+id1.ID()) || !strings.Contains(r.stdout, "mode: sealed (plaintext 0, sealed 3)") ||
				!strings.Contains(r.stderr, "seal: 2 rows read, 2 changed") {
				t.Errorf("seal: %+v", r)
			}
			noSecrets(t, "seal", r)
			if got := readAll(t, dsn, k1); strings.Join(got, " ") != strings.Join(secrets, " ") {
				t.Errorf("after seal the secrets read %q", got)
			}
			r = runCmd(t, map[string]string{"YKVAL_KEK_FILE": k1}, "status", "--database", dsn)
			if r.code != 0 || !strings.Contains(r.stdout, "  KEK "+id1.ID()+": 3 (the KEK of --kek-file)") {
				t.Errorf("status after seal: %+v", r)
			}
			if b.Name == "mysql" && !strings.Contains(r.stdout, "secret column: varchar(160)\n") {
				t.Errorf("status on MySQL after seal:\n%s", r.stdout)
			}

			// Sealing again under another KEK is refused.
			if r := runCmd(t, nil, "seal", "--database", dsn, "--kek-file", k2); r.code != 1 || !strings.Contains(r.stderr, "use rotate") {
				t.Errorf("seal under another KEK: %+v", r)
			}
			r = runCmd(t, nil, "rotate", "--database", dsn, "--kek-file", k2, "--old-kek-file", k1)
			if r.code != 0 || !strings.Contains(r.stdout, "re-sealed 3 secrets under KEK "+id2.ID()) {
				t.Errorf("rotate: %+v", r)
			}
			if got := readAll(t, dsn, k2); strings.Join(got, " ") != strings.Join(secrets, " ") {
				t.Errorf("after rotate the secrets read %q", got)
			}

			// A row moved to another client is named and left alone.
			db, _ := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
			db.DB().ExecContext(context.Background(), "UPDATE clients SET secret = (SELECT s FROM (SELECT secret AS s FROM clients WHERE id = 1) AS x) WHERE id = 3")
			db.Close()
			r = runCmd(t, nil, "unseal", "--database", dsn, "--kek-file", k2)
			if r.code != 1 || !strings.Contains(r.stdout, "unsealed 2 secrets") || !strings.Contains(r.stderr, "1 secrets did not open") || !strings.Contains(r.stderr, "clients 3") {
				t.Errorf("unseal with a moved row: %+v", r)
			}
			noSecrets(t, "unseal", r)
			if r := runCmd(t, nil, "status", "--database", dsn); !strings.Contains(r.stdout, "mode: mixed\nplaintext secrets: 2\nsealed secrets: 1\n") {
				t.Errorf("status after the unseal: %+v", r)
			}
		})
	}
}

func TestUsage(t *testing.T) {
	dir := t.TempDir()
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	k := filepath.Join(dir, "k")
	runCmd(t, nil, "gen-kek", k)
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{nil, 2, "give a command"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"seal", "--database", dsn}, 2, "seal needs the KEK"},
		{[]string{"rotate", "--database", dsn, "--kek-file", k}, 2, "rotate needs the new KEK"},
		{[]string{"seal", "--database", dsn, "--kek-file", k, "--batch", "0"}, 2, "--batch 0"},
		{[]string{"gen-kek"}, 2, "gen-kek needs a FILE"},
		{[]string{"gen-kek", k}, 1, "file exists"},
		{[]string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"status", "--database", "sqlite:" + filepath.Join(dir, "none.db")}, 1, "none.db"},
		{[]string{"seal", "--database", dsn, "--old-kek-file", k}, 2, "no current KEK"},
	} {
		r := runCmd(t, nil, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("ykval-seal %q: exit %d, stderr %q; want %d and %q", tt.args, r.code, r.stderr, tt.code, tt.want)
		}
	}
	if r := runCmd(t, nil, "gen-kek", "-"); r.code != 0 || len(strings.TrimSpace(r.stdout)) != 44 {
		t.Errorf("gen-kek -: %+v, want 44 characters of base64", r)
	}
	if r := runCmd(t, nil, "--help"); r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: ykval-seal status") {
		t.Errorf("--help: %+v", r)
	}
}
