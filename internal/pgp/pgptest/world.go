package pgptest

import (
	"errors"
	"fmt"
)

// World is a key generator's gpg home holding every test key, and a KSM's
// gpg home holding only what a KSM operator would import: the KSM's secret
// keys and the trusted signers' public keys. Messages are made in Gen and
// opened with KSM's keys.
type World struct {
	Gen, KSM *Home

	KSMKey    Key // ed25519 + cv25519, secret in KSM
	RSA       Key // rsa2048 + rsa2048 encryption subkey, secret in KSM
	Protected Key // ed25519 + cv25519 with Passphrase "s3cret pass", secret in KSM
	Signer    Key // ed25519 + cv25519, public in KSM: a trusted generator
	SubSigner Key // certify-only primary with a signing subkey, public in KSM
	Stranger  Key // ed25519 + cv25519, unknown to KSM
}

// NewWorld makes the two homes and the keys (about a second with gpg 2.2).
func NewWorld() (w *World, err error) {
	w = &World{}
	defer func() {
		if err != nil {
			w.Close()
		}
	}()
	if w.Gen, err = NewHome(); err != nil {
		return nil, err
	}
	if w.KSM, err = NewHome(); err != nil {
		return nil, err
	}
	gen := []struct {
		k                 *Key
		name, email, algo string
		pass              string
	}{
		{&w.KSMKey, "YK-KSM Test", "ksm@example.org", "ed25519", ""},
		{&w.RSA, "YK-KSM RSA", "rsa-ksm@example.org", "rsa", ""},
		{&w.Protected, "YK-KSM Protected", "pksm@example.org", "ed25519", "s3cret pass"},
		{&w.Signer, "Key Generator", "gen@example.org", "ed25519", ""},
		{&w.SubSigner, "Subkey Generator", "subgen@example.org", "subkey", ""},
		{&w.Stranger, "Stranger", "stranger@example.net", "ed25519", ""},
	}
	for _, g := range gen {
		if *g.k, err = w.Gen.GenKey(g.name, g.email, g.algo, g.pass); err != nil {
			return nil, err
		}
	}
	for _, k := range []Key{w.KSMKey, w.RSA, w.Protected} {
		sec, err := w.Gen.ExportSecret(k, false)
		if err != nil {
			return nil, err
		}
		if err := w.KSM.Import(sec); err != nil {
			return nil, err
		}
	}
	for _, k := range []Key{w.Signer, w.SubSigner} {
		pub, err := w.Gen.ExportPublic(k, false)
		if err != nil {
			return nil, err
		}
		if err := w.KSM.Import(pub); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// Keyring returns the concatenated exports, from Gen, of the secret keys of
// secret and the public keys of public: armored blocks one after the other,
// or one binary packet stream.
func (w *World) Keyring(armor bool, secret []Key, public []Key) ([]byte, error) {
	var out []byte
	for _, k := range secret {
		b, err := w.Gen.ExportSecret(k, armor)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	for _, k := range public {
		b, err := w.Gen.ExportPublic(k, armor)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("pgptest: empty keyring")
	}
	return out, nil
}

// Close removes both homes.
func (w *World) Close() error {
	var errs []error
	for _, h := range []*Home{w.Gen, w.KSM} {
		if h != nil {
			errs = append(errs, h.Close())
		}
	}
	return errors.Join(errs...)
}
