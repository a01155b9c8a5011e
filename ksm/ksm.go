// Package ksm defines the YK-KSM key storage module's protocol: the key
// record kept in Yubico's yubikeys table, the KeyStore contract every storage
// backend fulfils, and the one-line answers of /wsapi/decrypt.
//
// The decrypt answer is one LF-terminated line, always with HTTP status 200:
//
//	OK counter=000f low=c541 high=a7 use=04
//	ERR No OTP provided
//	ERR Invalid OTP format
//	ERR Unknown yubikey
//	ERR Corrupt OTP
//	ERR Database error
//
// AES keys are secrets. Nothing in this module logs them, nor the decrypted
// token, nor a full OTP, at the default log level; code built on it must not
// either.
package ksm

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Key is one row of YK-KSM's yubikeys table. Hex fields are lower case.
type Key struct {
	SerialNr     int64  // device serial number
	PublicName   string // modhex public ID, 0 to 16 characters; the primary key
	Created      string // free text, usually YYYY-MM-DDTHH:MM:SS
	InternalName string // private ID (UID), 12 hex digits
	AESKey       string // AES-128 key, 32 hex digits
	LockCode     string // access code, 12 hex digits or empty
	Creator      string // usually the last 8 hex digits of the signer's OpenPGP fingerprint
	Active       bool   // only active keys decrypt
	Hardware     bool   // unused, kept for compatibility
}

// Errors of the KeyStore contract and of decryption. Each decryption error
// has its YK-KSM answer line, returned by Line.
var (
	ErrNoOTP      = errors.New("ksm: no OTP provided")
	ErrFormat     = errors.New("ksm: invalid OTP format")
	ErrUnknownKey = errors.New("ksm: unknown yubikey")
	ErrCorrupt    = errors.New("ksm: corrupt OTP")
	ErrDatabase   = errors.New("ksm: database error")
	ErrDuplicate  = errors.New("ksm: key already exists")
)

// KeyStore is where a KSM keeps its keys. Implementations must be safe for
// concurrent use and must guarantee:
//
//   - Lookup returns the key whose PublicName equals publicName exactly
//     (case-sensitively) only if it is active and has a non-empty AESKey;
//     otherwise it returns an error wrapping ErrUnknownKey. Any storage failure
//     is returned wrapped in ErrDatabase, never as ErrUnknownKey, so callers
//     can answer "ERR Database error" and fail closed.
//   - Import stores all keys or none, in one transaction. A public name that
//     already exists (in the store or twice in keys) makes it fail with an
//     error wrapping ErrDuplicate that names the key; the store is then
//     unchanged.
//   - Each calls fn for every key, active or not, ordered by SerialNr then
//     PublicName (the order ykksm-checksum hashes in). It stops at and returns
//     the first error fn returns.
//   - Keys read back are byte-for-byte the keys written.
type KeyStore interface {
	Lookup(ctx context.Context, publicName string) (Key, error)
	Import(ctx context.Context, keys []Key) error
	Each(ctx context.Context, fn func(Key) error) error
	Close() error
}

// Result is what a successful decryption tells: the token's counters.
type Result struct {
	Counter uint16 // session counter, raw (bit 15 included)
	Low     uint16 // timestamp low
	High    uint8  // timestamp high
	Use     uint8  // session use
}

// String returns the OK line without its newline: "OK counter=0001 low=8d40 high=0f use=00".
func (r Result) String() string {
	return fmt.Sprintf("OK counter=%04x low=%04x high=%02x use=%02x", r.Counter, r.Low, r.High, r.Use)
}

// Line returns the YK-KSM answer line (without newline) for a decryption
// error. Errors it does not know, storage failures included, give
// "ERR Database error": a failure is never reported as a verdict on the OTP.
func Line(err error) string {
	switch {
	case errors.Is(err, ErrNoOTP):
		return "ERR No OTP provided"
	case errors.Is(err, ErrFormat):
		return "ERR Invalid OTP format"
	case errors.Is(err, ErrUnknownKey):
		return "ERR Unknown yubikey"
	case errors.Is(err, ErrCorrupt):
		return "ERR Corrupt OTP"
	default:
		return "ERR Database error"
	}
}

// RemoteError is an ERR answer from a KSM; Msg is the text after "ERR ".
type RemoteError struct{ Msg string }

func (e *RemoteError) Error() string { return "ksm: remote error: " + e.Msg }

// Unwrap maps the remote message to this package's sentinel errors.
func (e *RemoteError) Unwrap() error {
	switch e.Msg {
	case "No OTP provided":
		return ErrNoOTP
	case "Invalid OTP format":
		return ErrFormat
	case "Unknown yubikey":
		return ErrUnknownKey
	case "Corrupt OTP":
		return ErrCorrupt
	case "Database error":
		return ErrDatabase
	}
	return nil
}

// ErrAnswer reports a KSM answer that is neither a parsable OK line nor an ERR line.
var ErrAnswer = errors.New("ksm: malformed answer")

// ParseAnswer parses a KSM answer body the way YK-VAL does: the body must
// start with "OK" and carry counter, low, high and use as hex numbers (either
// case; anything after them is ignored). An "ERR …" body gives a *RemoteError.
func ParseAnswer(body string) (Result, error) {
	line, _, _ := strings.Cut(body, "\n")
	line = strings.TrimSuffix(line, "\r")
	if msg, ok := strings.CutPrefix(line, "ERR "); ok {
		return Result{}, &RemoteError{Msg: msg}
	}
	rest, ok := strings.CutPrefix(line, "OK counter=")
	if !ok {
		return Result{}, ErrAnswer
	}
	var r Result
	fields := []struct {
		prefix string
		bits   int
		set    func(uint64)
	}{
		{"", 16, func(v uint64) { r.Counter = uint16(v) }},
		{" low=", 16, func(v uint64) { r.Low = uint16(v) }},
		{" high=", 8, func(v uint64) { r.High = uint8(v) }},
		{" use=", 8, func(v uint64) { r.Use = uint8(v) }},
	}
	for _, f := range fields {
		var ok bool
		if rest, ok = strings.CutPrefix(rest, f.prefix); !ok {
			return Result{}, ErrAnswer
		}
		n := 0
		for n < len(rest) && isHex(rest[n]) {
			n++
		}
		v, err := strconv.ParseUint(rest[:n], 16, f.bits)
		if err != nil {
			return Result{}, ErrAnswer
		}
		f.set(v)
		rest = rest[n:]
	}
	return r, nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}
