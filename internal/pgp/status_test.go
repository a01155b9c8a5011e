package pgp_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/pgp"
)

const (
	statusGood = `[GNUPG:] ENC_TO 22B699776109AD84 18 0
[GNUPG:] KEY_CONSIDERED 4C6159B9E5D8F53C6F8B1900DEF07385E625526B 0
[GNUPG:] DECRYPTION_KEY E40492A3B1C3FD7D055C4C5E22B699776109AD84 4C6159B9E5D8F53C6F8B1900DEF07385E625526B u
[GNUPG:] BEGIN_DECRYPTION
[GNUPG:] DECRYPTION_INFO 2 9 0
[GNUPG:] PLAINTEXT 62 1795353745 
[GNUPG:] PLAINTEXT_LENGTH 17
[GNUPG:] NEWSIG gen@example.org
[GNUPG:] SIG_ID H8JFBQHYI2eZSS7m4Jsz3KD9+1Q 2026-11-22 1795353745
[GNUPG:] GOODSIG 497E5F2EB6BD8372 Gen %3Cgen@example.org%3E
[GNUPG:] VALIDSIG 42A7A26EB48CAD0B599D176F497E5F2EB6BD8372 2026-11-22 1795353745 0 4 0 22 10 00 C05152D44F63BFF95E7DA3FE9161FF04522F259F
[GNUPG:] TRUST_ULTIMATE 0 pgp
[GNUPG:] DECRYPTION_OKAY
[GNUPG:] GOODMDC
[GNUPG:] END_DECRYPTION
`
	statusSignedOnly = `[GNUPG:] PLAINTEXT 62 1795353745 
[GNUPG:] NEWSIG
[GNUPG:] GOODSIG 497E5F2EB6BD8372 Gen <gen@example.org>
[GNUPG:] VALIDSIG 42A7A26EB48CAD0B599D176F497E5F2EB6BD8372 2026-11-22 1795353745 0 4 0 22 10 00 C05152D44F63BFF95E7DA3FE9161FF04522F259F
`
	statusNoPubkey = `[GNUPG:] ENC_TO 22B699776109AD84 18 0
[GNUPG:] BEGIN_DECRYPTION
[GNUPG:] NEWSIG
[GNUPG:] ERRSIG 497E5F2EB6BD8372 22 10 00 1795353745 9 -
[GNUPG:] NO_PUBKEY 497E5F2EB6BD8372
[GNUPG:] DECRYPTION_OKAY
[GNUPG:] END_DECRYPTION
`
	statusBadPass = `[GNUPG:] ENC_TO AAF79F73F99D26A4 18 0
[GNUPG:] ERROR pkdecrypt_failed 67108875
[GNUPG:] BEGIN_DECRYPTION
[GNUPG:] DECRYPTION_FAILED
[GNUPG:] END_DECRYPTION
`
	statusNoSecKey = `[GNUPG:] ENC_TO AAF79F73F99D26A4 18 0
[GNUPG:] NO_SECKEY AAF79F73F99D26A4
[GNUPG:] BEGIN_DECRYPTION
[GNUPG:] DECRYPTION_FAILED
[GNUPG:] END_DECRYPTION
`
)

func TestParseStatus(t *testing.T) {
	st := pgp.ParseStatus([]byte("gpg: noise\n" + strings.ReplaceAll(statusGood, "\n", "\r\n")))
	if got, want := st.ValidSig, "42A7A26EB48CAD0B599D176F497E5F2EB6BD8372"; got != want {
		t.Errorf("ValidSig = %s, want %s", got, want)
	}
	if got, want := st.ValidSigPrimary, "C05152D44F63BFF95E7DA3FE9161FF04522F259F"; got != want {
		t.Errorf("ValidSigPrimary = %s, want %s", got, want)
	}
	if len(st.EncTo) != 1 || st.EncTo[0] != "22B699776109AD84" {
		t.Errorf("EncTo = %v, want [22B699776109AD84]", st.EncTo)
	}
	if st.GoodSigName != "Gen <gen@example.org>" {
		t.Errorf("GoodSigName = %q, want %q", st.GoodSigName, "Gen <gen@example.org>")
	}
	if !st.DecryptionOkay || !st.BeginDecryption || st.GoodSig != 1 || st.NewSig != 1 || len(st.Lines) != 15 {
		t.Errorf("ParseStatus(good) = %+v", st)
	}
}

