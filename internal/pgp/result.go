package pgp

import (
	"context"
	"errors"
)

// Result is an opened message: its plaintext and who signed it, for whom it
// was encrypted.
type Result struct {
	Plaintext []byte // the whole plaintext, verified
	Encrypted bool   // false for a message that was only signed
	// EncryptedTo lists the key IDs (16 upper-case hex digits) the message
	// was encrypted to; 0000000000000000 stands for a hidden recipient.
	EncryptedTo []string
	// Signer is the fingerprint of the key that made the verified signature
	// (a subkey's when a subkey signed), as gpg's VALIDSIG reports it.
	Signer string
	// SignerPrimary is the fingerprint of Signer's primary key.
	SignerPrimary string
	// SignerName is the signer's primary user ID, when known.
	SignerName string
	// Status holds gpg's status lines when GPG opened the message.
	Status []string
}

// Creator returns the last 8 hex digits of Signer: what YK-KSM records as
// the creator of the keys a batch carries.
func (r *Result) Creator() string {
	if len(r.Signer) < 8 {
		return r.Signer
	}
	return r.Signer[len(r.Signer)-8:]
}

// A Decrypter opens signed (and usually encrypted) OpenPGP messages. On any
// error it returns a nil Result: no plaintext is ever returned from a
// message that failed a check.
type Decrypter interface {
	Decrypt(ctx context.Context, msg []byte) (*Result, error)
}

// Why a message is refused. Decrypt errors wrap one of them.
var (
	ErrNotSigned     = errors.New("pgp: message is not signed")
	ErrUnknownSigner = errors.New("pgp: message is signed by a key that is not trusted (not in the keyring)")
	ErrBadSignature  = errors.New("pgp: bad signature")
	ErrNoSecretKey   = errors.New("pgp: no secret key for any recipient of the message")
	ErrMalformed     = errors.New("pgp: malformed, damaged or truncated message")
	ErrTooLarge      = errors.New("pgp: message too large")
)

// DefaultMaxPlaintext bounds the plaintext Decrypt buffers: 256 MiB, about
// 2.5 million YKKSM-KEYPROV lines.
const DefaultMaxPlaintext = 256 << 20
