// Package sealbox is the authenticated encryption behind ykstack's secrets
// sealed at rest: key-encryption keys (KEKs) read from files, the
// environment or systemd credentials; keys derived from a KEK for one
// purpose each; AES-256-GCM with random nonces; and a self-describing text
// form for database columns. It knows nothing of what it seals: the
// packages that keep a kind of secret (val/valseal for YK-VAL's API
// secrets) choose a purpose, a format tag and the additional data that
// binds a sealed value to its row.
//
// # KEKs
//
// A KEK is 32 random bytes ([GenerateKEK]), written as base64 by
// [FormatKEK]. [ParseKEK] reads 64 hex digits or base64; [ReadKEKFile]
// reads a file holding that text or the 32 raw bytes, and refuses a file
// its group or others may access, except in the directory systemd keeps
// credentials in.
//
// # Boxes
//
// [NewBox] derives two keys from a KEK with HKDF-SHA-256 (no salt), each
// under its own label built from the purpose:
//
//	purpose + " aes-256-gcm key"   the AES-256-GCM key
//	purpose + " key id"            4 bytes: the key ID (kid), 8 lower-case hex digits
//
// The kid names the KEK in every value it sealed, so a rotation can hold
// two KEKs and a server can refuse a KEK that sealed none of its rows; it
// reveals nothing useful about the KEK. Different purposes give unrelated
// keys, so a KEK shared by two programs cannot make a value sealed for one
// open for the other. (ksm/seal derives its keys the same way under the
// purpose "ykstack ksm seal v1".)
//
// [Box.Seal] returns nonce ‖ ciphertext ‖ tag ([Overhead] bytes more than
// the plaintext), authenticating the additional data the caller gives;
// [Box.Open] reverses it and fails with [ErrOpen] for a wrong KEK or
// other additional data.
//
// # Text form
//
//	$<tag>$<kid>$<base64url(nonce ‖ ciphertext ‖ tag)>
//
// [Encode] writes it and [Decode] reads it, accepting only the canonical
// unpadded base64url. A value that starts with '$' is sealed ([IsSealed]);
// base64 and hex secrets never do.
//
// Errors never quote key material, plaintext or sealed values.
package sealbox

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Sizes of the format.
const (
	// KEKSize is the size of a KEK in bytes.
	KEKSize = 32
	// KeyIDLen is the length of a kid: 8 lower-case hex digits.
	KeyIDLen = 8
	// Overhead is what sealing adds to a plaintext: GCM's 12-byte nonce
	// and 16-byte tag.
	Overhead = 12 + 16
)

// maxKEKFile bounds what ReadKEKFile reads: a KEK file is at most a line of base64.
const maxKEKFile = 1024

// Errors. They never quote key material.
var (
	ErrKEK        = errors.New("sealbox: invalid KEK")
	ErrFormat     = errors.New("sealbox: malformed sealed value")
	ErrUnknownKEK = errors.New("sealbox: sealed under a KEK that is not configured")
	ErrOpen       = errors.New("sealbox: sealed value does not open (wrong KEK, or the row was moved or edited)")
)

// GenerateKEK returns a new random KEK's 32 bytes.
func GenerateKEK() []byte {
	b := make([]byte, KEKSize)
	rand.Read(b) // never fails (crypto/rand crashes the program instead)
	return b
}

// FormatKEK returns key in the text form KEK files and the environment
// use: standard base64 and a newline.
func FormatKEK(key []byte) string {
	return base64.StdEncoding.EncodeToString(key) + "\n"
}

