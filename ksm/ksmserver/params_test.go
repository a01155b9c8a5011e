package ksmserver

import (
	"net/url"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/ksm"
)

var formValueTests = []struct {
	query, name string
	want        string
	ok          bool
}{
	{"", "otp", "", false},
	{"otp", "otp", "", true},
	{"otp=", "otp", "", true},
	{"otp=abc", "otp", "abc", true},
	{"a=1&otp=abc&b=2", "otp", "abc", true},
	{"otp=one&otp=two", "otp", "two", true},
	{"otpx=abc", "otp", "", false},
	{"xotp=abc", "otp", "", false},
	{"OTP=abc", "otp", "", false},
	{"o%74p=abc", "otp", "abc", true},
	{"otp=a+b", "otp", "a b", true},
	{"otp=%41%4a%4A", "otp", "AJJ", true},
	{"otp=%zz%4", "otp", "%zz%4", true},
	{"otp=%", "otp", "%", true},
	{"otp=a;b", "otp", "a;b", true},
	{"otp=a=b", "otp", "a=b", true},
	{"&&otp=x&&", "otp", "x", true},
	{"otp=%00", "otp", "\x00", true},
}

func TestFormValue(t *testing.T) {
	for _, tt := range formValueTests {
		got, ok := formValue(tt.query, tt.name)
		if got != tt.want || ok != tt.ok {
			t.Errorf("formValue(%q, %q) = %q, %v, want %q, %v", tt.query, tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// FuzzFormValue checks formValue against url.ParseQuery wherever the latter
// accepts the whole query (no ';', no bad escape): both must find the same
// last value.
func FuzzFormValue(f *testing.F) {
	for _, tt := range formValueTests {
		f.Add(tt.query)
	}
	f.Fuzz(func(t *testing.T, query string) {
		got, ok := formValue(query, "otp")
		if !ok && got != "" {
			t.Errorf("formValue(%q) = %q, false, want \"\" when not found", query, got)
		}
		vs, err := url.ParseQuery(query)
		if err != nil || strings.Contains(query, ";") {
			return
		}
		want, wantOK := "", false
		if all := vs["otp"]; len(all) > 0 {
			want, wantOK = all[len(all)-1], true
		}
		if got != want || ok != wantOK {
			t.Errorf("formValue(%q) = %q, %v; url.ParseQuery says %q, %v", query, got, ok, want, wantOK)
		}
	})
}

func TestAppendResult(t *testing.T) {
	for _, r := range []ksm.Result{
		{},
		{Counter: 1, Low: 0x8d40, High: 0x0f, Use: 0},
		{Counter: 0xffff, Low: 0xffff, High: 0xff, Use: 0xff},
		{Counter: 0x8002, Low: 0x0001, High: 0x01, Use: 0x05},
		{Counter: 0x0abc, Low: 0x00de, High: 0x0f, Use: 0xa0},
	} {
		if got, want := string(appendResult(nil, r)), r.String()+"\n"; got != want {
			t.Errorf("appendResult(%+v) = %q, want %q", r, got, want)
		}
	}
}

func FuzzAppendResult(f *testing.F) {
	f.Add(uint16(1), uint16(0x8d40), uint8(0x0f), uint8(0))
	f.Fuzz(func(t *testing.T, c, l uint16, h, u uint8) {
		r := ksm.Result{Counter: c, Low: l, High: h, Use: u}
		if got, want := string(appendResult(nil, r)), r.String()+"\n"; got != want {
			t.Errorf("appendResult(%+v) = %q, want %q", r, got, want)
		}
		back, err := ksm.ParseAnswer(string(appendResult(nil, r)))
		if err != nil || back != r {
			t.Errorf("ParseAnswer(appendResult(%+v)) = %+v, %v", r, back, err)
		}
	})
}
