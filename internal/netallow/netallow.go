// Package netallow is an allow-list of source addresses: exact IP
// addresses and CIDR networks, IPv4 and IPv6, matched with net/netip.
//
// Entries are compared in canonical form, so that the same address always
// matches however it is written:
//
//   - an IPv4-mapped IPv6 address (::ffff:192.0.2.1), as a dual-stack
//     listener reports IPv4 peers, is the IPv4 address it maps;
//   - a network is masked to its prefix ("10.1.2.3/8" is 10.0.0.0/8), and
//     an IPv4-mapped IPv6 network of /96 or longer is the IPv4 network;
//   - an IPv6 zone (fe80::1%eth0) is ignored when matching, and refused
//     in an entry (a zone is not part of an address one can allow);
//   - an exact address is a /32 or /128 network.
//
// [Parse] reports every bad entry at once. The zero List allows nobody; a
// server that means "anyone" keeps no List at all (a nil *List).
package netallow

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// List is a parsed allow-list. It is immutable and safe for concurrent use.
type List struct {
	prefixes []netip.Prefix // canonical, sorted, without duplicates
}

// ErrSyntax is wrapped by every error Parse returns for a bad entry.
var ErrSyntax = errors.New("netallow: not an IP address or CIDR network")

// EntryError is a bad entry of a list.
type EntryError struct {
	Entry string
	Err   error
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("netallow: %q: %v", e.Entry, e.Err)
}

// Unwrap returns ErrSyntax.
func (e *EntryError) Unwrap() error { return ErrSyntax }

// Parse parses entries: IP addresses ("192.0.2.1", "2001:db8::1") and
// CIDR networks ("10.0.0.0/8", "2001:db8::/32"). Surrounding space is
// trimmed and an entry may hold several, separated by commas or spaces
// ("10.0.0.1, 10.0.0.2"), as an environment variable would. The error,
// when there is one, joins an *EntryError for every bad entry. An empty
// input gives an empty List, which allows nobody.
func Parse(entries ...string) (*List, error) {
	var l List
	var errs []error
	for _, e := range entries {
		fields := strings.FieldsFunc(e, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
		if len(fields) == 0 {
			errs = append(errs, &EntryError{Entry: e, Err: errors.New("empty entry")})
			continue
		}
		for _, f := range fields {
			p, err := parseEntry(f)
			if err != nil {
				errs = append(errs, &EntryError{Entry: f, Err: err})
				continue
			}
			l.prefixes = append(l.prefixes, p)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	l.prefixes = normalize(l.prefixes)
	return &l, nil
}

// MustParse is Parse for lists known to be good, such as constants in
// tests; it panics on an error.
func MustParse(entries ...string) *List {
	l, err := Parse(entries...)
	if err != nil {
		panic(err)
	}
	return l
}

// FromPrefixes returns the List of ps, made canonical. It fails, naming
// each one, when some prefix is not valid (such as the zero Prefix).
func FromPrefixes(ps []netip.Prefix) (*List, error) {
	var l List
	var errs []error
	for _, p := range ps {
		if !p.IsValid() {
			errs = append(errs, &EntryError{Entry: p.String(), Err: errors.New("invalid prefix")})
			continue
		}
		l.prefixes = append(l.prefixes, canonicalPrefix(p))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	l.prefixes = normalize(l.prefixes)
	return &l, nil
}

func parseEntry(s string) (netip.Prefix, error) {
	if strings.Contains(s, "%") {
		return netip.Prefix{}, errors.New("an IPv6 zone is not allowed")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR network")
		}
		return canonicalPrefix(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an IP address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// canonicalPrefix masks p, drops a zone and turns an IPv4-mapped IPv6
// network of /96 or longer into its IPv4 network.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// normalize sorts ps and drops duplicates and networks another one covers.
func normalize(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].Bits() <= p.Bits() && out[n-1].Contains(p.Addr()) {
			continue // covered by the previous, wider or equal network
		}
		out = append(out, p)
	}
	return slices.Clip(out)
}

// Contains reports whether a is on the list. An IPv4-mapped IPv6 address
// is matched as its IPv4 address and a zone is ignored. A nil List
// contains nothing.
func (l *List) Contains(a netip.Addr) bool {
	if l == nil || !a.IsValid() {
		return false
	}
	a = a.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ContainsHostPort reports whether the address of hostport, such as an
// http.Request's RemoteAddr ("192.0.2.1:5555", "[2001:db8::1]:5555"), is on
// the list. A bare address without a port is taken too. Anything else is
// not on the list.
func (l *List) ContainsHostPort(hostport string) bool {
	a, ok := HostAddr(hostport)
	return ok && l.Contains(a)
}

// HostAddr returns the IP address of hostport ("192.0.2.1:5555",
// "[2001:db8::1]:5555" or a bare address), unmapped from IPv4-in-IPv6 and
// without a zone, and whether there was one.
func HostAddr(hostport string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// Prefixes returns the list's networks in canonical form, sorted.
func (l *List) Prefixes() []netip.Prefix {
	if l == nil {
		return nil
	}
	return slices.Clone(l.prefixes)
}

// Len returns the number of networks on the list, after canonical
// duplicates and covered networks were dropped.
func (l *List) Len() int {
	if l == nil {
		return 0
	}
	return len(l.prefixes)
}

// String returns the list as Parse takes it: its networks, comma
// separated, with exact addresses written without a prefix length.
func (l *List) String() string {
	if l == nil {
		return ""
	}
	var b strings.Builder
	for i, p := range l.prefixes {
		if i > 0 {
			b.WriteString(",")
		}
		if p.IsSingleIP() {
			b.WriteString(p.Addr().String())
		} else {
			b.WriteString(p.String())
		}
	}
	return b.String()
}
