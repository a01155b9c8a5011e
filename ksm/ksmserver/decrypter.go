package ksmserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/otp"
)

// Errors Decrypt returns for a corrupt OTP. Both wrap ksm.ErrCorrupt; they
// are made once so the failure path does not allocate.
var (
	errUID = fmt.Errorf("%w: private ID does not match the stored internalname (UID error)", ksm.ErrCorrupt)
	errCRC = fmt.Errorf("%w: CRC check failed", ksm.ErrCorrupt)
)

// A Decrypter decrypts OTPs with the keys of a KeyStore. It is safe for
// concurrent use.
type Decrypter struct {
	store ksm.KeyStore
	log   *slog.Logger
}

// NewDecrypter returns a Decrypter over store. A nil logger discards.
func NewDecrypter(store ksm.KeyStore, logger *slog.Logger) *Decrypter {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Decrypter{store: store, log: logger}
}

// Decrypt checks an OTP and returns its counters. The error wraps one of
// ksm.ErrNoOTP, ksm.ErrFormat, ksm.ErrDatabase, ksm.ErrUnknownKey or
// ksm.ErrCorrupt, in the order YK-KSM checks them (see the package
// documentation); ksm.Line turns it into the answer line.
func (d *Decrypter) Decrypt(ctx context.Context, otpString string) (ksm.Result, error) {
	if otpString == "" {
		return ksm.Result{}, ksm.ErrNoOTP
	}
	publicID, token, err := otp.Split(otpString)
	if err != nil {
		return ksm.Result{}, ksm.ErrFormat
	}
	k, err := d.store.Lookup(ctx, publicID)
	if err != nil {
		if !errors.Is(err, ksm.ErrUnknownKey) && !errors.Is(err, ksm.ErrDatabase) {
			// A KeyStore breaking its contract: fail closed.
			err = fmt.Errorf("%w: %w", ksm.ErrDatabase, err)
		}
		return ksm.Result{}, err
	}
	key, err := otp.ParseKey(k.AESKey)
	if err != nil {
		// Do not wrap err: it may quote a character of the key.
		d.log.Error("ksmserver: stored aeskey is not 32 hex digits", "public_id", publicID, "serial", k.SerialNr)
		return ksm.Result{}, fmt.Errorf("%w: stored aeskey of %q is malformed", ksm.ErrDatabase, publicID)
	}
	uid, err := otp.ParseUID(k.InternalName)
	if err != nil {
		d.log.Error("ksmserver: stored internalname is not 12 hex digits", "public_id", publicID, "serial", k.SerialNr)
		return ksm.Result{}, fmt.Errorf("%w: stored internalname of %q is malformed", ksm.ErrDatabase, publicID)
	}
	pt, err := otp.DecryptBlock(key, token)
	if err != nil { // unreachable: Split checked the token
		return ksm.Result{}, ksm.ErrFormat
	}
	var got otp.UID
	copy(got[:], pt[:otp.UIDSize])
	if !got.Equal(uid) {
		d.log.Debug("ksmserver: UID error", "public_id", publicID)
		return ksm.Result{}, errUID
	}
	t, err := otp.Parse(pt)
	if err != nil {
		d.log.Debug("ksmserver: CRC error", "public_id", publicID)
		return ksm.Result{}, errCRC
	}
	return ksm.Result{Counter: t.Counter, Low: t.TimestampLow, High: t.TimestampHigh, Use: t.Use}, nil
}
