// Package otp implements the Yubico OTP token format.
//
// A Yubico OTP is a modhex string of 32 to 48 characters: an optional public
// ID of up to 16 characters followed by a 32-character token. The token is one
// AES-128 block; decrypted, it holds the key's private ID (UID), its counters,
// a timestamp, random bytes and a CRC-16:
//
//	bytes  0–5   private ID (UID)
//	bytes  6–7   session counter, little-endian
//	bytes  8–9   timestamp low, little-endian
//	byte   10    timestamp high
//	byte   11    session use
//	bytes 12–13  random
//	bytes 14–15  one's complement of the CRC-16, little-endian
//
// A token is genuine when the CRC-16 over all sixteen bytes leaves the
// residue 0xf0b8 and its UID equals the one stored for the key. Both checks
// are the caller's duty: Parse checks the CRC, and callers compare the UID
// with [UID.Equal], which runs in constant time. A CRC is not a MAC: it only
// tells a wrong key from a right one with high probability, and the UID check
// must never be skipped.
//
// This package imports only the standard library.
package otp

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/ykstack/ykstack/otp/modhex"
)

// Lengths of the OTP string and its parts, in characters.
const (
	TokenLen       = 32 // modhex characters of the encrypted token
	MaxPublicIDLen = 16 // modhex characters of the public ID, at most
	MinLen         = TokenLen
	MaxLen         = MaxPublicIDLen + TokenLen
	BlockSize      = aes.BlockSize // bytes of the decrypted token
	UIDSize        = 6             // bytes of the private ID
	KeySize        = 16            // bytes of an AES-128 key
)

// CRCResidue is what CRC16 returns over a genuine token, CRC field included.
const CRCResidue = 0xf0b8

// Errors returned by this package.
var (
	ErrFormat = errors.New("otp: invalid OTP format")
	ErrCRC    = errors.New("otp: CRC check failed")
	ErrKey    = errors.New("otp: invalid AES-128 key")
	ErrUID    = errors.New("otp: invalid private ID")
)

// Key is an AES-128 key of a YubiKey OTP slot.
type Key [KeySize]byte

// ParseKey decodes a key from its 32 hex digits, as stored in the KSM's aeskey column.
func ParseKey(s string) (Key, error) {
	var k Key
	if len(s) != 2*KeySize {
		return k, fmt.Errorf("%w: want %d hex digits, have %d", ErrKey, 2*KeySize, len(s))
	}
	if _, err := hex.Decode(k[:], []byte(s)); err != nil {
		return k, fmt.Errorf("%w: %w", ErrKey, err)
	}
	return k, nil
}

// String returns the key as 32 lower-case hex digits. Keys are secrets: never log them.
func (k Key) String() string { return hex.EncodeToString(k[:]) }

// UID is the six-byte private ID inside every token.
type UID [UIDSize]byte

// ParseUID decodes a private ID from its 12 hex digits (the KSM's internalname column).
func ParseUID(s string) (UID, error) {
	var u UID
	if len(s) != 2*UIDSize {
		return u, fmt.Errorf("%w: want %d hex digits, have %d", ErrUID, 2*UIDSize, len(s))
	}
	if _, err := hex.Decode(u[:], []byte(s)); err != nil {
		return u, fmt.Errorf("%w: %w", ErrUID, err)
	}
	return u, nil
}

// String returns the UID as 12 lower-case hex digits.
func (u UID) String() string { return hex.EncodeToString(u[:]) }

// Equal reports whether u and v are the same, in constant time.
func (u UID) Equal(v UID) bool { return subtle.ConstantTimeCompare(u[:], v[:]) == 1 }

// Token is a decrypted OTP token. Fields hold the raw values: Counter keeps
// bit 15 (set by some keys when Caps Lock toggles), as YK-KSM reports it.
type Token struct {
	UID           UID
	Counter       uint16 // session (power-up) counter
	TimestampLow  uint16 // low 16 bits of the 8 Hz timestamp
	TimestampHigh uint8  // high 8 bits of the 8 Hz timestamp
	Use           uint8  // use counter within the session
	Random        uint16
	CRC           uint16 // as stored: one's complement of the CRC-16 over bytes 0–13
}

// Timestamp returns the 24-bit 8 Hz timestamp.
func (t Token) Timestamp() uint32 { return uint32(t.TimestampHigh)<<16 | uint32(t.TimestampLow) }

