package seal

import (
	"errors"
	"strings"

	"github.com/ykstack/ykstack/internal/sealbox"
)

// The KEK text and file forms are internal/sealbox's, shared with the
// validation server's sealed secrets; this file restates them for *KEK and
// keeps this package's error texts ("seal: invalid KEK: …").

// GenerateKEK returns a new random KEK's 32 bytes.
func GenerateKEK() []byte { return sealbox.GenerateKEK() }

// FormatKEK returns key in the text form KEK files and the environment
// use: standard base64 and a newline.
func FormatKEK(key []byte) string { return sealbox.FormatKEK(key) }

// ParseKEK reads a KEK written as text: 64 hex digits, or the base64 (standard
// or URL alphabet, padded or not) of 32 bytes. Surrounding white space is
// ignored. Errors never quote the text.
func ParseKEK(text string) (*KEK, error) {
	b, err := sealbox.ParseKEK(text)
	if err != nil {
		return nil, fromBox(err)
	}
	return NewKEK(b)
}

// ParseKEKFile reads the contents of a KEK file: exactly 32 raw bytes, or
// text as ParseKEK takes it.
func ParseKEKFile(data []byte) (*KEK, error) {
	b, err := sealbox.ParseKEKFile(data)
	if err != nil {
		return nil, fromBox(err)
	}
	return NewKEK(b)
}

// ReadKEKFile reads the KEK in the file name. It refuses a file that is not
// a regular file or that its group or others may read or write, unless the
// file is in trustedDir, the directory systemd keeps a service's credentials
// in ($CREDENTIALS_DIRECTORY; "" trusts none), whose access systemd controls.
func ReadKEKFile(name, trustedDir string) (*KEK, error) {
	b, err := sealbox.ReadKEKFile(name, trustedDir)
	if err != nil {
		return nil, fromBox(err)
	}
	return NewKEK(b)
}

// fromBox restates an error of sealbox's KEK functions in this package's
// terms, keeping everything it wraps (ErrKEK, or the file system's error).
func fromBox(err error) error {
	msg := err.Error()
	if errors.Is(err, sealbox.ErrKEK) {
		return &boxError{ErrKEK.Error() + strings.TrimPrefix(msg, sealbox.ErrKEK.Error()), []error{ErrKEK, err}}
	}
	return &boxError{"seal: " + strings.TrimPrefix(msg, "sealbox: "), []error{err}}
}

// boxError is an error of sealbox with this package's wording.
type boxError struct {
	msg  string
	errs []error
}

func (e *boxError) Error() string   { return e.msg }
func (e *boxError) Unwrap() []error { return e.errs }
