package main

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

// TestGenSealed: with --kek-file the new secrets are stored sealed and
// printed in plaintext; a sealed database takes none without the KEK.
func TestGenSealed(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			raw := valseal.GenerateKEK()
			kek, _ := valseal.NewKEK(raw)
			file := filepath.Join(t.TempDir(), "ykval.kek")
			os.WriteFile(file, []byte(valseal.FormatKEK(raw)), 0o600)
			dsn := b.DSN(t)
			out, stderr, code := runCmd(t, nil, "--database", dsn, "--kek-file", file, "2")
			if code != 0 || stderr != "" {
				t.Fatalf("gen with the KEK: exit %d, stderr %q", code, stderr)
			}
			s, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: valseal.New(kek)})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			lines := strings.Split(strings.TrimSpace(out), "\n")
			for _, l := range lines {
				idText, secret, _ := strings.Cut(l, ",")
				id, _ := strconv.ParseInt(idText, 10, 64)
				var stored string
				s.DB().QueryRowContext(context.Background(), "SELECT secret FROM clients WHERE id = ?", id).Scan(&stored)
				if !strings.HasPrefix(stored, valseal.Prefix+kek.ID()) || strings.Contains(stored, secret) {
					t.Errorf("client %d stored as %q, want sealed", id, stored)
				}
				if c, err := s.Client(context.Background(), id); err != nil || c.Secret != secret {
					t.Errorf("Client(%d) = %q, %v; want the printed secret %q", id, c.Secret, err, secret)
				}
			}
			if len(lines) != 2 {
				t.Errorf("gen printed %q, want 2 clients", out)
			}
			out, stderr, code = runCmd(t, nil, "--database", dsn)
			if code != 1 || out != "" || !strings.Contains(stderr, "no KEK is configured") {
				t.Errorf("gen without the KEK into a sealed database: exit %d, stdout %q, stderr %q; want 1 and a KEK error", code, out, stderr)
			}
		})
	}
}
