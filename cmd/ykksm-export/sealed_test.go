package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// TestExportSealed: a sealed database exports exactly what its plaintext
// copy exports, also in the middle of a KEK rotation; without the KEK it
// exports nothing.
func TestExportSealed(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			dir := t.TempDir()
			kekFile := func(name string) (string, *seal.KEK) {
				raw := seal.GenerateKEK()
				k, err := seal.NewKEK(raw)
				if err != nil {
					t.Fatal(err)
				}
				p := filepath.Join(dir, name)
				if err := os.WriteFile(p, []byte(seal.FormatKEK(raw)), 0o600); err != nil {
					t.Fatal(err)
				}
				return p, k
			}
			oldFile, oldKEK := kekFile("old")
			newFile, newKEK := kekFile("new")
			st, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(oldKEK)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if err := st.Import(ctx, stored[:2]); err != nil {
				t.Fatal(err)
			}
			// The third key arrives during a rotation, sealed under the new KEK.
			rot, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(newKEK, oldKEK)})
			if err != nil {
				t.Fatal(err)
			}
			defer rot.Close()
			if err := rot.Import(ctx, stored[2:]); err != nil {
				t.Fatal(err)
			}
			if out, err := runExport("--database", dsn, "--kek-file", newFile, "--old-kek-file", oldFile); err != nil || out != wantPlain {
				t.Errorf("export with both KEKs = %v\n%s\nwant\n%s", err, out, wantPlain)
			}
			if out, err := runExport("-v", "--db", dsn, "--kek-file", newFile, "--old-kek-file", oldFile); err != nil || out != wantVerbose {
				t.Errorf("export -v with both KEKs = %v\n%s\nwant\n%s", err, out, wantVerbose)
			}
			if b.Name == "sqlite" { // to an OpenPGP recipient, as from a plaintext database
				w := world(t)
				pub := filepath.Join(dir, "ksm2-public.asc")
				sec := filepath.Join(dir, "ksm1-secret.gpg")
				if err := os.WriteFile(pub, must(w.Gen.ExportPublic(w.RSA, true)), 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(sec, must(w.Gen.ExportSecret(w.KSMKey, false)), 0o600); err != nil {
					t.Fatal(err)
				}
				out, err := runExport("--database", dsn, "--kek-file", newFile, "--old-kek-file", oldFile, "--encrypt-to", pub, "--sign-with", sec)
				if err != nil {
					t.Fatal(err)
				}
				r, err := (&pgp.GPG{Home: w.Gen.Dir}).Decrypt(ctx, []byte(out))
				if err != nil {
					t.Fatal(err)
				}
				if string(r.Plaintext) != wantPlain || !r.Encrypted {
					t.Errorf("encrypted export of the sealed database = %q, encrypted %v; want %q, encrypted", r.Plaintext, r.Encrypted, wantPlain)
				}
			}
			out, err := runExport("--database", dsn)
			if !errors.Is(err, sqlstore.ErrNoKEK) || out != "" {
				t.Errorf("export without a KEK = %q, %v; want nothing and ErrNoKEK", out, err)
			}
			out, err = runExport("--database", dsn, "--kek-file", newFile)
			if !errors.Is(err, sqlstore.ErrWrongKEK) || out != "" || !strings.Contains(err.Error(), oldKEK.ID()) {
				t.Errorf("export with the new KEK only = %q, %v; want nothing and ErrWrongKEK naming %s", out, err, oldKEK.ID())
			}
		})
	}
}
