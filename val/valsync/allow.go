package valsync

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/val"
)

// ParsePrefix reads one allow-list entry: an IP address ("192.0.2.7",
// "2001:db8::7", an IPv4-mapped IPv6 address counts as IPv4) or a network
// in CIDR notation ("192.0.2.0/24", "2001:db8::/32"). A single address is
// the prefix holding only it. The prefix is returned masked (host bits
// cleared), so that comparisons are canonical. It is package
// internal/netallow's reading of one entry, except that an IPv4-mapped
// network shorter than /96, which names no IPv4 network, is an error.
func ParsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil && p.Addr().Is4In6() && p.Bits() < 96 {
		return netip.Prefix{}, fmt.Errorf("valsync: %q: an IPv4-mapped network needs at least 96 bits", s)
	}
	if strings.ContainsAny(s, ", \t\r\n") { // netallow would split it
		return netip.Prefix{}, fmt.Errorf("valsync: %q: one address or network", s)
	}
	l, err := netallow.Parse(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("valsync: %w", err)
	}
	return l.Prefixes()[0], nil
}

// ParseAllowList reads allow-list entries (see ParsePrefix) and reports
// every bad one at once.
func ParseAllowList(entries []string) ([]netip.Prefix, error) {
	var (
		out  []netip.Prefix
		errs []error
	)
	for _, e := range entries {
		p, err := ParsePrefix(strings.TrimSpace(e))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	return out, errors.Join(errs...)
}

// Allowed reports whether addr (IPv4-mapped IPv6 taken as IPv4, a zone
// ignored) is in one of the valid prefixes.
func Allowed(prefixes []netip.Prefix, addr netip.Addr) bool {
	valid := make([]netip.Prefix, 0, len(prefixes))
	for _, p := range prefixes {
		if p.IsValid() {
			valid = append(valid, p)
		}
	}
	l, err := netallow.FromPrefixes(valid)
	return err == nil && l.Contains(addr)
}

// CheckPeer checks a peer's sync URL: http or https, a host, no query, no
// fragment, no user information, and at most val.MaxQueueServerLen bytes,
// so that it fits the queue table's server column (a URL cut short there
// would never be found again, and its rows never deleted).
func CheckPeer(peer string) error {
	u, err := url.Parse(peer)
	switch {
	case err != nil:
		return fmt.Errorf("valsync: peer %q: %w", peer, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("valsync: peer %q: not an http or https URL", peer)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("valsync: peer %q: no host", peer)
	case u.User != nil:
		return fmt.Errorf("valsync: peer %q: user information is not allowed", peer)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.ContainsAny(peer, "?#"):
		return fmt.Errorf("valsync: peer %q: the sync URL takes no query or fragment", peer)
	case len(peer) > val.MaxQueueServerLen:
		return fmt.Errorf("valsync: peer %q: longer than the queue table's %d bytes", peer, val.MaxQueueServerLen)
	case strings.ContainsAny(peer, " \t\r\n"):
		return fmt.Errorf("valsync: peer %q: whitespace", peer)
	}
	return nil
}
