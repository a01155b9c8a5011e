package e2e_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"mime/multipart"
	"net/url"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
)

// signedQuery returns the query of fields with h, the signature under key,
// appended.
func signedQuery(key []byte, fields ...string) string {
	q := url.Values{}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		q.Set(k, v)
	}
	h := val.Sign(key, val.FieldsFromValues(q))
	return q.Encode() + "&h=" + url.QueryEscape(h)
}

func TestSignedRequests(t *testing.T) {
	// Spec 5.2's request signature vector.
	const vectorH = "ehhpPyH9W/uL5v/1XGd52oN8yMg="
	if h := val.Sign(clientKey, []val.Field{{Key: "id", Value: "1"}, {Key: "nonce", Value: nonceKaka}, {Key: "otp", Value: line1}}); h != vectorH {
		t.Fatalf("Sign(request vector) = %s, want %s", h, vectorH)
	}
	otherKey := []byte("01234567890123456789")
	badSig := crlfBody(sign(clientKey, "status=BAD_SIGNATURE"), "status=BAD_SIGNATURE")
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			var src otpSource
			tests := []struct {
				name  string
				query func(fresh string) string
				ok    bool
			}{
				{"vector", func(string) string {
					return "id=1&nonce=" + nonceKaka + "&otp=" + line1 + "&h=" + url.QueryEscape(vectorH)
				}, true},
				{"vector, h not escaped", func(string) string {
					return "id=1&nonce=" + nonceBaka + "&otp=" + line2 + "&h=" + val.Sign(clientKey, []val.Field{{Key: "id", Value: "1"}, {Key: "nonce", Value: nonceBaka}, {Key: "otp", Value: line2}})
				}, true},
				{"with every parameter", func(f string) string {
					return signedQuery(clientKey, "id=1", "otp="+f, "nonce="+nonceKaka, "sl=secure", "timeout=3", "timestamp=1", "foo=bar")
				}, true},
				{"raw values signed", func(f string) string {
					return signedQuery(clientKey, "id=1", "otp="+strings.ToUpper(f), "nonce= "+nonceKaka+"\t")
				}, true},
				{"normalised values signed", func(f string) string {
					q := signedQuery(clientKey, "id=1", "otp="+f, "nonce="+nonceKaka)
					return strings.Replace(q, "otp="+f, "otp="+strings.ToUpper(f), 1)
				}, false},
				{"unsigned parameter added", func(f string) string {
					return signedQuery(clientKey, "id=1", "otp="+f, "nonce="+nonceKaka) + "&foo=bar"
				}, false},
				{"other key", func(f string) string {
					return signedQuery(otherKey, "id=1", "otp="+f, "nonce="+nonceKaka)
				}, false},
				{"garbage h", func(f string) string {
					return "id=1&otp=" + f + "&nonce=" + nonceKaka + "&h=xyz"
				}, false},
				{"empty h is unsigned", func(f string) string {
					return "id=1&otp=" + f + "&nonce=" + nonceKaka + "&h="
				}, true},
			}
			for _, tt := range tests {
				fresh := src.next()
				q := tt.query(fresh)
				body, r := s.get(t, "/wsapi/2.0/verify?"+q)
				switch {
				case tt.ok && (r.Status() != val.StatusOK || !r.Verify(clientKey)):
					t.Errorf("%s: GET verify?%s = %q, want OK signed with the client key", tt.name, q, body)
				case !tt.ok && body != badSig:
					t.Errorf("%s: GET verify?%s =\n%q\nwant\n%q", tt.name, q, body, badSig)
				}
			}
			// A bad signature does not consume the OTP.
			fresh := src.next()
			s.get(t, "/wsapi/2.0/verify?"+signedQuery(otherKey, "id=1", "otp="+fresh, "nonce="+nonceKaka))
			if _, r := s.get(t, "/wsapi/2.0/verify?"+signedQuery(clientKey, "id=1", "otp="+fresh, "nonce="+nonceKaka)); r.Status() != val.StatusOK {
				t.Errorf("OTP after a BAD_SIGNATURE attempt: %s, want OK", r.Status())
			}
		})
	}
}

