package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
)

// loopbackURL parses raw and accepts it only when it is an http or https URL whose
// host is, or resolves only to, loopback addresses: ykbench is a load
// generator and must never be pointed at someone else's server.
func loopbackURL(ctx context.Context, raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http://HOST:PORT or https://HOST:PORT on loopback", raw)
	}
	host := u.Hostname()
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("--url: %w", err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	if len(ips) == 0 {
		return nil, fmt.Errorf("--url %q: host has no address", raw)
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return nil, fmt.Errorf("--url %q: %s is not a loopback address; ykbench only loads servers on this machine", raw, ip)
		}
	}
	return u, nil
}
