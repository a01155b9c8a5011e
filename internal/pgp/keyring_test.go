package pgp_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/pgp/pgptest"
)

func TestReadKeyring(t *testing.T) {
	w := world(t)
	armored := must[[]byte](t)(w.Keyring(true, []pgptest.Key{w.KSMKey}, []pgptest.Key{w.Signer, w.SubSigner}))
	binary := must[[]byte](t)(w.Keyring(false, []pgptest.Key{w.KSMKey}, []pgptest.Key{w.Signer}))
	msg := must[[]byte](t)(w.Gen.Message(batch, &w.Signer, true, w.KSMKey))
	tests := []struct {
		name string
		data []byte
		want int // keys; 0: an error
	}{
		{"armored-concatenated", armored, 3},
		{"armored-with-leading-text", append([]byte("Comment: exported\r\n\r\n"), armored...), 3},
		{"armored-crlf", []byte(strings.ReplaceAll(string(armored), "\n", "\r\n")), 3},
		{"binary", binary, 2},
		{"message-not-keys", msg, 0},
		{"empty", nil, 0},
		{"text", []byte("hello\n"), 0},
		{"truncated-armor", armored[:len(armored)/3], 0},
	}
	for _, tt := range tests {
		kr, err := pgp.ReadKeyring(tt.data)
		switch {
		case tt.want == 0 && err == nil:
			t.Errorf("ReadKeyring(%s) = %d keys, want an error", tt.name, kr.Len())
		case tt.want != 0 && err != nil:
			t.Errorf("ReadKeyring(%s): %v", tt.name, err)
		case tt.want != 0 && kr.Len() != tt.want:
			t.Errorf("ReadKeyring(%s) = %d keys, want %d", tt.name, kr.Len(), tt.want)
		}
	}
}

func TestLoadKeyring(t *testing.T) {
	w := world(t)
	dir := t.TempDir()
	sec := filepath.Join(dir, "ksm-secret.gpg")
	pub := filepath.Join(dir, "signer-public.asc")
	if err := os.WriteFile(sec, must[[]byte](t)(w.Gen.ExportSecret(w.KSMKey, false)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, must[[]byte](t)(w.Gen.ExportPublic(w.Signer, true)), 0o600); err != nil {
		t.Fatal(err)
	}
	kr, err := pgp.LoadKeyring(sec, pub)
	if err != nil {
		t.Fatal(err)
	}
	desc := kr.Describe()
	if len(desc) != 2 || !strings.HasPrefix(desc[0], "sec "+w.KSMKey.Fingerprint+" YK-KSM Test <ksm@example.org>") ||
		!strings.HasPrefix(desc[1], "pub "+w.Signer.Fingerprint+" Key Generator <gen@example.org>") {
		t.Errorf("Describe() = %q", desc)
	}
	if _, err := pgp.LoadKeyring(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKeyring(missing) = %v, want %v", err, os.ErrNotExist)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, err := pgp.LoadKeyring(empty); err == nil || !strings.Contains(err.Error(), empty) {
		t.Errorf("LoadKeyring(empty) = %v, want an error naming the file", err)
	}
}

func FuzzReadKeyring(f *testing.F) {
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQ==\n-----END PGP PUBLIC KEY BLOCK-----\n"))
	f.Add([]byte("-----BEGIN PGP PUBLIC KEY BLOCK-----\n-----BEGIN PGP "))
	f.Add([]byte{0x99, 0x00, 0x01})
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, data []byte) {
		kr, err := pgp.ReadKeyring(data)
		if (err == nil) != (kr != nil) || err == nil && kr.Len() == 0 {
			t.Fatalf("ReadKeyring = %v, %v", kr, err)
		}
	})
}
