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

// TestImportSealed: with --kek-file the imported secrets are stored
// sealed; a sealed database takes no import without the KEK.
func TestImportSealed(t *testing.T) {
	const secret = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			raw := valseal.GenerateKEK()
			kek, _ := valseal.NewKEK(raw)
			file := filepath.Join(t.TempDir(), "ykval.kek")
			os.WriteFile(file, []byte(valseal.FormatKEK(raw)), 0o600)
			dsn := b.DSN(t)
			if _, stderr, code := runCmd(t, nil, "1,1,1383728711,"+secret+",,,\n", "--database", dsn, "--kek-file", file); code != 0 {
				t.Fatalf("import with the KEK: exit %d, stderr %q", code, stderr)
			}
			s, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: valseal.New(kek)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var stored string
			s.DB().QueryRowContext(context.Background(), "SELECT secret FROM clients WHERE id = 1").Scan(&stored)
			if !strings.HasPrefix(stored, valseal.Prefix+kek.ID()) || strings.Contains(stored, secret) {
				t.Errorf("imported secret stored as %q, want sealed", stored)
			}
			if c, err := s.Client(context.Background(), 1); err != nil || c.Secret != secret {
				t.Errorf("Client(1) = %q, %v; want the imported secret", c.Secret, err)
			}
			_, stderr, code := runCmd(t, nil, "2,1,1,c2VjcmV0,,,\n", "--database", dsn)
			if code != 1 || !strings.Contains(stderr, "no KEK is configured") {
				t.Errorf("import without the KEK into a sealed database: exit %d, stderr %q; want 1 and a KEK error", code, stderr)
			}
		})
	}
}
