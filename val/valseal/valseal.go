// Package valseal keeps the API secrets of YK-VAL clients sealed at rest:
// encrypted and authenticated under a key-encryption key (KEK) that never
// sits in the database, and bound to the client they belong to, so that a
// copied database without the KEK yields no secret, and a sealed secret
// moved to another client id does not open. It is the validation server's
// counterpart of ksm/seal, built on internal/sealbox.
//
// # The KEK
//
// A KEK is 32 random bytes kept outside the database: in a file (raw, 64
// hex digits or base64, not readable by its group or others), in the
// environment, or in a systemd credential (ykval-kek); see
// internal/sealbox and internal/cli's ValKEKFlags. Keys are derived from it
// with HKDF-SHA-256 under the purpose "ykstack val seal v1": a KEK shared
// with the KSM still gives keys of its own here. Its key ID (kid), 8 hex
// digits, names it in every value it sealed.
//
// # The sealed value
//
// A sealed secret column is self-describing ASCII text:
//
//	$yvs1$<kid>$<base64url(nonce ‖ ciphertext ‖ tag)>
//
// The ciphertext is the secret column's text exactly as it was stored
// (the base64 of the HMAC key, 28 characters for Yubico's 20-byte keys).
// AES-256-GCM authenticates, besides it, the format tag, the kid and the
// client id (8 bytes, big-endian): a value copied to another client's row
// fails to open. A plaintext secret is base64, which has no '$', so a
// value starting with '$' is sealed. A sealed 28-character secret is 90
// characters, more than Yubico's varchar(60): a sealed database needs the
// column widened to [ColumnWidth] (val/sqlstore does it on MySQL).
//
// # Failing closed
//
// [Sealer.Open] returns an error wrapping [ErrOpen] for a wrong KEK or a
// moved row, [ErrUnknownKEK] for a kid it holds no KEK for, and [ErrFormat]
// for a value that is not a sealed value at all. None quotes the secret.
// Callers must treat every error as "no secret".
package valseal

import (
	"encoding/binary"
	"fmt"

	"github.com/ykstack/ykstack/internal/sealbox"
)

// Sizes and names of the format.
const (
	// Tag is the format tag; Prefix starts every sealed value.
	Tag    = "yvs1"
	Prefix = "$" + Tag + "$"
	// ColumnWidth is the secret column width a sealed database needs, in characters.
	ColumnWidth = 160
	// MaxPlaintext is the longest secret text Seal takes: Yubico's column
	// width. Its sealed value fits in ColumnWidth characters.
	MaxPlaintext = 60

	purpose = "ykstack val seal v1"
)

// Errors of sealing and opening; they are internal/sealbox's, so that
// errors.Is works with either name.
var (
	ErrKEK        = sealbox.ErrKEK
	ErrFormat     = sealbox.ErrFormat
	ErrUnknownKEK = sealbox.ErrUnknownKEK
	ErrOpen       = sealbox.ErrOpen
	ErrTooLong    = fmt.Errorf("valseal: secret longer than %d characters", MaxPlaintext)
)

// KEK is a key-encryption key, ready to seal and open client secrets.
type KEK struct{ box *sealbox.Box }

// NewKEK returns the KEK of 32 key bytes. It keeps no reference to key.
func NewKEK(key []byte) (*KEK, error) {
	b, err := sealbox.NewBox(key, purpose)
	if err != nil {
		return nil, err
	}
	return &KEK{b}, nil
}

// ID returns the KEK's key ID: 8 lower-case hex digits.
func (k *KEK) ID() string { return k.box.ID() }

// A Sealer seals client secrets under its current KEK and opens values
// sealed under the current or any older KEK it was given. It is safe for
// concurrent use.
type Sealer struct {
	current *KEK
	keys    map[string]*KEK
}

// New returns a Sealer that seals under current and also opens values
// sealed under old (during a KEK rotation).
func New(current *KEK, old ...*KEK) *Sealer {
	s := &Sealer{current: current, keys: map[string]*KEK{current.ID(): current}}
	for _, k := range old {
		if k != nil && s.keys[k.ID()] == nil {
			s.keys[k.ID()] = k
		}
	}
	return s
}

// KeyID returns the ID of the KEK new values are sealed under.
func (s *Sealer) KeyID() string { return s.current.ID() }

// Has reports whether s can open values sealed under the KEK with key ID kid.
func (s *Sealer) Has(kid string) bool { return s.keys[kid] != nil }

// KeyIDs returns the IDs of every KEK s holds, the current one first.
func (s *Sealer) KeyIDs() []string {
	ids := []string{s.current.ID()}
	for id := range s.keys {
		if id != s.current.ID() {
			ids = append(ids, id)
		}
	}
	return ids
}

// IsSealed reports whether a secret column value is sealed rather than
// plaintext: whether it starts with '$'.
func IsSealed(v string) bool { return sealbox.IsSealed(v) }

// KeyIDOf returns the key ID of a sealed value, or "" if v has none.
func KeyIDOf(v string) string { return sealbox.KeyIDOf(v, Tag) }

// ad is the additional data that binds a value to its client.
func ad(kid string, clientID int64) []byte {
	b := make([]byte, 0, len(purpose)+len(kid)+8)
	b = append(b, purpose...)
	b = append(b, kid...)
	return binary.BigEndian.AppendUint64(b, uint64(clientID))
}

// Seal returns secret, the text of a client's secret column, sealed under
// the current KEK and bound to the client's id.
func (s *Sealer) Seal(clientID int64, secret string) (string, error) {
	if len(secret) > MaxPlaintext {
		return "", ErrTooLong
	}
	k := s.current
	return sealbox.Encode(Tag, k.ID(), k.box.Seal([]byte(secret), ad(k.ID(), clientID))), nil
}

// Open returns the secret text sealed in v, checking that v was sealed for
// the client with this id. The error wraps ErrFormat, ErrUnknownKEK or
// ErrOpen.
func (s *Sealer) Open(clientID int64, v string) (string, error) {
	kid, sealed, err := sealbox.Decode(v, Tag, MaxPlaintext+sealbox.Overhead)
	if err != nil {
		return "", err
	}
	k := s.keys[kid]
	if k == nil {
		return "", fmt.Errorf("%w (key ID %s)", ErrUnknownKEK, kid)
	}
	pt, err := k.box.Open(sealed, ad(kid, clientID))
	if err != nil {
		return "", err
	}
	return string(pt), nil
}

// ParseKEK reads a KEK written as text (see sealbox.ParseKEK).
func ParseKEK(text string) (*KEK, error) {
	b, err := sealbox.ParseKEK(text)
	if err != nil {
		return nil, err
	}
	return NewKEK(b)
}

// ReadKEKFile reads the KEK in a file (see sealbox.ReadKEKFile).
func ReadKEKFile(name, trustedDir string) (*KEK, error) {
	b, err := sealbox.ReadKEKFile(name, trustedDir)
	if err != nil {
		return nil, err
	}
	return NewKEK(b)
}

// GenerateKEK returns a new random KEK's 32 bytes; FormatKEK writes them
// as a KEK file holds them.
func GenerateKEK() []byte { return sealbox.GenerateKEK() }

// FormatKEK returns key as base64 and a newline.
func FormatKEK(key []byte) string { return sealbox.FormatKEK(key) }
