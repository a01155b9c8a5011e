// Package ksmadapter turns the KSM packages' decrypters into val.KSM, the
// interface a validation server decrypts through. It is the one place that
// imports both ksm and val (which never import each other): ykvald wires a
// server with it, and val/e2e tests the same wiring.
//
// Both an HTTP client of the decrypt API (ksm/ksmclient) and an in-process
// decrypter over a key database (ksm/ksmserver.Decrypter) return ksm.Result
// and ksm's errors, so one adapter serves both. Errors become:
//
//	ksm.ErrNoOTP, ErrFormat, ErrUnknownKey, ErrCorrupt     val.ErrKSMRejected     (BAD_OTP)
//	ksm.ErrDatabase ("ERR Database error"),
//	ksmclient.ErrUnavailable, anything else                 val.ErrKSMUnavailable  (BACKEND_ERROR)
//
// A KSM answering "ERR Database error" has no verdict on the OTP, so it is
// unavailable, never a rejection; so is an error that is none of ksm's
// (a network failure, a timeout, a malformed answer). An error that wraps
// ErrDatabase and a verdict at once is unavailable too: fail closed.
package ksmadapter

import (
	"context"
	"errors"
	"fmt"

	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/val"
)

// Decrypter is what ksm/ksmclient's Client and ksm/ksmserver's Decrypter
// both are.
type Decrypter interface {
	Decrypt(ctx context.Context, otp string) (ksm.Result, error)
}

// KSM is a val.KSM over a Decrypter.
type KSM struct{ d Decrypter }

var _ val.KSM = KSM{}

// New returns a val.KSM over d.
func New(d Decrypter) KSM { return KSM{d} }

// Decrypt implements val.KSM.
func (k KSM) Decrypt(ctx context.Context, otp string) (val.Decrypted, error) {
	r, err := k.d.Decrypt(ctx, otp)
	if err == nil {
		return val.Decrypted{Counter: r.Counter, Low: r.Low, High: r.High, Use: r.Use}, nil
	}
	if Rejected(err) {
		return val.Decrypted{}, fmt.Errorf("%w: %v", val.ErrKSMRejected, err)
	}
	return val.Decrypted{}, fmt.Errorf("%w: %v", val.ErrKSMUnavailable, err)
}

// Rejected reports whether a KSM error is a verdict that the OTP is not
// genuine, rather than a failure to decide.
func Rejected(err error) bool {
	if errors.Is(err, ksm.ErrDatabase) || errors.Is(err, ksmclient.ErrUnavailable) {
		return false
	}
	for _, verdict := range []error{ksm.ErrNoOTP, ksm.ErrFormat, ksm.ErrUnknownKey, ksm.ErrCorrupt} {
		if errors.Is(err, verdict) {
			return true
		}
	}
	return false
}