func TestPOST(t *testing.T) {
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			var src otpSource
			const form = "application/x-www-form-urlencoded"

			fresh := src.next()
			if _, r := s.post(t, "/wsapi/2.0/verify", form, signedQuery(clientKey, "id=1", "otp="+fresh, "nonce="+nonceKaka)); r.Status() != val.StatusOK || r.Get("otp") != fresh || !r.Verify(clientKey) {
				t.Errorf("POST signed form: %s, want OK", r.Status())
			}

			fresh = src.next()
			var mp bytes.Buffer
			w := multipart.NewWriter(&mp)
			w.WriteField("id", "1")
			w.WriteField("otp", fresh)
			w.WriteField("nonce", nonceKaka)
			w.Close()
			if _, r := s.post(t, "/wsapi/2.0/verify", w.FormDataContentType(), mp.String()); r.Status() != val.StatusOK || r.Get("otp") != fresh {
				t.Errorf("POST multipart form: %s, want OK", r.Status())
			}

			// The query string wins when it has any parameter: the body is not read.
			fresh = src.next()
			if _, r := s.post(t, "/wsapi/2.0/verify?id=1", form, "otp="+fresh+"&nonce="+nonceKaka); r.Status() != val.StatusMissingParameter || !r.Verify(nil) {
				t.Errorf("POST with a query: %s, want MISSING_PARAMETER (the query's parameters only)", r.Status())
			}
			// An empty query ("?" or "?&") has no parameter: the body counts.
			if _, r := s.post(t, "/wsapi/2.0/verify?&", form, "id=1&otp="+fresh+"&nonce="+nonceKaka); r.Status() != val.StatusOK {
				t.Errorf("POST with an empty query: %s, want OK", r.Status())
			}
			// v1 over POST.
			fresh = src.next()
			if body, r := s.post(t, "/wsapi/verify", form, "id=1&otp="+fresh); r.Status() != val.StatusOK || len(r.Fields) != 2 {
				t.Errorf("POST v1: %q, want OK with no extras", body)
			}
			// A body over the limit is ignored.
			fresh = src.next()
			big := "id=1&otp=" + fresh + "&nonce=" + nonceKaka + "&pad=" + strings.Repeat("x", valserver.MaxBodySize)
			if _, r := s.post(t, "/wsapi/2.0/verify", form, big); r.Status() != val.StatusMissingParameter {
				t.Errorf("POST of %d bytes: %s, want MISSING_PARAMETER (body ignored)", len(big), r.Status())
			}
			// Another content type is not a form.
			if _, r := s.post(t, "/wsapi/2.0/verify", "text/plain", "id=1&otp="+fresh+"&nonce="+nonceKaka); r.Status() != val.StatusMissingParameter {
				t.Errorf("POST text/plain: %s, want MISSING_PARAMETER", r.Status())
			}
		})
	}
}

// TestClients checks inactive clients, and a client created by the store
// (as ykval-gen-clients does) whose API key signs requests.
func TestClients(t *testing.T) {
	ctx := context.Background()
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			var src otpSource
			if _, err := s.store.ImportClients(ctx, []val.Client{{ID: 7, Active: false, Created: 1, Secret: ciSecret}}); err != nil {
				t.Fatal(err)
			}
			want := crlfBody(sign(nil, "status=NO_SUCH_CLIENT"), "status=NO_SUCH_CLIENT")
			if body, _ := s.get(t, "/wsapi/2.0/verify?"+signedQuery(clientKey, "id=7", "otp="+src.next(), "nonce="+nonceKaka)); body != want {
				t.Errorf("inactive client: %q, want %q", body, want)
			}

			secret := make([]byte, 20)
			rand.Read(secret)
			created, err := s.store.CreateClients(ctx, val.Client{Active: true, Created: fixedTime.Unix(), Secret: base64.StdEncoding.EncodeToString(secret)}, 1)
			if err != nil {
				t.Fatal(err)
			}
			c := created[0]
			if c.ID != 8 {
				t.Errorf("created client id %d, want 8", c.ID)
			}
			id := "id=" + itoa(int(c.ID))
			if _, r := s.get(t, "/wsapi/2.0/verify?"+signedQuery(secret, id, "otp="+src.next(), "nonce="+nonceKaka)); r.Status() != val.StatusOK || !r.Verify(secret) {
				t.Errorf("new client, signed: %s (signed with its key: %v), want OK", r.Status(), r.Verify(secret))
			}
			if _, r := s.get(t, "/wsapi/2.0/verify?"+signedQuery(clientKey, id, "otp="+src.next(), "nonce="+nonceKaka)); r.Status() != val.StatusBadSignature || !r.Verify(secret) {
				t.Errorf("new client, signed with another key: %s, want BAD_SIGNATURE signed with the client's key", r.Status())
			}
		})
	}
}

