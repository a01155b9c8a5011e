package e2e_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/cmd/ykvald/ksmadapter"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
)

// fuzzPaths are the verify paths a fuzz input picks from.
var fuzzPaths = []string{"/wsapi/2.0/verify", "/wsapi/verify", "/wsapi/1.1/verify", "/wsapi/3.0/verify.php"}

// FuzzVerifyHandler sends arbitrary query strings and form bodies to the
// verify handler over a SQLite store and an in-process KSM holding the CI
// key: the answer is always HTTP 200 and a well-formed response with a known
// status, signed with the empty key or the client's; OK comes only for a
// genuine OTP of the CI key, and only once per OTP.
func FuzzVerifyHandler(f *testing.F) {
	for i, c := range ruleCases {
		path := c.path
		if path == "" {
			path = fuzzPaths[0]
		}
		p := uint8(0)
		for j, fp := range fuzzPaths {
			if fp == path {
				p = uint8(j)
			}
		}
		f.Add(p, expand(c.query, mint(3, uint8(i))), "")
	}
	f.Add(uint8(0), "id=1&otp="+line1+"&nonce="+nonceKaka, "")
	f.Add(uint8(0), "", "id=1&otp="+line2+"&nonce="+nonceKaka)
	f.Add(uint8(1), "id=1&otp="+line4+"&h=ehhpPyH9W/uL5v/1XGd52oN8yMg=", "")
	f.Add(uint8(0), "id=1&otp=%00%ff&nonce=\\k\\a&sl=%&timeout=%zz&&=&id[]=1", "otp=1")

	ctx := context.Background()
	ks, err := ksmsqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ks.Close() })
	if err := ks.Import(ctx, []ksm.Key{ciKey}); err != nil {
		f.Fatal(err)
	}
	store, err := valsqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	if _, err := store.ImportClients(ctx, []val.Client{ciClient}); err != nil {
		f.Fatal(err)
	}
	mux, err := valserver.NewMux(valserver.Config{Store: store, KSM: ksmadapter.New(ksmserver.NewDecrypter(ks, nil))})
	if err != nil {
		f.Fatal(err)
	}
	aes, _ := otp.ParseKey(ciKey.AESKey)
	uid, _ := otp.ParseUID(ciKey.InternalName)
	accepted := map[otp.Token]bool{} // positions of the OTPs answered OK

	f.Fuzz(func(t *testing.T, p uint8, query, body string) {
		path := fuzzPaths[int(p)%len(fuzzPaths)]
		method := http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.URL.RawQuery = query
		req.RequestURI = path + "?" + query
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)

		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Fatalf("%s %s?%q body %q: HTTP %d %q", method, path, query, body, rec.Code, rec.Header().Get("Content-Type"))
		}
		r, err := val.ParseResponse(rec.Body.Bytes())
		if err != nil {
			t.Fatalf("%s?%q body %q: answer %q: %v", path, query, body, rec.Body, err)
		}
		st := r.Status()
		if !st.Known() || st == val.StatusOperationNotAllowed {
			t.Fatalf("%s?%q: status %q, want a verify status", path, query, st)
		}
		if !r.Verify(nil) && !r.Verify(clientKey) {
			t.Fatalf("%s?%q: answer %q signed with neither the empty nor the client's key", path, query, rec.Body)
		}
		if st != val.StatusOK {
			return
		}
		// OK: the request held a genuine OTP, never accepted before.
		params := val.ParseQuery(query)
		if len(params) == 0 {
			params = val.ParseQuery(body)
		}
		vr, problem := val.ParseRequest(req.RequestURI, params)
		if problem != nil {
			t.Fatalf("%s?%q body %q: OK, but ParseRequest refuses it: %v", path, query, body, problem)
		}
		pub, token, err := otp.Split(vr.OTP)
		if err != nil || pub != ciPublicID {
			t.Fatalf("%s?%q: OK for OTP %q, not one of the CI key", path, query, vr.OTP)
		}
		tok, err := otp.Decrypt(aes, uid, token)
		if err != nil {
			t.Fatalf("%s?%q: OK for OTP %q that does not decrypt: %v", path, query, vr.OTP, err)
		}
		pos := otp.Token{Counter: tok.Counter, Use: tok.Use}
		if accepted[pos] {
			t.Fatalf("%s?%q: OK twice for counter %d use %d", path, query, tok.Counter, tok.Use)
		}
		accepted[pos] = true
	})
}
