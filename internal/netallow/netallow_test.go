package netallow

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var parseTests = []struct {
	in   []string
	want string // String() of the list
}{
	{nil, ""},
	{[]string{"192.0.2.1"}, "192.0.2.1"},
	{[]string{" 192.0.2.1 "}, "192.0.2.1"},
	{[]string{"192.0.2.1/32"}, "192.0.2.1"},
	{[]string{"10.1.2.3/8"}, "10.0.0.0/8"},
	{[]string{"::ffff:192.0.2.1"}, "192.0.2.1"},
	{[]string{"::ffff:10.0.0.0/104"}, "10.0.0.0/8"},
	{[]string{"2001:DB8::1"}, "2001:db8::1"},
	{[]string{"2001:db8:0:0::/32"}, "2001:db8::/32"},
	{[]string{"10.0.0.1,10.0.0.2 10.0.0.3"}, "10.0.0.1,10.0.0.2,10.0.0.3"},
	{[]string{"10.0.0.2", "10.0.0.1", "10.0.0.2"}, "10.0.0.1,10.0.0.2"},
	{[]string{"10.0.0.5", "10.0.0.0/8", "10.3.0.0/16", "11.0.0.1"}, "10.0.0.0/8,11.0.0.1"},
	{[]string{"0.0.0.0/0", "::/0"}, "0.0.0.0/0,::/0"},
	{[]string{"2001:db8::/32", "192.0.2.0/24"}, "192.0.2.0/24,2001:db8::/32"},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		l, err := Parse(tt.in...)
		if err != nil {
			t.Errorf("Parse(%q) = %v, want %q", tt.in, err, tt.want)
			continue
		}
		if got := l.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
		// The string form parses back to the same list.
		l2, err := Parse(l.String())
		if tt.want == "" {
			continue // an empty string is an empty entry
		}
		if err != nil || !slices.Equal(l2.Prefixes(), l.Prefixes()) {
			t.Errorf("Parse(%q) = %v, %v; want %v", l.String(), l2.Prefixes(), err, l.Prefixes())
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		in  []string
		bad []string // entries the error must name
	}{
		{[]string{""}, []string{`""`}},
		{[]string{" , "}, []string{`" , "`}},
		{[]string{"localhost"}, []string{`"localhost"`}},
		{[]string{"10.0.0.256"}, []string{`"10.0.0.256"`}},
		{[]string{"10.0.0.0/33"}, []string{`"10.0.0.0/33"`}},
		{[]string{"10.0.0.0/"}, []string{`"10.0.0.0/"`}},
		{[]string{"fe80::1%eth0"}, []string{`"fe80::1%eth0"`}},
		{[]string{"10.0.0.1:80"}, []string{`"10.0.0.1:80"`}},
		{[]string{"10.0.0.1", "bad1", "10.0.0.0/8", "bad2/8", "10.0.0.0/8/8"}, []string{`"bad1"`, `"bad2/8"`, `"10.0.0.0/8/8"`}},
	} {
		l, err := Parse(tt.in...)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", tt.in, l)
			continue
		}
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, want it to wrap ErrSyntax", tt.in, err)
		}
		for _, b := range tt.bad {
			if !strings.Contains(err.Error(), b) {
				t.Errorf("Parse(%q) = %v, want it to name %s", tt.in, err, b)
			}
		}
		if n := strings.Count(err.Error(), "netallow:"); n != len(tt.bad) {
			t.Errorf("Parse(%q) = %v: %d problems, want %d", tt.in, err, n, len(tt.bad))
		}
	}
}

func TestContains(t *testing.T) {
	l := MustParse("192.0.2.1", "10.0.0.0/8", "2001:db8::/32", "fe80::1")
	for _, tt := range []struct {
		addr string
		want bool
	}{
		{"192.0.2.1", true},
		{"192.0.2.2", false},
		{"::ffff:192.0.2.1", true},
		{"10.255.255.255", true},
		{"11.0.0.0", false},
		{"::ffff:10.1.1.1", true},
		{"2001:db8:1::5", true},
		{"2001:db9::", false},
		{"fe80::1%eth0", true},
		{"fe80::2", false},
		{"::", false},
	} {
		if got := l.Contains(netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%s) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	if l.Contains(netip.Addr{}) {
		t.Error("Contains(zero Addr) = true, want false")
	}
	var nilList *List
	if nilList.Contains(netip.MustParseAddr("192.0.2.1")) || nilList.Len() != 0 || nilList.String() != "" {
		t.Error("a nil List contains something")
	}
	empty := MustParse()
	if empty.Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Error("an empty List contains 127.0.0.1")
	}
}

func TestContainsHostPort(t *testing.T) {
	l := MustParse("127.0.0.1", "2001:db8::/32")
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"127.0.0.1:4000", true},
		{"127.0.0.2:4000", false},
		{"[::ffff:127.0.0.1]:4000", true},
		{"[2001:db8::7]:80", true},
		{"[2001:db8::7%lo]:80", true},
		{"127.0.0.1", true},
		{"2001:db8::1", true},
		{"localhost:80", false},
		{"", false},
		{"@", false},
	} {
		if got := l.ContainsHostPort(tt.in); got != tt.want {
			t.Errorf("ContainsHostPort(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFromPrefixes(t *testing.T) {
	l, err := FromPrefixes([]netip.Prefix{netip.MustParsePrefix("10.1.0.0/8"), netip.MustParsePrefix("::ffff:192.0.2.0/120")})
	if err != nil || l.String() != "10.0.0.0/8,192.0.2.0/24" {
		t.Errorf("FromPrefixes = %v, %v; want 10.0.0.0/8,192.0.2.0/24", l, err)
	}
	if _, err := FromPrefixes([]netip.Prefix{{}}); !errors.Is(err, ErrSyntax) {
		t.Errorf("FromPrefixes(zero Prefix) = %v, want ErrSyntax", err)
	}
}

func FuzzParse(f *testing.F) {
	for _, tt := range parseTests {
		f.Add(strings.Join(tt.in, ","))
	}
	for _, s := range []string{"", "fe80::1%eth0", "10.0.0.0/33", "::ffff:0.0.0.0/95", "1.2.3.4/0", "a,b", "::/129"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) = %v, not wrapping ErrSyntax", s, err)
			}
			return
		}
		// Canonical: the string form parses back to the same networks.
		if l.Len() > 0 {
			l2, err := Parse(l.String())
			if err != nil || !slices.Equal(l2.Prefixes(), l.Prefixes()) {
				t.Fatalf("Parse(%q) -> %q -> %v, %v; want %v", s, l.String(), l2.Prefixes(), err, l.Prefixes())
			}
		}
		for _, p := range l.Prefixes() {
			if p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
				t.Fatalf("Parse(%q) holds non-canonical %v", s, p)
			}
			if !l.Contains(p.Addr()) {
				t.Fatalf("Parse(%q) does not contain its own %v", s, p.Addr())
			}
			if p.Addr().Is4() && !l.Contains(netip.AddrFrom16(p.Addr().As16())) {
				t.Fatalf("Parse(%q) does not contain the IPv4-mapped form of %v", s, p.Addr())
			}
		}
	})
}
