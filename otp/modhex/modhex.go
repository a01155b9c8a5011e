// Package modhex implements the YubiKey "modified hexadecimal" encoding.
//
// Modhex maps the sixteen nibble values 0x0–0xf to the letters
// "cbdefghijklnrtuv", chosen because they sit at the same place on most
// keyboard layouts. The package is shaped like encoding/hex. Unlike the
// lenient decoders found in older YubiKey libraries, it is strict: a byte
// outside the alphabet is an InvalidByteError, never silently zero, and
// upper-case letters are rejected (callers that want case folding, as the
// validation protocol does, lower-case first).
package modhex

import (
	"errors"
	"fmt"
)

// Alphabet is the modhex alphabet: the character for nibble value i is Alphabet[i].
const Alphabet = "cbdefghijklnrtuv"

// DvorakAlphabet is the alphabet a YubiKey appears to type when the host uses
// a US Dvorak layout; it maps position by position onto Alphabet.
const DvorakAlphabet = "jxe.uidchtnbpygk"

// ErrLength reports an attempt to decode an odd-length input.
var ErrLength = errors.New("modhex: odd length modhex string")

// InvalidByteError values describe errors resulting from an invalid byte in a modhex string.
type InvalidByteError byte

func (e InvalidByteError) Error() string {
	return fmt.Sprintf("modhex: invalid byte: %#U", rune(e))
}

// reverse maps a byte to its nibble value, or 0xff when it is not modhex.
var reverse = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xff
	}
	for i := 0; i < len(Alphabet); i++ {
		t[Alphabet[i]] = byte(i)
	}
	return t
}()

// EncodedLen returns the length of an encoding of n source bytes: n * 2.
func EncodedLen(n int) int { return n * 2 }

// DecodedLen returns the length of a decoding of x source bytes: x / 2.
func DecodedLen(x int) int { return x / 2 }

// Encode encodes src into EncodedLen(len(src)) bytes of dst and returns the
// number of bytes written.
func Encode(dst, src []byte) int {
	j := 0
	for _, v := range src {
		dst[j] = Alphabet[v>>4]
		dst[j+1] = Alphabet[v&0x0f]
		j += 2
	}
	return len(src) * 2
}

// EncodeToString returns the modhex encoding of src.
func EncodeToString(src []byte) string {
	dst := make([]byte, EncodedLen(len(src)))
	Encode(dst, src)
	return string(dst)
}

// Decode decodes src into DecodedLen(len(src)) bytes of dst and returns the
// number of bytes written. If src contains invalid modhex data, Decode returns
// the number of bytes successfully written and an InvalidByteError. If src has
// odd length and all its bytes are valid, it returns ErrLength.
func Decode(dst, src []byte) (int, error) {
	i, j := 0, 1
	for ; j < len(src); j += 2 {
		a := reverse[src[j-1]]
		if a > 0x0f {
			return i, InvalidByteError(src[j-1])
		}
		b := reverse[src[j]]
		if b > 0x0f {
			return i, InvalidByteError(src[j])
		}
		dst[i] = a<<4 | b
		i++
	}
	if len(src)%2 == 1 {
		if reverse[src[j-1]] > 0x0f {
			return i, InvalidByteError(src[j-1])
		}
		return i, ErrLength
	}
	return i, nil
}

// DecodeString returns the bytes represented by the modhex string s.
// It rejects any character outside Alphabet, including upper case.
func DecodeString(s string) ([]byte, error) {
	dst := make([]byte, DecodedLen(len(s)))
	n, err := Decode(dst, []byte(s))
	return dst[:n], err
}

// Valid reports whether every byte of s belongs to Alphabet. The empty string is valid.
func Valid(s string) bool {
	for i := 0; i < len(s); i++ {
		if reverse[s[i]] > 0x0f {
			return false
		}
	}
	return true
}

// FromDvorak translates s from the Dvorak modhex alphabet to the standard one
// when every byte of s belongs to DvorakAlphabet, and reports whether it did.
// Otherwise it returns s unchanged and false. This mirrors what YK-VAL does for
// OTPs typed by a key on a host with a Dvorak layout.
func FromDvorak(s string) (string, bool) {
	if s == "" {
		return s, false
	}
	out := make([]byte, len(s))
	for i := 0; i < len(s); i++ {
		k := indexByte(DvorakAlphabet, s[i])
		if k < 0 {
			return s, false
		}
		out[i] = Alphabet[k]
	}
	return string(out), true
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}
