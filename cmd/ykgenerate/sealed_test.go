package main

import (
	"context"
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

// TestDatabaseSealed: keys sealed at rest mint OTPs with the KEK, active or
// not, and not without it.
func TestDatabaseSealed(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			raw := seal.GenerateKEK()
			kek, err := seal.NewKEK(raw)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "kek")
			if err := os.WriteFile(file, []byte(seal.FormatKEK(raw)), 0o600); err != nil {
				t.Fatal(err)
			}
			st, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(kek)})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Import(context.Background(), []ksm.Key{
				{SerialNr: 0, PublicName: ciPub, InternalName: ciUID, AESKey: ciAES, Created: "0", Active: true, Hardware: true},
				{SerialNr: 1, PublicName: "cccccccccccb", InternalName: ciUID, AESKey: ciAES, Created: "0", Active: false, Hardware: true},
			}); err != nil {
				t.Fatal(err)
			}
			st.Close()

			for _, pub := range []string{ciPub, "cccccccccccb"} {
				out, stderr, code := runCmd(t, nil, "--db", dsn, "--kek-file", file, "--public-id", pub, "--counter", "5")
				if tok := decrypt(t, out, pub); code != 0 || tok.Counter != 5 {
					t.Errorf("sealed key %s: exit %d, token %+v, stderr %q", pub, code, tok, stderr)
				}
			}
			out, stderr, code := runCmd(t, nil, "--db", dsn, "--public-id", ciPub)
			if code != 1 || out != "" || !strings.Contains(stderr, "no KEK is configured") {
				t.Errorf("sealed key without a KEK: exit %d, stdout %q, stderr %q; want 1 and an error", code, out, stderr)
			}
			_, stderr, code = runCmd(t, nil, "--kek-file", file, ciAES, ciUID, "0001", "0000", "00", "00")
			if code != 2 || !strings.Contains(stderr, "--kek-file goes with the database form") {
				t.Errorf("--kek-file with AESKEY …: exit %d, stderr %q; want a usage error", code, stderr)
			}
		})
	}
}
