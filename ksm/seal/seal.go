package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ykstack/ykstack/internal/sealbox"
)

// Sizes and limits of the format.
const (
	// KEKSize is the size of a KEK in bytes.
	KEKSize = 32
	// Prefix starts every sealed value: the format tag between dollar signs.
	Prefix = "$yks1$"
	// KeyIDLen is the length of a kid: 8 lower-case hex digits.
	KeyIDLen = 8
	// ColumnWidth is the aeskey column width a sealed database needs, in characters.
	ColumnWidth = 128
	// MaxPlaintext is the longest aeskey text Seal takes: its sealed value
	// still fits in ColumnWidth characters.
	MaxPlaintext = 56

	overhead = 12 + 16 // GCM nonce and tag
	aadTag   = "ykstack ksm seal v1"
)

// Errors of sealing and opening. They never quote key material.
var (
	ErrKEK        = errors.New("seal: invalid KEK")
	ErrFormat     = errors.New("seal: malformed sealed value")
	ErrUnknownKEK = errors.New("seal: sealed under a KEK that is not configured")
	ErrOpen       = errors.New("seal: sealed key does not open (wrong KEK, or the row was moved or edited)")
	ErrTooLong    = errors.New("seal: aeskey too long to seal")
)

// KEK is a key-encryption key, ready to seal and open. It is safe for
// concurrent use.
type KEK struct {
	id   string
	aead cipher.AEAD
}

