package ksm

import (
	"errors"
	"fmt"
	"testing"
)

func TestResultString(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Result{1, 0x8d40, 0x0f, 0}, "OK counter=0001 low=8d40 high=0f use=00"},
		{Result{0x000f, 0xc541, 0xa7, 4}, "OK counter=000f low=c541 high=a7 use=04"},
		{Result{0x8002, 1, 1, 5}, "OK counter=8002 low=0001 high=01 use=05"},
		{Result{0xffff, 0xffff, 0xff, 0xff}, "OK counter=ffff low=ffff high=ff use=ff"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestLine(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{ErrNoOTP, "ERR No OTP provided"},
		{ErrFormat, "ERR Invalid OTP format"},
		{fmt.Errorf("lookup x: %w", ErrUnknownKey), "ERR Unknown yubikey"},
		{ErrCorrupt, "ERR Corrupt OTP"},
		{ErrDatabase, "ERR Database error"},
		{errors.New("anything else"), "ERR Database error"},
	}
	for _, tt := range tests {
		if got := Line(tt.err); got != tt.want {
			t.Errorf("Line(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		body    string
		want    Result
		wantErr error
	}{
		{"OK counter=0001 low=8d40 high=0f use=00\n", Result{1, 0x8d40, 0x0f, 0}, nil},
		{"OK counter=000F low=C541 high=A7 use=04", Result{0xf, 0xc541, 0xa7, 4}, nil},
		{"OK counter=0001 low=8d40 high=0f use=00 trailing\n", Result{1, 0x8d40, 0x0f, 0}, nil},
		{"OK counter=1 low=2 high=3 use=4\r\n", Result{1, 2, 3, 4}, nil},
		{"ERR Corrupt OTP\n", Result{}, ErrCorrupt},
		{"ERR Unknown yubikey\n", Result{}, ErrUnknownKey},
		{"ERR Database error\n", Result{}, ErrDatabase},
		{" OK counter=0001 low=8d40 high=0f use=00", Result{}, ErrAnswer},
		{"OK counter=0001 low=8d40 high=0f", Result{}, ErrAnswer},
		{"OK counter=10000 low=8d40 high=0f use=00", Result{}, ErrAnswer},
		{"OK counter=0001 low=8d40 high=100 use=00", Result{}, ErrAnswer},
		{"OK counter= low=8d40 high=0f use=00", Result{}, ErrAnswer},
		{"", Result{}, ErrAnswer},
		{"<html>", Result{}, ErrAnswer},
	}
	for _, tt := range tests {
		got, err := ParseAnswer(tt.body)
		if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
			t.Errorf("ParseAnswer(%q) error = %v, want %v", tt.body, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseAnswer(%q) = %+v, want %+v", tt.body, got, tt.want)
		}
	}
	var re *RemoteError
	if _, err := ParseAnswer("ERR Something new\n"); !errors.As(err, &re) || re.Msg != "Something new" {
		t.Errorf("ParseAnswer(ERR Something new) = %v, want RemoteError", err)
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add("OK counter=0001 low=8d40 high=0f use=00\n")
	f.Add("ERR Corrupt OTP\n")
	f.Add("OK counter=ffff low=ffff high=ff use=ff")
	f.Fuzz(func(t *testing.T, body string) {
		r, err := ParseAnswer(body)
		if err != nil {
			return
		}
		// Whatever parsed must print back to a line that parses the same.
		r2, err := ParseAnswer(r.String())
		if err != nil || r2 != r {
			t.Fatalf("ParseAnswer(%q) = %+v; reparse %+v, %v", body, r, r2, err)
		}
	})
}