func TestStatusCheck(t *testing.T) {
	exit1 := exec.Command("false").Run()
	if exit1 == nil {
		t.Fatal("false succeeded")
	}
	drop := func(s, line string) string { return strings.Replace(s, line+"\n", "", 1) }
	tests := []struct {
		name    string
		status  string
		waitErr error
		want    error // nil: accepted
	}{
		{"good", statusGood, nil, nil},
		{"signed-only", statusSignedOnly, nil, nil},
		{"good-but-exit-1", statusGood, exit1, pgp.ErrMalformed},
		{"no-validsig", drop(statusGood, "[GNUPG:] VALIDSIG 42A7A26EB48CAD0B599D176F497E5F2EB6BD8372 2026-11-22 1795353745 0 4 0 22 10 00 C05152D44F63BFF95E7DA3FE9161FF04522F259F"), nil, pgp.ErrBadSignature},
		{"no-goodsig", drop(statusGood, "[GNUPG:] GOODSIG 497E5F2EB6BD8372 Gen %3Cgen@example.org%3E"), nil, pgp.ErrBadSignature},
		{"short-validsig", "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG 1 x\n[GNUPG:] VALIDSIG 42A7\n", nil, pgp.ErrBadSignature},
		{"two-sigs-one-valid", statusSignedOnly + "[GNUPG:] NEWSIG\n", nil, pgp.ErrBadSignature},
		{"no-decryption-okay", drop(statusGood, "[GNUPG:] DECRYPTION_OKAY"), nil, pgp.ErrMalformed},
		{"not-signed", "[GNUPG:] ENC_TO 22B699776109AD84 18 0\n[GNUPG:] BEGIN_DECRYPTION\n[GNUPG:] DECRYPTION_OKAY\n", nil, pgp.ErrNotSigned},
		{"nothing", "", nil, pgp.ErrNotSigned},
		{"badsig", strings.Replace(statusSignedOnly, "GOODSIG", "BADSIG", 1), exit1, pgp.ErrBadSignature},
		{"expkeysig", strings.Replace(statusSignedOnly, "GOODSIG", "EXPKEYSIG", 1), nil, pgp.ErrBadSignature},
		{"revkeysig", strings.Replace(statusSignedOnly, "GOODSIG", "REVKEYSIG", 1), nil, pgp.ErrBadSignature},
		{"no-pubkey", statusNoPubkey, exit1, pgp.ErrUnknownSigner},
		{"bad-passphrase", statusBadPass, exit1, pgp.ErrPassphrase},
		{"no-seckey", statusNoSecKey, exit1, pgp.ErrNoSecretKey},
		{"badmdc", statusGood + "[GNUPG:] BADMDC\n", exit1, pgp.ErrMalformed},
		{"nodata", "[GNUPG:] NODATA 1\n", exit1, pgp.ErrMalformed},
		{"failure-after-good", statusGood + "[GNUPG:] FAILURE gpg-exit 33554433\n", nil, pgp.ErrMalformed},
	}
	for _, tt := range tests {
		st := pgp.ParseStatus([]byte(tt.status))
		err := st.Check(tt.waitErr)
		if tt.want == nil && err != nil || !errors.Is(err, tt.want) {
			t.Errorf("Check(%s) = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{statusGood, statusSignedOnly, statusNoPubkey, statusBadPass, statusNoSecKey, "[GNUPG:] GOODSIG 1 %4", "[GNUPG:] ERROR x y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st := pgp.ParseStatus([]byte(s))
		if err := st.Check(nil); err == nil {
			// Accepted: a valid signature must have been reported.
			if st.ValidSig == "" || st.GoodSig == 0 || st.ValidSigs != st.GoodSig || len(st.Failures) > 0 {
				t.Fatalf("Check accepted %q: %+v", s, st)
			}
			if (st.BeginDecryption || len(st.EncTo) > 0) && !st.DecryptionOkay {
				t.Fatalf("Check accepted an undecrypted message %q", s)
			}
		}
	})
}
