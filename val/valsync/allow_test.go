package valsync_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/val/valsync"
)

func TestParsePrefix(t *testing.T) {
	tests := []struct {
		in, want string // want "" for an error
	}{
		{"192.0.2.7", "192.0.2.7/32"},
		{"::ffff:192.0.2.7", "192.0.2.7/32"},
		{"2001:db8::7", "2001:db8::7/128"},
		{"2001:0db8:0000::0007", "2001:db8::7/128"},
		{"192.0.2.0/24", "192.0.2.0/24"},
		{"192.0.2.77/24", "192.0.2.0/24"},
		{"::ffff:192.0.2.0/120", "192.0.2.0/24"},
		{"2001:db8::/32", "2001:db8::/32"},
		{"0.0.0.0/0", "0.0.0.0/0"},
		{"::ffff:0.0.0.0/64", ""},
		{"192.0.2.0/33", ""},
		{"fe80::1%eth0", ""},
		{"example.com", ""},
		{"192.0.2.*", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, err := valsync.ParsePrefix(tt.in)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParsePrefix(%q) = %v, want an error", tt.in, got)
		case tt.want != "" && (err != nil || got.String() != tt.want):
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}

func TestAllowed(t *testing.T) {
	list, err := valsync.ParseAllowList([]string{"192.0.2.7", " 198.51.100.0/24 ", "2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr string
		want bool
	}{
		{"192.0.2.7", true},
		{"::ffff:192.0.2.7", true},
		{"192.0.2.8", false},
		{"198.51.100.200", true},
		{"198.51.101.1", false},
		{"2001:db8:1::5", true},
		{"2001:db9::1", false},
		{"::1", false},
	}
	for _, tt := range tests {
		if got := valsync.Allowed(list, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Allowed(%v, %s) = %v, want %v", list, tt.addr, got, tt.want)
		}
	}
	if _, err := valsync.ParseAllowList([]string{"bad", "192.0.2.1", "also/bad"}); err == nil || strings.Count(err.Error(), "\n") != 1 {
		t.Errorf("ParseAllowList(two bad entries) error = %v, want both reported", err)
	}
}

func TestCheckPeer(t *testing.T) {
	tests := []struct {
		peer string
		ok   bool
	}{
		{"https://val2.example.com/wsapi/2.0/sync", true},
		{"http://127.0.0.1:8080/wsapi/2.0/sync", true},
		{"http://[::1]:8080/wsapi/2.0/sync.php", true},
		{"ftp://val2.example.com/wsapi/2.0/sync", false},
		{"val2.example.com/wsapi/2.0/sync", false},
		{"https:///wsapi/2.0/sync", false},
		{"https://val2.example.com/wsapi/2.0/sync?x=1", false},
		{"https://val2.example.com/wsapi/2.0/sync?", false},
		{"https://val2.example.com/wsapi/2.0/sync#f", false},
		{"https://user:pw@val2.example.com/wsapi/2.0/sync", false},
		{"https://" + strings.Repeat("v", 80) + ".example.com/wsapi/2.0/sync", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := valsync.CheckPeer(tt.peer); (err == nil) != tt.ok {
			t.Errorf("CheckPeer(%q) = %v, want ok %v", tt.peer, err, tt.ok)
		}
	}
}
