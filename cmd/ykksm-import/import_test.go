package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/pgp/pgptest"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// fixture is the gpg world plus the KSM's key files, made once.
type fixture struct {
	*pgptest.World
	dir                 string
	ksmSecret, signers  string // armored: KSM secret key; Signer and SubSigner public keys
	protSecret, ksmBin  string // Protected's secret key (armored); KSM secret key (binary)
	passFile, wrongPass string
}

var (
	fixOnce sync.Once
	fix     *fixture
	fixErr  error
)

func TestMain(m *testing.M) {
	// Never prompt a developer's terminal: no passphrase given means none.
	ttyPath = "/nonexistent/tty"
	code := m.Run()
	if fix != nil {
		fix.Close()
		os.RemoveAll(fix.dir)
	}
	os.Exit(code)
}

func setup(t *testing.T) *fixture {
	t.Helper()
	if !pgptest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg not found on PATH (CI=true, so this is a failure)")
		}
		t.Skip("gpg not found on PATH")
	}
	fixOnce.Do(func() { fix, fixErr = newFixture() })
	if fixErr != nil {
		t.Fatal(fixErr)
	}
	return fix
}

func newFixture() (*fixture, error) {
	w, err := pgptest.NewWorld()
	if err != nil {
		return nil, err
	}
	f := &fixture{World: w}
	if f.dir, err = os.MkdirTemp("", "ykimport"); err != nil {
		return f, err
	}
	files := []struct {
		path   *string
		name   string
		armor  bool
		secret []pgptest.Key
		public []pgptest.Key
	}{
		{&f.ksmSecret, "ksm-secret.asc", true, []pgptest.Key{w.KSMKey}, nil},
		{&f.ksmBin, "ksm-secret.gpg", false, []pgptest.Key{w.KSMKey}, nil},
		{&f.protSecret, "protected-secret.asc", true, []pgptest.Key{w.Protected}, nil},
		{&f.signers, "signers.asc", true, nil, []pgptest.Key{w.Signer, w.SubSigner}},
	}
	for _, file := range files {
		data, err := w.Keyring(file.armor, file.secret, file.public)
		if err != nil {
			return f, err
		}
		*file.path = filepath.Join(f.dir, file.name)
		if err := os.WriteFile(*file.path, data, 0o600); err != nil {
			return f, err
		}
	}
	f.passFile = filepath.Join(f.dir, "pass")
	f.wrongPass = filepath.Join(f.dir, "wrong")
	if err := os.WriteFile(f.passFile, []byte(w.Protected.Passphrase+"\n"), 0o600); err != nil {
		return f, err
	}
	if err := os.WriteFile(f.wrongPass, []byte("wrong\n"), 0o600); err != nil {
		return f, err
	}
	return f, nil
}

// keyFile is a small key batch: line 3 has a created time, line 4 none.
const keyFile = "# ykksm 1\r\n" +
	"# serialnr,identity,internaluid,aeskey,lockpw,created,accessed[,progflags]\r\n" +
	"1,cccccccccccb,0123456789ab,00112233445566778899aabbccddeeff,000000000000,2009-02-24T17:41:57,\r\n" +
	"2,cccccccccccd,ba9876543210,ffeeddccbbaa99887766554433221100,,,\r\n" +
	"# the end\r\n"

type result struct {
	stdout, stderr string
	err            error
}

func runImport(t *testing.T, stdin []byte, getenv map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := cli.Env{Args: args, Stdin: bytes.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return getenv[k] }}
	err := run(context.Background(), env)
	return result{stdout.String(), stderr.String(), err}
}

