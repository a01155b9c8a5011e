package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/pgp/pgptest"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

var (
	worldOnce sync.Once
	worldVal  *pgptest.World
	worldErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if worldVal != nil {
		worldVal.Close()
	}
	os.Exit(code)
}

func world(t *testing.T) *pgptest.World {
	t.Helper()
	if !pgptest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg not found on PATH (CI=true, so this is a failure)")
		}
		t.Skip("gpg not found on PATH")
	}
	worldOnce.Do(func() { worldVal, worldErr = pgptest.NewWorld() })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return worldVal
}

var stored = []ksm.Key{
	{SerialNr: 2, PublicName: "cccccccccccd", Created: "2009-02-24T17:41:57", InternalName: "ba9876543210",
		AESKey: "ffeeddccbbaa99887766554433221100", LockCode: "", Creator: "497E5F2E", Active: false, Hardware: true},
	{SerialNr: 1, PublicName: "cccccccccccb", Created: "2009-02-24T17:41:57", InternalName: "0123456789ab",
		AESKey: "00112233445566778899aabbccddeeff", LockCode: "000000000000", Creator: "497E5F2E", Active: true, Hardware: true},
	{SerialNr: 1, PublicName: "vvvvvvvvvvvv", Created: "", InternalName: "abcdefabcdef",
		AESKey: "0f0e0d0c0b0a09080706050403020100", LockCode: "010203040506", Creator: "x", Active: true, Hardware: false},
}

const wantPlain = "1,cccccccccccb,0123456789ab,00112233445566778899aabbccddeeff,000000000000,2009-02-24T17:41:57,\n" +
	"1,vvvvvvvvvvvv,abcdefabcdef,0f0e0d0c0b0a09080706050403020100,010203040506,,\n" +
	"2,cccccccccccd,ba9876543210,ffeeddccbbaa99887766554433221100,,2009-02-24T17:41:57,\n"

const wantVerbose = "# serialnr=1 publicname=cccccccccccb internalname=0123456789ab aeskey=00112233445566778899aabbccddeeff lockcode=000000000000 created=2009-02-24T17:41:57\n" +
	"1,cccccccccccb,0123456789ab,00112233445566778899aabbccddeeff,000000000000,2009-02-24T17:41:57,\n" +
	"# serialnr=1 publicname=vvvvvvvvvvvv internalname=abcdefabcdef aeskey=0f0e0d0c0b0a09080706050403020100 lockcode=010203040506 created=\n" +
	"1,vvvvvvvvvvvv,abcdefabcdef,0f0e0d0c0b0a09080706050403020100,010203040506,,\n" +
	"# serialnr=2 publicname=cccccccccccd internalname=ba9876543210 aeskey=ffeeddccbbaa99887766554433221100 lockcode= created=2009-02-24T17:41:57\n" +
	"2,cccccccccccd,ba9876543210,ffeeddccbbaa99887766554433221100,,2009-02-24T17:41:57,\n"

func fill(t *testing.T, dsn string, keys []ksm.Key) {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Import(context.Background(), keys); err != nil {
		t.Fatal(err)
	}
}

func runExport(args ...string) (stdout string, err error) {
	var out, errOut bytes.Buffer
	err = run(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(string) string { return "" }})
	return out.String(), err
}

func TestExport(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			fill(t, dsn, nil) // creates the table
			out, err := runExport("--database", dsn)
			if err != nil || out != "No data?!\n\n" {
				t.Errorf("empty: run = %q, %v, want %q", out, err, "No data?!\n\n")
			}
			fill(t, dsn, stored)
			if out, err := runExport("--database", dsn); err != nil || out != wantPlain {
				t.Errorf("run = %v\n%s\nwant\n%s", err, out, wantPlain)
			}
			if out, err := runExport("-v", "--db", dsn); err != nil || out != wantVerbose {
				t.Errorf("run -v = %v\n%s\nwant\n%s", err, out, wantVerbose)
			}
			// What export prints, keyprov reads back.
			recs, err := keyprov.Parse(strings.NewReader(wantVerbose))
			if err != nil || len(recs) != 3 {
				t.Fatalf("keyprov.Parse(export) = %d records, %v", len(recs), err)
			}
		})
	}
}

func TestExportMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	if _, err := runExport("--database", "sqlite:"+missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("export of a missing SQLite file = %v, want %v", err, os.ErrNotExist)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("export created %s", missing)
	}
}

func TestExportEncrypted(t *testing.T) {
	w := world(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ksm2Public := write("ksm2-public.asc", must(w.Gen.ExportPublic(w.RSA, true)))
	ksm1Secret := write("ksm1-secret.gpg", must(w.Gen.ExportSecret(w.KSMKey, false)))
	protSecret := write("protected-secret.asc", must(w.Gen.ExportSecret(w.Protected, true)))
	passFile := write("pass", []byte(w.Protected.Passphrase+"\n"))
	wrongPass := write("wrong", []byte("nope\n"))
	dsn := testdb.SQLite(t)
	fill(t, dsn, stored)

	// The receiving KSM: its secret key, and the sender's public key.
	receiver, err := pgp.ReadKeyring(must(w.Keyring(true, []pgptest.Key{w.RSA}, []pgptest.Key{w.KSMKey, w.Protected})))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		signer pgptest.Key
		want   error
	}{
		{"plain-signer", []string{"--encrypt-to", ksm2Public, "--sign-with", ksm1Secret}, w.KSMKey, nil},
		{"protected-signer", []string{"--encrypt-to", ksm2Public, "--sign-with", protSecret, "--passphrase-file", passFile}, w.Protected, nil},
		{"wrong-passphrase", []string{"--encrypt-to", ksm2Public, "--sign-with", protSecret, "--passphrase-file", wrongPass}, w.Protected, pgp.ErrPassphrase},
		{"secret-key-as-recipient-ok-public-as-signer-not", []string{"--encrypt-to", ksm2Public, "--sign-with", ksm2Public}, w.RSA, pgp.ErrNoSigningKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runExport(append(tt.args, "--database", dsn)...)
			if tt.want != nil {
				if !errors.Is(err, tt.want) || out != "" {
					t.Errorf("run = %q, %v, want no output and %v", out, err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(out, "-----BEGIN PGP MESSAGE-----\n") || strings.Contains(out, "00112233445566778899aabbccddeeff") {
				t.Fatalf("output is not an armored message:\n%s", out)
			}
			for name, d := range map[string]pgp.Decrypter{
				"native": &pgp.Native{Keyring: receiver},
				"gpg":    &pgp.GPG{Home: w.Gen.Dir},
			} {
				r, err := d.Decrypt(context.Background(), []byte(out))
				if err != nil {
					t.Errorf("%s: Decrypt: %v", name, err)
					continue
				}
				if string(r.Plaintext) != wantPlain || !r.Encrypted || r.Signer != tt.signer.SigningFingerprint {
					t.Errorf("%s: Decrypt = %q, encrypted %v, signer %s; want %q, true, %s", name, r.Plaintext, r.Encrypted, r.Signer, wantPlain, tt.signer.SigningFingerprint)
				}
			}
		})
	}
	empty := testdb.SQLite(t)
	fill(t, empty, nil)
	if _, err := runExport("--encrypt-to", ksm2Public, "--sign-with", ksm1Secret, "--database", empty); err == nil || !strings.Contains(err.Error(), "no keys") {
		t.Errorf("encrypted export of an empty database = %v, want an error", err)
	}
}

// must returns b, panicking on err: for gpg exports in test set-up.
func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the error; "" for --help
	}{
		{[]string{"--help"}, ""},
		{[]string{"-h"}, ""},
		{[]string{"extra"}, "unexpected argument"},
		{[]string{"--encrypt-to", "k.asc"}, "--sign-with"},
		{[]string{"--sign-with", "k.asc"}, "--encrypt-to"},
		{[]string{"--passphrase-file", "p"}, "--sign-with"},
		{[]string{"--bogus"}, "unknown flag"},
	}
	for _, tt := range tests {
		out, err := runExport(tt.args...)
		if tt.want == "" {
			if !errors.Is(err, pflag.ErrHelp) || !strings.HasPrefix(out, "Usage: ykksm-export") {
				t.Errorf("run(%q) = %v, stdout %.30q; want help", tt.args, err, out)
			}
			continue
		}
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want a usage error about %q", tt.args, err, tt.want)
		}
	}
}