// NewKEK returns the KEK of 32 key bytes. It keeps no reference to key.
func NewKEK(key []byte) (*KEK, error) {
	if len(key) != KEKSize {
		return nil, fmt.Errorf("%w: want %d bytes, have %d", ErrKEK, KEKSize, len(key))
	}
	aeadKey, err := hkdf.Key(sha256.New, key, nil, "ykstack ksm seal v1 aes-256-gcm key", 32)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	kid, err := hkdf.Key(sha256.New, key, nil, "ykstack ksm seal v1 key id", KeyIDLen/2)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	block, err := aes.NewCipher(aeadKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	return &KEK{id: hex.EncodeToString(kid), aead: aead}, nil
}

// ID returns the KEK's key ID: 8 lower-case hex digits.
func (k *KEK) ID() string { return k.id }

// A Sealer seals AES keys under its current KEK and opens values sealed
// under the current or any older KEK it was given. It is safe for
// concurrent use.
type Sealer struct {
	current *KEK
	keys    map[string]*KEK
}

// New returns a Sealer that seals under current and also opens values
// sealed under old (during a KEK rotation).
func New(current *KEK, old ...*KEK) *Sealer {
	s := &Sealer{current: current, keys: map[string]*KEK{current.id: current}}
	for _, k := range old {
		if k != nil && s.keys[k.id] == nil {
			s.keys[k.id] = k
		}
	}
	return s
}

// KeyID returns the ID of the KEK new values are sealed under.
func (s *Sealer) KeyID() string { return s.current.id }

// Has reports whether s can open values sealed under the KEK with key ID kid.
func (s *Sealer) Has(kid string) bool { return s.keys[kid] != nil }

// KeyIDs returns the IDs of every KEK s holds, the current one first.
func (s *Sealer) KeyIDs() []string {
	ids := []string{s.current.id}
	for id := range s.keys {
		if id != s.current.id {
			ids = append(ids, id)
		}
	}
	return ids
}

// IsSealed reports whether an aeskey column value is a sealed value rather
// than a plaintext key: whether it starts with '$', which no hex key does.
// It says nothing about whether the value is well-formed; Parse does.
func IsSealed(v string) bool { return strings.HasPrefix(v, "$") }

// Parse splits a sealed value into its key ID and its sealed bytes (nonce,
// ciphertext and tag), checking the format but not the contents.
func Parse(v string) (kid string, sealed []byte, err error) {
	kid, data, err := split(v)
	if err != nil {
		return "", nil, err
	}
	sealed, ok := appendDecoded(nil, data)
	if !ok || len(sealed) < overhead {
		return "", nil, fmt.Errorf("%w: bad base64url data", ErrFormat)
	}
	return kid, sealed, nil
}

// split checks the header of a sealed value and returns its key ID and
// base64url data.
func split(v string) (kid, data string, err error) {
	rest, ok := strings.CutPrefix(v, Prefix)
	if !ok {
		return "", "", fmt.Errorf("%w: does not start with %s", ErrFormat, Prefix)
	}
	kid, data, ok = strings.Cut(rest, "$")
	if !ok || !validKeyID(kid) {
		return "", "", fmt.Errorf("%w: want %s<8 hex digits>$", ErrFormat, Prefix)
	}
	if len(data) > base64.RawURLEncoding.EncodedLen(MaxPlaintext+overhead) {
		return "", "", fmt.Errorf("%w: too long", ErrFormat)
	}
	return kid, data, nil
}

// appendDecoded is sealbox's strict base64url decoder (no padding, no white
// space, zero trailing bits).
var appendDecoded = sealbox.AppendDecoded

// KeyIDOf returns the key ID of a sealed value, or "" if v has none.
func KeyIDOf(v string) string {
	rest, ok := strings.CutPrefix(v, Prefix)
	if !ok {
		return ""
	}
	kid, _, ok := strings.Cut(rest, "$")
	if !ok || !validKeyID(kid) {
		return ""
	}
	return kid
}

func validKeyID(kid string) bool {
	if len(kid) != KeyIDLen {
		return false
	}
	for i := range len(kid) {
		c := kid[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// aadLen is the length of the additional data of a row.
func aadLen(publicName, internalName string) int {
	return len(aadTag) + KeyIDLen + 4 + len(publicName) + len(internalName)
}

// appendAAD appends the additional data that binds a sealed value to its
// row: the format tag, the key ID, and the length-prefixed public name and
// lower-case internal name.
func appendAAD(b []byte, kid, publicName, internalName string) []byte {
	b = append(b, aadTag...)
	b = append(b, kid...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(publicName)))
	b = append(b, publicName...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(internalName)))
	for i := range len(internalName) { // lower case: the same UID in either case
		c := internalName[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b
}

// Seal returns aesKey, the text of a row's aeskey column, sealed under the
// current KEK and bound to the row's public name and internal name.
func (s *Sealer) Seal(publicName, internalName, aesKey string) (string, error) {
	if len(aesKey) > MaxPlaintext {
		return "", fmt.Errorf("%w: %d characters, at most %d", ErrTooLong, len(aesKey), MaxPlaintext)
	}
	k := s.current
	ct := k.aead.Seal(nil, nil, []byte(aesKey), appendAAD(make([]byte, 0, aadLen(publicName, internalName)), k.id, publicName, internalName))
	var b strings.Builder
	b.Grow(len(Prefix) + KeyIDLen + 1 + base64.RawURLEncoding.EncodedLen(len(ct)))
	b.WriteString(Prefix)
	b.WriteString(k.id)
	b.WriteByte('$')
	b.WriteString(base64.RawURLEncoding.EncodeToString(ct))
	return b.String(), nil
}

// Open returns the aeskey text sealed in v, checking that v was sealed for
// the row with this public name and internal name. The error wraps
// ErrFormat, ErrUnknownKEK or ErrOpen.
func (s *Sealer) Open(publicName, internalName, v string) (string, error) {
	kid, data, err := split(v)
	if err != nil {
		return "", err
	}
	// One buffer holds the sealed bytes, the additional data and the plaintext.
	n := len(data) * 6 / 8
	buf := make([]byte, 0, n+aadLen(publicName, internalName)+n)
	sealed, ok := appendDecoded(buf, data)
	if !ok || len(sealed) < overhead {
		return "", fmt.Errorf("%w: bad base64url data", ErrFormat)
	}
	k := s.keys[kid]
	if k == nil {
		return "", fmt.Errorf("%w (key ID %s)", ErrUnknownKEK, kid)
	}
	rest := sealed[len(sealed):]
	ad := appendAAD(rest, kid, publicName, internalName)
	pt, err := k.aead.Open(ad[len(ad):], nil, sealed, ad)
	if err != nil {
		return "", ErrOpen
	}
	return string(pt), nil
}
