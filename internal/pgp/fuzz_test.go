package pgp_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/packet"
	openpgp "github.com/ProtonMail/go-crypto/openpgp/v2"

	"github.com/ykstack/ykstack/internal/pgp"
)

// inProcessKeyring makes an ed25519/x25519 key in process (no gpg, so the
// fuzz target runs anywhere) and returns it as a Keyring.
func inProcessKeyring(tb testing.TB) *pgp.Keyring {
	tb.Helper()
	e, err := openpgp.NewEntity("Fuzz KSM", "", "fuzz@example.org", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	if err := e.SerializePrivate(&buf, nil); err != nil {
		tb.Fatal(err)
	}
	kr, err := pgp.ReadKeyring(buf.Bytes())
	if err != nil {
		tb.Fatal(err)
	}
	return kr
}

// FuzzNativeDecrypt feeds Native arbitrary messages: it must never panic,
// and must return either a verified result or an error with no result.
func FuzzNativeDecrypt(f *testing.F) {
	kr := inProcessKeyring(f)
	var good bytes.Buffer
	if err := pgp.Encrypt(&good, []byte("1,cccccccccccb,0123456789ab,00112233445566778899aabbccddeeff,,,\n"), kr, kr, nil); err != nil {
		f.Fatal(err)
	}
	n := &pgp.Native{Keyring: kr, MaxPlaintext: 1 << 20}
	if r, err := n.Decrypt(context.Background(), good.Bytes()); err != nil || r.Signer == "" {
		f.Fatalf("Decrypt(seed) = %v, %v", r, err)
	}
	f.Add(good.Bytes())
	f.Add(good.Bytes()[:good.Len()/2])
	f.Add([]byte("-----BEGIN PGP MESSAGE-----\n\n-----END PGP MESSAGE-----\n"))
	f.Add([]byte{0xa3, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, msg []byte) {
		r, err := n.Decrypt(context.Background(), msg)
		switch {
		case err != nil && r != nil:
			t.Fatalf("Decrypt returned a result and %v", err)
		case err == nil && (r == nil || len(r.Signer) != 40 || r.Creator() != r.Signer[32:]):
			t.Fatalf("Decrypt accepted a message without a signer: %+v", r)
		}
	})
}
