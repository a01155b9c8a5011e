package ksmclient

import (
	"net/url"
	"strings"
	"testing"
)

var prefixTests = []struct{ base, want string }{
	{"http://127.0.0.1:8002/wsapi/decrypt", "http://127.0.0.1:8002/wsapi/decrypt?otp="},
	{"http://h/wsapi/decrypt?", "http://h/wsapi/decrypt?otp="},
	{"http://h/wsapi/decrypt?otp=", "http://h/wsapi/decrypt?otp="},
	{"http://h/wsapi/decrypt?a=1&otp=", "http://h/wsapi/decrypt?a=1&otp="},
	{"http://h/wsapi/decrypt?a=1", "http://h/wsapi/decrypt?a=1&otp="},
	{"http://h/wsapi/decrypt?a=1&", "http://h/wsapi/decrypt?a=1&otp="},
	{"http://h/wsapi/decrypt?xotp=", "http://h/wsapi/decrypt?xotp=&otp="},
	{"https://[::1]:8443/wsapi/decrypt.php", "https://[::1]:8443/wsapi/decrypt.php?otp="},
}

func TestOTPPrefix(t *testing.T) {
	for _, tt := range prefixTests {
		if got, err := otpPrefix(tt.base); got != tt.want || err != nil {
			t.Errorf("otpPrefix(%q) = %q, %v, want %q", tt.base, got, err, tt.want)
		}
	}
}

// FuzzRequestURL checks the URL a Decrypt request goes to: for every base
// URL New accepts and every OTP, it parses, keeps the base's path and query,
// and its last otp parameter is the OTP.
func FuzzRequestURL(f *testing.F) {
	for _, tt := range prefixTests {
		f.Add(tt.base, "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku")
	}
	f.Add("http://h/x", "a b&c=d+e%zz#f?g;h")
	f.Add("http://h/x?a=%zz", "")
	f.Fuzz(func(t *testing.T, base, otp string) {
		prefix, err := otpPrefix(base)
		if err != nil {
			return
		}
		full := prefix + url.QueryEscape(otp)
		u, err := url.Parse(full)
		if err != nil {
			t.Fatalf("otpPrefix(%q) + escaped %q = %q does not parse: %v", base, otp, full, err)
		}
		b, _ := url.Parse(base)
		if u.Scheme != b.Scheme || u.Host != b.Host || u.Path != b.Path {
			t.Fatalf("request URL %q, base %q: scheme, host or path changed", full, base)
		}
		if !strings.HasPrefix(u.RawQuery, b.RawQuery) {
			t.Fatalf("request URL %q lost the base's query %q", full, b.RawQuery)
		}
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			if _, berr := url.ParseQuery(b.RawQuery); berr == nil {
				t.Fatalf("request query %q does not parse (%v), though the base's does", u.RawQuery, err)
			}
			return
		}
		if all := q["otp"]; len(all) == 0 || all[len(all)-1] != otp {
			t.Fatalf("request URL %q: otp values %q, want the last to be %q", full, all, otp)
		}
	})
}
