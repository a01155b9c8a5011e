package pgp_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/pgp/pgptest"
)

var batch = []byte("# ykksm 1\n1,cccccccccccb,0123456789ab,00112233445566778899aabbccddeeff,000000000000,2009-02-24T17:41:57,\n# the end\n")

// decrypters returns every way to open a message with the KSM's keys: the
// native reader on armored and on binary key exports, and gpg on the KSM's
// home. pass is the passphrase to give ("" gives none).
func decrypters(t *testing.T, w *pgptest.World, pass string) map[string]pgp.Decrypter {
	t.Helper()
	secret := []pgptest.Key{w.KSMKey, w.RSA, w.Protected}
	public := []pgptest.Key{w.Signer, w.SubSigner}
	var passFile string
	var passFn pgp.PassphraseFunc
	if pass != "" {
		passFile = filepath.Join(t.TempDir(), "pass")
		if err := os.WriteFile(passFile, []byte(pass+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		passFn = pgp.PassphraseFile(passFile)
	}
	out := map[string]pgp.Decrypter{
		"gpg": &pgp.GPG{Home: w.KSM.Dir, PassphraseFile: passFile},
	}
	for _, armored := range []bool{true, false} {
		data := must[[]byte](t)(w.Keyring(armored, secret, public))
		kr := must[*pgp.Keyring](t)(pgp.ReadKeyring(data))
		if kr.Len() != len(secret)+len(public) {
			t.Fatalf("ReadKeyring(armored=%v) has %d keys, want %d", armored, kr.Len(), len(secret)+len(public))
		}
		name := "native-binary-keyring"
		if armored {
			name = "native-armored-keyring"
		}
		out[name] = &pgp.Native{Keyring: kr, Passphrase: passFn}
	}
	return out
}

func flipByte(msg []byte, at int) []byte {
	out := bytes.Clone(msg)
	out[at] ^= 0x01
	return out
}

// flipArmor changes one base64 character in the middle of an armored body.
func flipArmor(msg []byte) []byte {
	out := bytes.Clone(msg)
	lines := bytes.Split(out, []byte("\n"))
	line := lines[len(lines)/2]
	c := &line[len(line)/2]
	if *c == 'A' {
		*c = 'B'
	} else {
		*c = 'A'
	}
	return out
}

func TestDecrypt(t *testing.T) {
	w := world(t)
	gen := w.Gen
	msg := func(plain []byte, signer *pgptest.Key, armor bool, to ...pgptest.Key) func(t *testing.T) []byte {
		return func(t *testing.T) []byte {
			t.Helper()
			return must[[]byte](t)(gen.Message(plain, signer, armor, to...))
		}
	}
	good := msg(batch, &w.Signer, true, w.KSMKey)
	goodBin := msg(batch, &w.Signer, false, w.KSMKey)
	tests := []struct {
		name      string
		msg       func(t *testing.T) []byte
		pass      string
		want      error // nil: accepted
		signer    pgptest.Key
		encrypted bool
		encTo     []string
	}{
		{name: "armored", msg: good, signer: w.Signer, encrypted: true, encTo: []string{w.KSMKey.EncryptionKeyID()}},
		{name: "binary", msg: goodBin, signer: w.Signer, encrypted: true, encTo: []string{w.KSMKey.EncryptionKeyID()}},
		{name: "rsa-recipient-subkey-signer", msg: msg(batch, &w.SubSigner, true, w.RSA), signer: w.SubSigner,
			encrypted: true, encTo: []string{w.RSA.EncryptionKeyID()}},
		{name: "two-recipients-one-unknown", msg: msg(batch, &w.Signer, true, w.Stranger, w.KSMKey), signer: w.Signer,
			encrypted: true, encTo: []string{w.Stranger.EncryptionKeyID(), w.KSMKey.EncryptionKeyID()}},
		{name: "signed-by-the-ksm-key-itself", msg: msg(batch, &w.KSMKey, true, w.KSMKey), signer: w.KSMKey,
			encrypted: true, encTo: []string{w.KSMKey.EncryptionKeyID()}},
		{name: "signed-only", msg: msg(batch, &w.Signer, true), signer: w.Signer},
		{name: "protected-right-passphrase", msg: msg(batch, &w.Signer, true, w.Protected), pass: w.Protected.Passphrase,
			signer: w.Signer, encrypted: true, encTo: []string{w.Protected.EncryptionKeyID()}},

		{name: "protected-wrong-passphrase", msg: msg(batch, &w.Signer, true, w.Protected), pass: "wrong", want: pgp.ErrPassphrase},
		{name: "encrypted-not-signed", msg: msg(batch, nil, true, w.KSMKey), want: pgp.ErrNotSigned},
		{name: "encrypted-not-signed-binary", msg: msg(batch, nil, false, w.KSMKey), want: pgp.ErrNotSigned},
		{name: "signed-by-stranger", msg: msg(batch, &w.Stranger, true, w.KSMKey), want: pgp.ErrUnknownSigner},
		{name: "signed-only-by-stranger", msg: msg(batch, &w.Stranger, false), want: pgp.ErrUnknownSigner},
		{name: "wrong-recipient", msg: msg(batch, &w.Signer, true, w.Stranger), want: pgp.ErrNoSecretKey},
		{name: "corrupt-binary", msg: func(t *testing.T) []byte { m := goodBin(t); return flipByte(m, len(m)*2/3) }, want: pgp.ErrMalformed},
		{name: "corrupt-armored", msg: func(t *testing.T) []byte { return flipArmor(good(t)) }, want: pgp.ErrMalformed},
		{name: "truncated-binary", msg: func(t *testing.T) []byte { m := goodBin(t); return m[:len(m)/2] }, want: pgp.ErrMalformed},
		{name: "truncated-armored", msg: func(t *testing.T) []byte { m := good(t); return m[:len(m)/2] }, want: pgp.ErrMalformed},
		{name: "empty", msg: func(*testing.T) []byte { return nil }, want: pgp.ErrMalformed},
		{name: "garbage", msg: func(*testing.T) []byte { return []byte("1,cccccccccccb,not,pgp\n") }, want: pgp.ErrMalformed},
		{name: "public-key-block", msg: func(t *testing.T) []byte { return must[[]byte](t)(gen.ExportPublic(w.Signer, true)) }, want: pgp.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.msg(t)
			for name, d := range decrypters(t, w, tt.pass) {
				r, err := d.Decrypt(context.Background(), m)
				if tt.want != nil {
					if !errors.Is(err, tt.want) {
						t.Errorf("%s: Decrypt = %v, want %v", name, err, tt.want)
					}
					if r != nil {
						t.Errorf("%s: Decrypt returned a result with error %v", name, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: Decrypt: %v", name, err)
					continue
				}
				if !bytes.Equal(r.Plaintext, batch) {
					t.Errorf("%s: Plaintext = %q, want %q", name, r.Plaintext, batch)
				}
				if r.Signer != tt.signer.SigningFingerprint || r.SignerPrimary != tt.signer.Fingerprint {
					t.Errorf("%s: Signer, SignerPrimary = %s, %s, want %s, %s", name, r.Signer, r.SignerPrimary, tt.signer.SigningFingerprint, tt.signer.Fingerprint)
				}
				if r.Creator() != tt.signer.Creator() {
					t.Errorf("%s: Creator() = %s, want %s", name, r.Creator(), tt.signer.Creator())
				}
				if r.Encrypted != tt.encrypted {
					t.Errorf("%s: Encrypted = %v, want %v", name, r.Encrypted, tt.encrypted)
				}
				got := slices.Sorted(slices.Values(r.EncryptedTo))
				if want := slices.Sorted(slices.Values(tt.encTo)); !slices.Equal(got, want) {
					t.Errorf("%s: EncryptedTo = %v, want %v", name, got, want)
				}
			}
		})
	}
}

func TestDecryptPassphraseMissing(t *testing.T) {
	w := world(t)
	m := must[[]byte](t)(w.Gen.Message(batch, &w.Signer, true, w.Protected))
	for name, d := range decrypters(t, w, "") {
		if name == "gpg" {
			continue // gpg would ask gpg-agent's pinentry; see TestGPGNoPassphrase
		}
		if r, err := d.Decrypt(context.Background(), m); !errors.Is(err, pgp.ErrNoPassphrase) || r != nil {
			t.Errorf("%s: Decrypt without passphrase = %v, %v, want nil, %v", name, r, err, pgp.ErrNoPassphrase)
		}
		// No terminal: the prompt fails closed.
		n := *d.(*pgp.Native)
		n.Passphrase = pgp.TerminalPassphrase(filepath.Join(t.TempDir(), "no-tty"))
		if r, err := n.Decrypt(context.Background(), m); !errors.Is(err, pgp.ErrNoPassphrase) || r != nil {
			t.Errorf("%s: Decrypt with no terminal = %v, %v, want nil, %v", name, r, err, pgp.ErrNoPassphrase)
		}
	}
}

func TestDecryptKeyringParts(t *testing.T) {
	w := world(t)
	m := must[[]byte](t)(w.Gen.Message(batch, &w.Signer, true, w.KSMKey))
	tests := []struct {
		name           string
		secret, public []pgptest.Key
		want           error
	}{
		{"secret-key-only", []pgptest.Key{w.KSMKey}, nil, pgp.ErrUnknownSigner},
		{"signer-only", nil, []pgptest.Key{w.Signer}, pgp.ErrNoSecretKey},
		{"public-ksm-key", nil, []pgptest.Key{w.KSMKey, w.Signer}, pgp.ErrNoSecretKey},
		{"both", []pgptest.Key{w.KSMKey}, []pgptest.Key{w.Signer}, nil},
	}
	for _, tt := range tests {
		kr := must[*pgp.Keyring](t)(pgp.ReadKeyring(must[[]byte](t)(w.Keyring(true, tt.secret, tt.public))))
		r, err := (&pgp.Native{Keyring: kr}).Decrypt(context.Background(), m)
		if !errors.Is(err, tt.want) || (err == nil) != (r != nil) {
			t.Errorf("%s: Decrypt = %v, %v, want error %v", tt.name, r, err, tt.want)
		}
	}
}

func TestDecryptTooLarge(t *testing.T) {
	w := world(t)
	m := must[[]byte](t)(w.Gen.Message(batch, &w.Signer, true, w.KSMKey))
	for name, d := range decrypters(t, w, "") {
		switch d := d.(type) {
		case *pgp.Native:
			d.MaxPlaintext = 10
		case *pgp.GPG:
			d.MaxPlaintext = 10
		}
		if r, err := d.Decrypt(context.Background(), m); !errors.Is(err, pgp.ErrTooLarge) || r != nil {
			t.Errorf("%s: Decrypt = %v, %v, want nil, %v", name, r, err, pgp.ErrTooLarge)
		}
	}
}

// Without a passphrase file gpg asks gpg-agent's pinentry, which has no
// terminal (nor display) here: the message is refused.
func TestGPGNoPassphrase(t *testing.T) {
	w := world(t)
	m := must[[]byte](t)(w.Gen.Message(batch, &w.Signer, true, w.Protected))
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	r, err := (&pgp.GPG{Home: w.KSM.Dir, Env: env}).Decrypt(context.Background(), m)
	if !errors.Is(err, pgp.ErrNoSecretKey) || r != nil {
		t.Errorf("Decrypt = %v, %v, want nil, %v", r, err, pgp.ErrNoSecretKey)
	}
}
