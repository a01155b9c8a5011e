package logscan_test

import (
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/logscan"
)

func TestScan(t *testing.T) {
	var s logscan.Set
	s.OTP("idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku")
	s.HexString("AES key", "c68c9df8cbfe7d2f994cb904046c7218")
	s.Base64("API secret", "EHmo8FMxuhumBlTinC4uYL0Mgwg=")
	s.Text("password", "s3cret-pw")
	s.Text("too short", "abc")
	s.Hex("token", []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4})
	tests := []struct {
		line string
		kind string // "" for no hit
	}{
		{`level=INFO msg=verify status=OK public_id=idkfefrdhtru`, ""},
		{`otp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku`, "OTP"},
		{`token tjduvtcjbfeuvhehdvjjlbchtlenfgku`, "OTP token"},
		{`key=C68C9DF8CBFE7D2F994CB904046C7218`, "AES key"},
		{`secret=EHmo8FMxuhumBlTinC4uYL0Mgwg`, "API secret"},
		{`key=1079a8f05331ba1ba60654e29c2e2e60bd0c8308`, "API secret (decoded)"},
		{`pw="s3cret-pw"`, "password"},
		{`abc abc`, ""},
		{`t=DEADBEEF01020304`, "token"},
	}
	for _, tt := range tests {
		hits := s.Scan("test", "first line\n"+tt.line)
		switch {
		case tt.kind == "" && len(hits) > 0:
			t.Errorf("Scan(%q) = %v, want no hit", tt.line, hits)
		case tt.kind != "" && (len(hits) == 0 || hits[0].Kind != tt.kind || hits[0].Line != 2):
			t.Errorf("Scan(%q) = %v, want a %s hit on line 2", tt.line, hits, tt.kind)
		}
	}
	// OTP 2, AES key 2, API secret 2 (its URL form is the unpadded one) +
	// decoded hex 2, password 1, token 2.
	if s.Len() != 11 {
		t.Errorf("Len() = %d, want 11 (the short value left out)", s.Len())
	}
	if hits := s.Scan("x", strings.Repeat("abc", 10)); len(hits) != 0 {
		t.Errorf("a value shorter than MinLen was searched for: %v", hits)
	}
}