// Marshal returns the 16 plaintext bytes of t with a freshly computed CRC
// (t.CRC is ignored).
func (t Token) Marshal() [BlockSize]byte {
	var b [BlockSize]byte
	copy(b[0:6], t.UID[:])
	binary.LittleEndian.PutUint16(b[6:8], t.Counter)
	binary.LittleEndian.PutUint16(b[8:10], t.TimestampLow)
	b[10] = t.TimestampHigh
	b[11] = t.Use
	binary.LittleEndian.PutUint16(b[12:14], t.Random)
	binary.LittleEndian.PutUint16(b[14:16], ^CRC16(b[:14]))
	return b
}

// CRC16 returns the ISO 13239 CRC-16 of b (initial value 0xffff, reflected
// polynomial 0x8408), the checksum YubiKeys put in every token.
func CRC16(b []byte) uint16 {
	crc := uint16(0xffff)
	for _, v := range b {
		crc ^= uint16(v)
		for range 8 {
			j := crc & 1
			crc >>= 1
			if j != 0 {
				crc ^= 0x8408
			}
		}
	}
	return crc
}

// Parse checks the CRC of a decrypted block and splits it into its fields.
// It returns ErrCRC when the block is not a genuine token.
func Parse(b [BlockSize]byte) (Token, error) {
	if CRC16(b[:]) != CRCResidue {
		return Token{}, ErrCRC
	}
	var t Token
	copy(t.UID[:], b[0:6])
	t.Counter = binary.LittleEndian.Uint16(b[6:8])
	t.TimestampLow = binary.LittleEndian.Uint16(b[8:10])
	t.TimestampHigh = b[10]
	t.Use = b[11]
	t.Random = binary.LittleEndian.Uint16(b[12:14])
	t.CRC = binary.LittleEndian.Uint16(b[14:16])
	return t, nil
}

// Split checks that s is a well-formed OTP, as YK-KSM does: 0 to 16 modhex
// characters of public ID followed by exactly 32 modhex characters of token,
// lower case only. It returns ErrFormat otherwise.
func Split(s string) (publicID, token string, err error) {
	if len(s) < MinLen || len(s) > MaxLen || !modhex.Valid(s) {
		return "", "", ErrFormat
	}
	return s[:len(s)-TokenLen], s[len(s)-TokenLen:], nil
}

// DecryptBlock modhex-decodes a 32-character token and decrypts it with key.
// It returns ErrFormat when token is not 32 modhex characters. The result is
// not yet checked: compare its UID and call Parse.
func DecryptBlock(key Key, token string) ([BlockSize]byte, error) {
	var ct, pt [BlockSize]byte
	if len(token) != TokenLen {
		return pt, ErrFormat
	}
	if _, err := modhex.Decode(ct[:], []byte(token)); err != nil {
		return pt, ErrFormat
	}
	c, err := aes.NewCipher(key[:])
	if err != nil { // unreachable: the key has a fixed valid size
		return pt, fmt.Errorf("otp: %w", err)
	}
	c.Decrypt(pt[:], ct[:])
	return pt, nil
}

// Decrypt decrypts token with key, checks its CRC and that its private ID is
// uid. It returns ErrFormat, ErrUID or ErrCRC, checked in that order (the
// order YK-KSM uses).
func Decrypt(key Key, uid UID, token string) (Token, error) {
	pt, err := DecryptBlock(key, token)
	if err != nil {
		return Token{}, err
	}
	var got UID
	copy(got[:], pt[:UIDSize])
	if !got.Equal(uid) {
		return Token{}, ErrUID
	}
	return Parse(pt)
}

// Encrypt returns the 32-character modhex token for t under key, with a fresh CRC.
// It is what a YubiKey does on every touch; tests and tools use it to mint OTPs.
func Encrypt(key Key, t Token) string {
	pt := t.Marshal()
	var ct [BlockSize]byte
	c, err := aes.NewCipher(key[:])
	if err != nil { // unreachable: the key has a fixed valid size
		panic(err)
	}
	c.Encrypt(ct[:], pt[:])
	return modhex.EncodeToString(ct[:])
}

// Generate returns a full OTP: the modhex public ID followed by Encrypt(key, t).
func Generate(publicID string, key Key, t Token) string { return publicID + Encrypt(key, t) }
