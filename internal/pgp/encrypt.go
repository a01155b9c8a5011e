package pgp

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// ErrNoSigningKey reports a signer keyring without a usable secret signing key.
var ErrNoSigningKey = errors.New("pgp: no secret signing key")

// Encrypt writes plaintext to w as an ASCII-armored OpenPGP message
// encrypted to every key in to and signed by the first key of signer that
// has a secret signing key; pass unlocks it when it is protected (nil fails
// with ErrNoPassphrase). gpg and Native both open the result.
func Encrypt(w io.Writer, plaintext []byte, to, signer *Keyring, pass PassphraseFunc) error {
	if to == nil || to.Len() == 0 {
		return fmt.Errorf("pgp: encrypt: no recipients: %w", ErrNoKeys)
	}
	now := time.Now()
	for _, e := range to.entities {
		if _, err := e.EncryptionKeyWithError(now, nil); err != nil {
			return fmt.Errorf("pgp: encrypt: recipient %s has no usable encryption key: %w", fingerprint(e.PrimaryKey.Fingerprint), err)
		}
	}
	s, err := signingEntity(signer, now, pass)
	if err != nil {
		return err
	}
	aw, err := armor.Encode(w, "PGP MESSAGE", nil)
	if err != nil {
		return fmt.Errorf("pgp: encrypt: %w", err)
	}
	pw, err := openpgp.Encrypt(aw, to.entities, nil, []*openpgp.Entity{s}, nil, nil)
	if err != nil {
		return fmt.Errorf("pgp: encrypt: %w", err)
	}
	if _, err := pw.Write(plaintext); err != nil {
		return fmt.Errorf("pgp: encrypt: %w", err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("pgp: encrypt: %w", err)
	}
	if err := aw.Close(); err != nil {
		return fmt.Errorf("pgp: encrypt: %w", err)
	}
	return nil
}

// signingEntity returns the first entity of kr with a secret signing key,
// unlocked.
func signingEntity(kr *Keyring, now time.Time, pass PassphraseFunc) (*openpgp.Entity, error) {
	if kr == nil {
		return nil, ErrNoSigningKey
	}
	for _, e := range kr.entities {
		k, ok := e.SigningKey(now, nil)
		if !ok || k.PrivateKey == nil || k.PrivateKey.Dummy() {
			continue
		}
		if k.PrivateKey.Encrypted {
			if pass == nil {
				return nil, ErrNoPassphrase
			}
			p, err := pass(describeKey(k))
			if err != nil {
				return nil, err
			}
			if err := e.DecryptPrivateKeys(p); err != nil {
				return nil, ErrPassphrase
			}
		}
		return e, nil
	}
	return nil, ErrNoSigningKey
}