func keys(t *testing.T, dsn string) []ksm.Key {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []ksm.Key
	if err := s.Each(context.Background(), func(k ksm.Key) error { out = append(out, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

var nowRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$`)

func TestImport(t *testing.T) {
	f := setup(t)
	msg, err := f.Gen.Message([]byte(keyFile), &f.Signer, true, f.KSMKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			r := runImport(t, msg, nil, "--keyring", f.ksmSecret, "--keyring", f.signers, "--database", dsn)
			if r.err != nil {
				t.Fatalf("run: %v\n%s", r.err, r.stderr)
			}
			want := fmt.Sprintf("encrypted to: %s\nsigned by: %s (fingerprint %s, Key Generator <gen@example.org>)\nimported 2 keys\n",
				f.KSMKey.EncryptionKeyID(), f.Signer.Creator(), f.Signer.SigningFingerprint)
			if r.stdout != want || r.stderr != "" {
				t.Errorf("stdout, stderr =\n%q, %q\nwant\n%q, %q", r.stdout, r.stderr, want, "")
			}
			got := keys(t, dsn)
			if len(got) != 2 {
				t.Fatalf("imported %d keys, want 2: %+v", len(got), got)
			}
			want0 := ksm.Key{SerialNr: 1, PublicName: "cccccccccccb", Created: "2009-02-24T17:41:57", InternalName: "0123456789ab",
				AESKey: "00112233445566778899aabbccddeeff", LockCode: "000000000000", Creator: f.Signer.Creator(), Active: true, Hardware: true}
			if got[0] != want0 {
				t.Errorf("key 1 = %+v, want %+v", got[0], want0)
			}
			if k := got[1]; k.PublicName != "cccccccccccd" || k.LockCode != "" || !nowRE.MatchString(k.Created) || k.Creator != f.Signer.Creator() {
				t.Errorf("key 2 = %+v, want cccccccccccd, no lock code, created now, creator %s", k, f.Signer.Creator())
			}
			// The same batch again: refused, naming the key; nothing changes.
			r = runImport(t, msg, nil, "--keyring", f.ksmSecret, "--keyring", f.signers, "--database", dsn)
			if !errors.Is(r.err, ksm.ErrDuplicate) || !strings.Contains(r.err.Error(), "cccccccccccb") {
				t.Errorf("re-import: %v, want %v naming cccccccccccb", r.err, ksm.ErrDuplicate)
			}
			if again := keys(t, dsn); len(again) != 2 || again[0] != got[0] || again[1] != got[1] {
				t.Errorf("re-import changed the keys: %+v", again)
			}
		})
	}
}

func TestImportModes(t *testing.T) {
	f := setup(t)
	plain := []byte(keyFile)
	message := func(signer *pgptest.Key, armor bool, to ...pgptest.Key) []byte {
		m, err := f.Gen.Message(plain, signer, armor, to...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	gpgEnv := map[string]string{"GNUPGHOME": f.KSM.Dir}
	tests := []struct {
		name    string
		msg     []byte
		env     map[string]string
		args    []string
		creator string // want
		stderr  string // want
	}{
		{"binary-message-binary-keyring", message(&f.Signer, false, f.KSMKey), nil,
			[]string{"--keyring", f.ksmBin, "--keyring", f.signers}, f.Signer.Creator(), ""},
		{"subkey-signer", message(&f.SubSigner, true, f.KSMKey), nil,
			[]string{"--keyring", f.ksmSecret, "--keyring", f.signers}, f.SubSigner.Creator(), ""},
		{"creator-flag", message(&f.Signer, true, f.KSMKey), nil,
			[]string{"--keyring", f.ksmSecret, "--keyring", f.signers, "--creator", "batch7"}, "batch7", ""},
		{"signed-only", message(&f.Signer, true), nil,
			[]string{"--keyring", f.ksmSecret, "--keyring", f.signers}, f.Signer.Creator(), "warning: the input was signed but not encrypted\n"},
		{"protected-key", message(&f.Signer, true, f.Protected), nil,
			[]string{"--keyring", f.protSecret, "--keyring", f.signers, "--passphrase-file", f.passFile}, f.Signer.Creator(), ""},
		{"gpg", message(&f.SubSigner, true, f.KSMKey), gpgEnv, []string{"--gpg"}, f.SubSigner.Creator(), ""},
		{"gpg-protected-key", message(&f.Signer, false, f.Protected), gpgEnv,
			[]string{"--gpg", "--passphrase-file", f.passFile}, f.Signer.Creator(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := testdb.SQLite(t)
			r := runImport(t, tt.msg, tt.env, append(tt.args, "--database", dsn)...)
			if r.err != nil {
				t.Fatalf("run: %v\n%s", r.err, r.stderr)
			}
			if r.stderr != tt.stderr {
				t.Errorf("stderr = %q, want %q", r.stderr, tt.stderr)
			}
			if !strings.HasSuffix(r.stdout, "imported 2 keys\n") {
				t.Errorf("stdout = %q, want it to end in %q", r.stdout, "imported 2 keys\n")
			}
			got := keys(t, dsn)
			if len(got) != 2 || got[0].Creator != tt.creator || got[1].Creator != tt.creator {
				t.Errorf("keys = %+v, want 2 with creator %s", got, tt.creator)
			}
		})
	}
}

func TestImportRefused(t *testing.T) {
	f := setup(t)
	message := func(plain string, signer *pgptest.Key, to ...pgptest.Key) []byte {
		m, err := f.Gen.Message([]byte(plain), signer, true, to...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := message(keyFile, &f.Signer, f.KSMKey)
	native := []string{"--keyring", f.ksmSecret, "--keyring", f.signers}
	gpgEnv := map[string]string{"GNUPGHOME": f.KSM.Dir}
	malformed := strings.Replace(keyFile, "ffeeddccbbaa99887766554433221100", "ffeeddccbbaa9988776655443322110", 1) +
		"3,cccccccccccc,0123456789ab,00112233445566778899aabbccddeeff,000000000000,,\n3 blah\n"
	tests := []struct {
		name string
		msg  []byte
		env  map[string]string
		args []string
		want []string // in the error
	}{
		{"unsigned", message(keyFile, nil, f.KSMKey), nil, native, []string{"not signed"}},
		{"unsigned-gpg", message(keyFile, nil, f.KSMKey), gpgEnv, []string{"--gpg"}, []string{"not signed"}},
		{"stranger", message(keyFile, &f.Stranger, f.KSMKey), nil, native, []string{"not trusted"}},
		{"stranger-gpg", message(keyFile, &f.Stranger, f.KSMKey), gpgEnv, []string{"--gpg"}, []string{"not trusted"}},
		{"no-signer-keys", good, nil, []string{"--keyring", f.ksmSecret}, []string{"not trusted"}},
		{"wrong-recipient", message(keyFile, &f.Signer, f.Stranger), nil, native, []string{"no secret key"}},
		{"truncated", good[:len(good)/2], nil, native, []string{"malformed"}},
		{"truncated-gpg", good[:len(good)/2], gpgEnv, []string{"--gpg"}, []string{"malformed"}},
		{"wrong-passphrase", message(keyFile, &f.Signer, f.Protected), nil,
			[]string{"--keyring", f.protSecret, "--keyring", f.signers, "--passphrase-file", f.wrongPass}, []string{"wrong passphrase"}},
		{"no-passphrase-no-tty", message(keyFile, &f.Signer, f.Protected), nil,
			[]string{"--keyring", f.protSecret, "--keyring", f.signers}, []string{"passphrase", "--passphrase-file"}},
		{"malformed-lines", message(malformed, &f.Signer, f.KSMKey), nil, native,
			[]string{"key file refused", "line 4: aesKey", "line 7"}},
		{"no-keys", message("# ykksm 1\n# the end\n", &f.Signer, f.KSMKey), nil, native, []string{"no keys"}},
		{"empty-input", nil, nil, native, []string{"no input"}},
		{"plaintext-input", []byte(keyFile), nil, native, []string{"malformed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dsn := testdb.SQLite(t)
			r := runImport(t, tt.msg, tt.env, append(tt.args, "--database", dsn)...)
			if r.err == nil {
				t.Fatalf("run succeeded: %s", r.stdout)
			}
			if code := cli.Report("ykksm-import", &bytes.Buffer{}, r.err); code != cli.ExitFailure {
				t.Errorf("exit code %d, want %d", code, cli.ExitFailure)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.err.Error(), w) {
					t.Errorf("error %q does not contain %q", r.err, w)
				}
			}
			if strings.Contains(r.stdout, "imported") {
				t.Errorf("stdout = %q", r.stdout)
			}
			if _, err := os.Stat(strings.TrimPrefix(dsn, "sqlite:")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("database file exists after a refused import (%v)", err)
			}
		})
	}
}

func TestImportDryRunAndVerbose(t *testing.T) {
	f := setup(t)
	msg, err := f.Gen.Message([]byte(keyFile), &f.Signer, true, f.KSMKey)
	if err != nil {
		t.Fatal(err)
	}
	dsn := testdb.SQLite(t)
	r := runImport(t, msg, nil, "--keyring", f.ksmSecret, "--keyring", f.signers, "--database", dsn, "--dry-run", "-v")
	if r.err != nil {
		t.Fatal(r.err)
	}
	for _, want := range []string{
		"keyring: sec " + f.KSMKey.Fingerprint + " YK-KSM Test <ksm@example.org>\n",
		"Verification output:\n",
		"VALIDSIG " + f.Signer.SigningFingerprint,
		"line 3: serialnr 1 publicname cccccccccccb\n",
		"line 4: serialnr 2 publicname cccccccccccd\n",
		"dry run: 2 keys checked, nothing imported\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("stdout does not contain %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "00112233445566778899aabbccddeeff") {
		t.Errorf("verbose output shows an AES key:\n%s", r.stdout)
	}
	if _, err := os.Stat(strings.TrimPrefix(dsn, "sqlite:")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("--dry-run created the database (%v)", err)
	}
	r = runImport(t, msg, map[string]string{"GNUPGHOME": f.KSM.Dir}, "--gpg", "--dry-run", "--verbose")
	if r.err != nil || !strings.Contains(r.stdout, "Verification output:\n[GNUPG:] ") || !strings.Contains(r.stdout, "[GNUPG:] VALIDSIG "+f.Signer.SigningFingerprint) {
		t.Errorf("--gpg --verbose: %v\n%s", r.err, r.stdout)
	}
}

func TestUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string // in the error; "" for --help
	}{
		{[]string{"--help"}, ""},
		{[]string{"-h"}, ""},
		{nil, "--keyring"},
		{[]string{"--gpg", "--keyring", "x"}, "exclude"},
		{[]string{"--gpg", "keys.asc"}, "unexpected argument"},
		{[]string{"--gpg", "--creator", "123456789"}, "--creator"},
		{[]string{"--gpg", "--creator", ""}, "--creator"},
		{[]string{"--gpg", "--bogus"}, "unknown flag"},
		{[]string{"--gpg", "--database", "DBI:Pg:dbname=ykksm"}, "Pg"},
	}
	for _, tt := range tests {
		r := runImport(t, nil, nil, tt.args...)
		if tt.want == "" {
			if !errors.Is(r.err, pflag.ErrHelp) || !strings.HasPrefix(r.stdout, "Usage: ykksm-import") {
				t.Errorf("run(%q) = %v, stdout %.30q; want help", tt.args, r.err, r.stdout)
			}
			continue
		}
		if !errors.Is(r.err, cli.ErrUsage) || !strings.Contains(r.err.Error(), tt.want) {
			t.Errorf("run(%q) = %v, want a usage error about %q", tt.args, r.err, tt.want)
		}
	}
}
