package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

// TestExportSealed: secrets sealed at rest are exported in plaintext with
// the KEK, and not at all without it.
func TestExportSealed(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			raw := valseal.GenerateKEK()
			kek, _ := valseal.NewKEK(raw)
			file := filepath.Join(t.TempDir(), "ykval.kek")
			os.WriteFile(file, []byte(valseal.FormatKEK(raw)), 0o600)
			dsn := b.DSN(t)
			s, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: valseal.New(kek)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.ImportClients(context.Background(), clients); err != nil {
				t.Fatal(err)
			}
			s.Close()
			if out, stderr, code := runCmd(t, nil, "--database", dsn, "--kek-file", file); code != 0 || out != want || stderr != "" {
				t.Errorf("export with the KEK: exit %d, stdout %q, stderr %q; want 0 and\n%s", code, out, stderr, want)
			}
			if out, stderr, code := runCmd(t, map[string]string{"YKVAL_KEK": strings.TrimSpace(valseal.FormatKEK(raw))}, "--database", dsn); code != 0 || out != want {
				t.Errorf("export with $YKVAL_KEK: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 1 || out != "" || !strings.Contains(stderr, "no KEK is configured") {
				t.Errorf("export without the KEK: exit %d, stdout %q, stderr %q; want 1, nothing, a KEK error", code, out, stderr)
			}
		})
	}
}
