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

// TestChecksumSealed: the checksum is over the plaintext secrets, so a
// sealed database with its KEK sums like a plaintext one; without the KEK
// there is no checksum.
func TestChecksumSealed(t *testing.T) {
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
			if out, stderr, code := runCmd(t, nil, "--database", dsn, "--kek-file", file); code != 0 || out != sum+"\n" {
				t.Errorf("checksum with the KEK: exit %d, stdout %q, stderr %q; want the plaintext database's %s", code, out, stderr, sum)
			}
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 1 || out != "" || !strings.Contains(stderr, "no KEK is configured") {
				t.Errorf("checksum without the KEK: exit %d, stdout %q, stderr %q; want 1 and a KEK error", code, out, stderr)
			}
		})
	}
}
