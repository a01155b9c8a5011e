package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// TestChecksumSealed: a database sealed in place has the checksum of its
// plaintext self; without the KEK there is no checksum.
func TestChecksumSealed(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			newDB(t, dsn, keys)
			raw := seal.GenerateKEK()
			kek, err := seal.NewKEK(raw)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "kek")
			if err := os.WriteFile(file, []byte(seal.FormatKEK(raw)), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(kek)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			if res, err := st.Convert(ctx, sqlstore.Seal, sqlstore.ConvertOptions{}); err != nil || res.Changed != len(keys) {
				t.Fatalf("Convert = %+v, %v", res, err)
			}
			out, stderr, code := runCmd(t, map[string]string{"YKKSM_KEK": strings.TrimSpace(seal.FormatKEK(raw))}, "--database", dsn)
			if code != 0 || out != wantSum+"\n" {
				t.Errorf("checksum of the sealed database: exit %d, %q %q; want %q", code, out, stderr, wantSum+"\n")
			}
			if out, _, code := runCmd(t, nil, "--database", dsn, "--kek-file", file); code != 0 || out != wantSum+"\n" {
				t.Errorf("checksum with --kek-file: exit %d, %q; want %q", code, out, wantSum+"\n")
			}
			out, stderr, code = runCmd(t, nil, "--database", dsn)
			if code != cli.ExitFailure || out != "" || !strings.Contains(stderr, "no KEK is configured") {
				t.Errorf("checksum without a KEK: exit %d, %q %q; want exit 1 and an error", code, out, stderr)
			}
		})
	}
}
