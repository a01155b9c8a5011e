package pgp_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/pgp/pgptest"
)

func TestEncrypt(t *testing.T) {
	w := world(t)
	keyring := func(armored bool, secret, public []pgptest.Key) *pgp.Keyring {
		return must[*pgp.Keyring](t)(pgp.ReadKeyring(must[[]byte](t)(w.Keyring(armored, secret, public))))
	}
	tests := []struct {
		name   string
		to     []pgptest.Key
		signer pgptest.Key
	}{
		{"ed25519", []pgptest.Key{w.KSMKey}, w.Signer},
		{"rsa-recipient-subkey-signer", []pgptest.Key{w.RSA}, w.SubSigner},
		{"two-recipients", []pgptest.Key{w.KSMKey, w.RSA}, w.Signer},
	}
	for _, tt := range tests {
		var msg bytes.Buffer
		to := keyring(false, nil, tt.to)
		signer := keyring(true, []pgptest.Key{tt.signer}, nil)
		if err := pgp.Encrypt(&msg, batch, to, signer, nil); err != nil {
			t.Fatalf("%s: Encrypt: %v", tt.name, err)
		}
		if !bytes.HasPrefix(msg.Bytes(), []byte("-----BEGIN PGP MESSAGE-----")) {
			t.Errorf("%s: Encrypt wrote %.40q, want an armored message", tt.name, msg.Bytes())
		}
		// gpg in the generator's home (all keys) and the KSM's ways.
		ds := decrypters(t, w, "")
		ds["gpg-generator-home"] = &pgp.GPG{Home: w.Gen.Dir}
		for name, d := range ds {
			r, err := d.Decrypt(context.Background(), msg.Bytes())
			if err != nil {
				t.Errorf("%s: %s: Decrypt: %v", tt.name, name, err)
				continue
			}
			if !bytes.Equal(r.Plaintext, batch) || !r.Encrypted || r.Signer != tt.signer.SigningFingerprint {
				t.Errorf("%s: %s: Decrypt = %q, encrypted %v, signer %s, want %q, true, %s",
					tt.name, name, r.Plaintext, r.Encrypted, r.Signer, batch, tt.signer.SigningFingerprint)
			}
		}
	}
}

func TestEncryptProtectedSigner(t *testing.T) {
	w := world(t)
	to := must[*pgp.Keyring](t)(pgp.ReadKeyring(must[[]byte](t)(w.Gen.ExportPublic(w.KSMKey, true))))
	pass := func(p string) pgp.PassphraseFunc {
		return func(string) ([]byte, error) { return []byte(p), nil }
	}
	tests := []struct {
		name string
		pass pgp.PassphraseFunc
		want error
	}{
		{"right", pass(w.Protected.Passphrase), nil},
		{"wrong", pass("wrong"), pgp.ErrPassphrase},
		{"missing", nil, pgp.ErrNoPassphrase},
	}
	for _, tt := range tests {
		signer := must[*pgp.Keyring](t)(pgp.ReadKeyring(must[[]byte](t)(w.Gen.ExportSecret(w.Protected, true))))
		var msg bytes.Buffer
		err := pgp.Encrypt(&msg, batch, to, signer, tt.pass)
		if !errors.Is(err, tt.want) {
			t.Errorf("Encrypt(%s passphrase) = %v, want %v", tt.name, err, tt.want)
		}
		if err != nil {
			continue
		}
		r, err := (&pgp.GPG{Home: w.Gen.Dir}).Decrypt(context.Background(), msg.Bytes())
		if err != nil || r.Signer != w.Protected.SigningFingerprint {
			t.Errorf("gpg Decrypt = %v, %v, want signer %s", r, err, w.Protected.SigningFingerprint)
		}
	}
}

func TestEncryptErrors(t *testing.T) {
	w := world(t)
	pub := must[*pgp.Keyring](t)(pgp.ReadKeyring(must[[]byte](t)(w.Gen.ExportPublic(w.KSMKey, true))))
	var out bytes.Buffer
	if err := pgp.Encrypt(&out, batch, pub, pub, nil); !errors.Is(err, pgp.ErrNoSigningKey) {
		t.Errorf("Encrypt signed with a public key = %v, want %v", err, pgp.ErrNoSigningKey)
	}
	if err := pgp.Encrypt(&out, batch, nil, pub, nil); !errors.Is(err, pgp.ErrNoKeys) {
		t.Errorf("Encrypt to nobody = %v, want %v", err, pgp.ErrNoKeys)
	}
}