func TestInactiveKey(t *testing.T) {
	ctx := context.Background()
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			var src otpSource
			if _, r := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+src.next()); r.Status() != val.StatusOK {
				t.Fatalf("enrol: %s", r.Status())
			}
			if err := s.store.SetActive(ctx, ciPublicID, false); err != nil {
				t.Fatal(err)
			}
			fresh := src.next()
			want := crlfBody(sign(clientKey, "status=BAD_OTP"), "status=BAD_OTP")
			if body, _ := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+fresh); body != want {
				t.Errorf("disabled key: %q, want %q", body, want)
			}
			if err := s.store.SetActive(ctx, ciPublicID, true); err != nil {
				t.Fatal(err)
			}
			if _, r := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+fresh); r.Status() != val.StatusOK {
				t.Errorf("re-enabled key, the OTP refused while disabled: %s, want OK", r.Status())
			}
		})
	}
}

// TestEmptyPublicID verifies a 32-character OTP: a key with an empty public
// ID, which YK-VAL 2.40+ answered BACKEND_ERROR for.
func TestEmptyPublicID(t *testing.T) {
	ctx := context.Background()
	k := ksm.Key{SerialNr: 9, PublicName: "", Created: "0", InternalName: "0102030405ff", AESKey: "000102030405060708090a0b0c0d0e0f", Active: true}
	aes, _ := otp.ParseKey(k.AESKey)
	uid, _ := otp.ParseUID(k.InternalName)
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			if err := s.ksmStore.Import(ctx, []ksm.Key{k}); err != nil {
				t.Fatal(err)
			}
			o := otp.Generate("", aes, otp.Token{UID: uid, Counter: 1, Use: 0, Random: 7})
			if len(o) != 32 {
				t.Fatalf("OTP %q has %d characters", o, len(o))
			}
			if _, r := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+o); r.Status() != val.StatusOK || r.Get("otp") != o {
				t.Errorf("32-character OTP: %s, want OK", r.Status())
			}
			if _, r := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceBaka+"&otp="+o); r.Status() != val.StatusReplayedOTP {
				t.Errorf("32-character OTP again: %s, want REPLAYED_OTP", r.Status())
			}
			if st, err := s.store.KeyState(ctx, ""); err != nil || st.Counter != 1 {
				t.Errorf("KeyState(\"\") = %+v, %v; want counter 1", st, err)
			}
		})
	}
}

// TestKSMDown checks that a KSM without a verdict is BACKEND_ERROR, signed
// with the client's key, never OK nor BAD_OTP: its database closed (the
// HTTP KSM then answers "ERR Database error"), and in HTTP mode the KSM's
// server gone.
func TestKSMDown(t *testing.T) {
	want := crlfBody(sign(clientKey, "status=BACKEND_ERROR"), "status=BACKEND_ERROR")
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			s.ksmStore.Close()
			if body, _ := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+line1); body != want {
				t.Errorf("KSM database closed: %q, want %q", body, want)
			}
			if s.ksmSrv == nil {
				return
			}
			s = newStack(t, su)
			s.ksmSrv.Close()
			if body, _ := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+line1); body != want {
				t.Errorf("KSM server down: %q, want %q", body, want)
			}
		})
	}
}
