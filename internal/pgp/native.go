package pgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"
)

// Native opens messages in process with go-crypto. Every key in Keyring is
// trusted to sign.
type Native struct {
	Keyring *Keyring
	// Passphrase unlocks a protected secret key when the message needs one;
	// nil makes such a message fail with ErrNoPassphrase.
	Passphrase PassphraseFunc
	// MaxPlaintext bounds the plaintext; 0 means DefaultMaxPlaintext.
	MaxPlaintext int64
}

var _ Decrypter = (*Native)(nil)

// messageBody returns the packets of msg: the body of its first armored
// "PGP MESSAGE" block, or msg itself when it is binary.
func messageBody(msg []byte) (io.Reader, error) {
	if !isArmored(msg) {
		return bytes.NewReader(msg), nil
	}
	b, err := armor.Decode(bytes.NewReader(msg))
	if err != nil {
		return nil, fmt.Errorf("%w: armor: %w", ErrMalformed, err)
	}
	if b.Type != "PGP MESSAGE" {
		return nil, fmt.Errorf("%w: armored block is %q, want \"PGP MESSAGE\"", ErrMalformed, b.Type)
	}
	return b.Body, nil
}

// Decrypt implements Decrypter.
func (n *Native) Decrypt(ctx context.Context, msg []byte) (*Result, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if n.Keyring == nil || n.Keyring.Len() == 0 {
		return nil, ErrNoKeys
	}
	max := n.MaxPlaintext
	if max <= 0 {
		max = DefaultMaxPlaintext
	}
	body, err := messageBody(msg)
	if err != nil {
		return nil, err
	}
	var promptErr error
	asked := false
	prompt := func(keys []openpgp.Key, symmetric bool) ([]byte, error) {
		switch {
		case len(keys) == 0 && symmetric:
			promptErr = fmt.Errorf("%w: the message is encrypted with a passphrase, not to a key", ErrNoSecretKey)
		case len(keys) == 0:
			promptErr = ErrNoSecretKey
		case asked:
			promptErr = ErrPassphrase
		case n.Passphrase == nil:
			promptErr = ErrNoPassphrase
		}
		if promptErr != nil {
			return nil, promptErr
		}
		asked = true
		pass, err := n.Passphrase(describeKey(keys[0]))
		if err != nil {
			promptErr = err
			return nil, err
		}
		unlocked := false
		for _, k := range keys {
			if k.PrivateKey.Decrypt(pass) == nil {
				unlocked = true
			}
		}
		if !unlocked {
			promptErr = ErrPassphrase
			return nil, promptErr
		}
		return nil, nil
	}
	// Bound decompression too, a little above max so that an oversized
	// plaintext is reported as such by the read below.
	limit := max + 1<<20
	cfg := &packet.Config{MaxDecompressedMessageSize: &limit}
	md, err := openpgp.ReadMessage(body, n.Keyring.entities, prompt, cfg)
	switch {
	case promptErr != nil:
		return nil, promptErr
	case errors.Is(err, pgperrors.ErrKeyIncorrect):
		return nil, ErrNoSecretKey
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	plain, err := io.ReadAll(io.LimitReader(md.UnverifiedBody, max+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	case int64(len(plain)) > max:
		return nil, fmt.Errorf("%w: plaintext over %d bytes", ErrTooLarge, max)
	}
	if err := verified(md); err != nil {
		return nil, err
	}
	r := &Result{
		Plaintext:     plain,
		Encrypted:     md.IsEncrypted,
		Signer:        fingerprint(md.SignedBy.PublicKey.Fingerprint),
		SignerPrimary: fingerprint(md.SignedBy.Entity.PrimaryKey.Fingerprint),
	}
	for _, id := range md.EncryptedToKeyIds {
		r.EncryptedTo = append(r.EncryptedTo, keyID(id))
	}
	if _, id := md.SignedBy.Entity.PrimaryIdentity(md.Signature.CreationTime, nil); id != nil {
		r.SignerName = id.Name
	}
	return r, nil
}

// verified checks, once the body was read to its end, that md carries a
// verified signature by a key of the keyring. go-crypto's v1 API reported an
// unknown signer with SignatureError == nil and SignedBy == nil, so every
// field is checked, not the error alone.
func verified(md *openpgp.MessageDetails) error {
	switch {
	case !md.IsSigned:
		return ErrNotSigned
	case !md.IsVerified:
		return fmt.Errorf("%w: signature not checked", ErrBadSignature)
	case errors.Is(md.SignatureError, pgperrors.ErrUnknownIssuer):
		return ErrUnknownSigner
	case md.SignatureError != nil:
		return fmt.Errorf("%w: %w", ErrBadSignature, md.SignatureError)
	case md.SignedBy == nil, md.SignedBy.Entity == nil, md.Signature == nil:
		return fmt.Errorf("%w: no verified signature", ErrBadSignature)
	}
	return nil
}

// describeKey names a key for a passphrase prompt.
func describeKey(k openpgp.Key) string {
	s := "OpenPGP key " + fingerprint(k.PublicKey.Fingerprint)
	if k.Entity != nil {
		if _, id := k.Entity.PrimaryIdentity(k.PublicKey.CreationTime, nil); id != nil {
			s += " (" + id.Name + ")"
		}
	}
	return s
}
