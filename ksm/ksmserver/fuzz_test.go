package ksmserver_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// answerRE is every answer the decrypt API may give.
var answerRE = regexp.MustCompile(`^(OK counter=[0-9a-f]{4} low=[0-9a-f]{4} high=[0-9a-f]{2} use=[0-9a-f]{2}|ERR (No OTP provided|Invalid OTP format|Unknown yubikey|Corrupt OTP|Database error))\n$`)

// FuzzDecryptHandler sends arbitrary queries and bodies to the decrypt
// handler over a SQLite store holding the CI key: every request gets HTTP 200
// and exactly one answer line.
func FuzzDecryptHandler(f *testing.F) {
	store, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: testdb.SQLite(f)})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close() })
	if err := store.Import(context.Background(), []ksm.Key{ciKey, docKey2}); err != nil {
		f.Fatal(err)
	}
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: store})
	if err != nil {
		f.Fatal(err)
	}

	form := "application/x-www-form-urlencoded"
	for _, s := range []struct {
		post               bool
		query, ctype, body string
	}{
		{false, "otp=" + ciOTP, "", ""},
		{false, "otp=" + corruptOTP, "", ""},
		{false, "otp=cccccccccccdvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", "", ""},
		{false, "otp=0", "", ""},
		{false, "otp=%zz" + ciOTP, "", ""},
		{false, "otp[]=" + ciOTP, "", ""},
		{false, "", "", ""},
		{true, "", form, "otp=" + ciOTP},
		{true, "otp=" + corruptOTP, form, "otp=" + ciOTP},
		{true, "", form, "otp=" + strings.Repeat("c", 5000)},
		{true, "", "multipart/form-data; boundary=zz", "--zz\r\nContent-Disposition: form-data; name=\"otp\"\r\n\r\n" + ciOTP + "\r\n--zz--\r\n"},
		{true, "", "multipart/form-data; boundary=zz", "--zz\r\n\r\n"},
		{true, "", "text/plain", "\xff\x00"},
	} {
		f.Add(s.post, s.query, s.ctype, s.body)
	}
	f.Fuzz(func(t *testing.T, post bool, query, ctype, body string) {
		method := http.MethodGet
		if post {
			method = http.MethodPost
		}
		req := httptest.NewRequest(method, "/wsapi/decrypt", strings.NewReader(body))
		req.URL.RawQuery = query
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK || !answerRE.MatchString(rec.Body.String()) {
			t.Fatalf("%s ?%q %q %q = %d %q, want 200 and one answer line", method, query, ctype, body, rec.Code, rec.Body.String())
		}
		if strings.HasPrefix(rec.Body.String(), "ERR Database error") {
			t.Fatalf("%s ?%q %q %q = %q: the database is up", method, query, ctype, body, rec.Body.String())
		}
	})
}