// ParseKEK reads a KEK written as text: 64 hex digits, or the base64
// (standard or URL alphabet, padded or not) of 32 bytes. Surrounding white
// space is ignored. Errors never quote the text.
func ParseKEK(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, fmt.Errorf("%w: empty", ErrKEK)
	}
	if isHex(text) {
		if len(text) != 2*KEKSize {
			return nil, fmt.Errorf("%w: %d hex digits, want %d (32 bytes)", ErrKEK, len(text), 2*KEKSize)
		}
		b, _ := hex.DecodeString(text)
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.Strict().DecodeString(text); err == nil {
			if len(b) != KEKSize {
				return nil, fmt.Errorf("%w: base64 of %d bytes, want %d", ErrKEK, len(b), KEKSize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("%w: want 64 hex digits or the base64 of 32 bytes", ErrKEK)
}

// ParseKEKFile reads the contents of a KEK file: exactly 32 raw bytes, or
// text as ParseKEK takes it.
func ParseKEKFile(data []byte) ([]byte, error) {
	if len(data) == KEKSize && !isText(data) {
		return bytes.Clone(data), nil
	}
	return ParseKEK(string(data))
}

// ReadKEKFile reads the KEK in the file name. It refuses a file that is not
// a regular file or that its group or others may read or write, unless the
// file is in trustedDir, the directory systemd keeps a service's
// credentials in ($CREDENTIALS_DIRECTORY; "" trusts none).
func ReadKEKFile(name, trustedDir string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("sealbox: KEK file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("sealbox: KEK file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKEK, name)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && !inDir(name, trustedDir) {
		return nil, fmt.Errorf("%w: %s has mode %04o: the group and others must have no access (chmod 600 %s)",
			ErrKEK, name, perm, name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKEKFile+1))
	if err != nil {
		return nil, fmt.Errorf("sealbox: KEK file: %w", err)
	}
	if len(data) > maxKEKFile {
		return nil, fmt.Errorf("%w: %s is over %d bytes", ErrKEK, name, maxKEKFile)
	}
	k, err := ParseKEKFile(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, name)
	}
	return k, nil
}

// inDir reports whether the file name lies in dir (after cleaning both).
func inDir(name, dir string) bool {
	if dir == "" {
		return false
	}
	abs, err1 := filepath.Abs(name)
	d, err2 := filepath.Abs(dir)
	if err1 != nil || err2 != nil {
		return false
	}
	rel, err := filepath.Rel(d, abs)
	return err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

func isHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// isText reports whether data is printable ASCII and white space only, as
// a hex or base64 KEK is; 32 random bytes practically never are.
func isText(data []byte) bool {
	return bytes.IndexFunc(data, func(r rune) bool {
		return !(r == '\n' || r == '\r' || r == '\t' || (r >= 0x20 && r < 0x7f))
	}) < 0
}

// A Box seals and opens under the keys one KEK gives for one purpose. It
// is safe for concurrent use.
type Box struct {
	id   string
	aead cipher.AEAD
}

// NewBox derives the Box of a 32-byte KEK for purpose (see the package
// documentation). It keeps no reference to kek.
func NewBox(kek []byte, purpose string) (*Box, error) {
	if len(kek) != KEKSize {
		return nil, fmt.Errorf("%w: want %d bytes, have %d", ErrKEK, KEKSize, len(kek))
	}
	if purpose == "" {
		return nil, errors.New("sealbox: no purpose")
	}
	aeadKey, err := hkdf.Key(sha256.New, kek, nil, purpose+" aes-256-gcm key", 32)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKEK, err)
	}
	kid, err := hkdf.Key(sha256.New, kek, nil, purpose+" key id", KeyIDLen/2)
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
	return &Box{id: hex.EncodeToString(kid), aead: aead}, nil
}

// ID returns the box's key ID: 8 lower-case hex digits.
func (b *Box) ID() string { return b.id }

// Seal returns nonce ‖ ciphertext ‖ tag of plaintext, authenticating ad.
func (b *Box) Seal(plaintext, ad []byte) []byte {
	return b.aead.Seal(nil, nil, plaintext, ad)
}

// Open returns the plaintext of sealed, checking ad; the error is ErrOpen.
func (b *Box) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, nil, sealed, ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// IsSealed reports whether a column value is a sealed value rather than a
// plaintext secret: whether it starts with '$'. It says nothing about
// whether the value is well-formed; Decode does.
func IsSealed(v string) bool { return strings.HasPrefix(v, "$") }

// Encode returns the text form of sealed bytes: "$tag$kid$" and their
// unpadded base64url.
func Encode(tag, kid string, sealed []byte) string {
	var b strings.Builder
	b.Grow(len(tag) + len(kid) + 3 + base64.RawURLEncoding.EncodedLen(len(sealed)))
	b.WriteByte('$')
	b.WriteString(tag)
	b.WriteByte('$')
	b.WriteString(kid)
	b.WriteByte('$')
	b.WriteString(base64.RawURLEncoding.EncodeToString(sealed))
	return b.String()
}

// Decode reads the text form of a value sealed with format tag tag and
// returns its kid and sealed bytes, at least Overhead and at most
// maxSealed of them. The error wraps ErrFormat.
func Decode(v, tag string, maxSealed int) (kid string, sealed []byte, err error) {
	rest, ok := strings.CutPrefix(v, "$"+tag+"$")
	if !ok {
		return "", nil, fmt.Errorf("%w: does not start with $%s$", ErrFormat, tag)
	}
	kid, data, ok := strings.Cut(rest, "$")
	if !ok || !ValidKeyID(kid) {
		return "", nil, fmt.Errorf("%w: want $%s$<8 hex digits>$", ErrFormat, tag)
	}
	if len(data) > base64.RawURLEncoding.EncodedLen(maxSealed) {
		return "", nil, fmt.Errorf("%w: too long", ErrFormat)
	}
	sealed, ok = AppendDecoded(make([]byte, 0, len(data)*6/8), data)
	if !ok || len(sealed) < Overhead {
		return "", nil, fmt.Errorf("%w: bad base64url data", ErrFormat)
	}
	return kid, sealed, nil
}

// KeyIDOf returns the kid of a value sealed with format tag tag, or "" if
// v has none.
func KeyIDOf(v, tag string) string {
	rest, ok := strings.CutPrefix(v, "$"+tag+"$")
	if !ok {
		return ""
	}
	kid, _, ok := strings.Cut(rest, "$")
	if !ok || !ValidKeyID(kid) {
		return ""
	}
	return kid
}

// ValidKeyID reports whether kid is 8 lower-case hex digits.
func ValidKeyID(kid string) bool {
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

// b64 maps a base64url character to its value, and every other byte to 0xff.
var b64 = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// AppendDecoded appends the bytes that s, unpadded base64url, encodes to
// dst. It accepts only the canonical encoding: no padding, no white space
// (which encoding/base64 would skip), and zero bits after the last byte.
func AppendDecoded(dst []byte, s string) ([]byte, bool) {
	for ; len(s) >= 4; s = s[4:] {
		a, b, c, d := b64[s[0]], b64[s[1]], b64[s[2]], b64[s[3]]
		if (a|b|c|d)&0xc0 != 0 { // 0xff: not in the alphabet
			return dst, false
		}
		n := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
		dst = append(dst, byte(n>>16), byte(n>>8), byte(n))
	}
	switch len(s) {
	case 0:
		return dst, true
	case 2: // one byte; the last 4 bits must be zero
		a, b := b64[s[0]], b64[s[1]]
		if (a|b)&0xc0 != 0 || b&0x0f != 0 {
			return dst, false
		}
		return append(dst, a<<2|b>>4), true
	case 3: // two bytes; the last 2 bits must be zero
		a, b, c := b64[s[0]], b64[s[1]], b64[s[2]]
		if (a|b|c)&0xc0 != 0 || c&0x03 != 0 {
			return dst, false
		}
		n := uint32(a)<<12 | uint32(b)<<6 | uint32(c)
		return append(dst, byte(n>>10), byte(n>>2)), true
	}
	return dst, false // one character encodes no byte
}
