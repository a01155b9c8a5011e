package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// writeKEK writes a new KEK file (mode 0600) and returns its path and KEK.
func writeKEK(t *testing.T) (string, *seal.KEK) {
	t.Helper()
	raw := seal.GenerateKEK()
	k, err := seal.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(p, []byte(seal.FormatKEK(raw)), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, k
}

// TestImportSealed: with a KEK the keys are stored sealed (no column holds
// them), read back the same through the KEK, and a plaintext import into
// the sealed database or an import with another KEK is refused.
func TestImportSealed(t *testing.T) {
	f := setup(t)
	msg, err := f.Gen.Message([]byte(keyFile), &f.Signer, true, f.KSMKey)
	if err != nil {
		t.Fatal(err)
	}
	msg2, err := f.Gen.Message([]byte("3,cccccccccccf,0123456789ab,00112233445566778899aabbccddeeff,,,\n"), &f.Signer, true, f.KSMKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn, plainDSN := b.DSN(t), b.DSN(t)
			file, kek := writeKEK(t)
			args := []string{"--keyring", f.ksmSecret, "--keyring", f.signers, "--database", dsn}
			r := runImport(t, msg, map[string]string{"YKKSM_KEK_FILE": file}, args...)
			if r.err != nil {
				t.Fatalf("run: %v\n%s", r.err, r.stderr)
			}
			if want := "imported 2 keys, sealed under KEK " + kek.ID() + "\n"; !strings.HasSuffix(r.stdout, want) {
				t.Errorf("stdout = %q, want it to end in %q", r.stdout, want)
			}
			if r := runImport(t, msg, nil, "--keyring", f.ksmSecret, "--keyring", f.signers, "--database", plainDSN); r.err != nil {
				t.Fatalf("plaintext import: %v", r.err)
			}

			st, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(kek)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rows, err := st.DB().Query("SELECT * FROM yubikeys")
			if err != nil {
				t.Fatal(err)
			}
			cols, _ := rows.Columns()
			n := 0
			for rows.Next() {
				n++
				vals := make([]string, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				if err := rows.Scan(ptrs...); err != nil {
					t.Fatal(err)
				}
				for _, v := range vals {
					if strings.Contains(v, "00112233445566778899aabbccddeeff") || strings.Contains(v, "ffeeddccbbaa99887766554433221100") {
						t.Errorf("a column holds an AES key: %q", v)
					}
				}
			}
			rows.Close()
			if n != 2 {
				t.Errorf("%d rows, want 2", n)
			}
			sealed, plain := dump(t, st), keys(t, plainDSN)
			if len(sealed) != 2 || len(plain) != 2 || sealed[0] != plain[0] || sealed[1].AESKey != plain[1].AESKey {
				t.Errorf("keys read through the KEK = %+v, want those of the plaintext import %+v", sealed, plain)
			}

			// No KEK into the sealed database, or another KEK: refused, nothing added.
			r = runImport(t, msg2, nil, args...)
			if !errors.Is(r.err, sqlstore.ErrNoKEK) {
				t.Errorf("plaintext import into a sealed database: %v, want ErrNoKEK", r.err)
			}
			other, _ := writeKEK(t)
			r = runImport(t, msg2, nil, append(args, "--kek-file", other)...)
			if !errors.Is(r.err, sqlstore.ErrWrongKEK) {
				t.Errorf("import with another KEK: %v, want ErrWrongKEK", r.err)
			}
			if got := dump(t, st); len(got) != 2 {
				t.Errorf("after refused imports the database holds %d keys, want 2", len(got))
			}
		})
	}
}

func dump(t *testing.T, st ksm.KeyStore) []ksm.Key {
	t.Helper()
	var out []ksm.Key
	if err := st.Each(context.Background(), func(k ksm.Key) error { out = append(out, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}
