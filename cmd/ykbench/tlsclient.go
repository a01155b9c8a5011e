package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/tlsutil"
)

// tlsClientFlags are the flags of an https:// URL: the CA that signs the
// server's certificate and, for mutual TLS, a client certificate.
type tlsClientFlags struct {
	caFile, certFile, keyFile string
	http2                     bool
}

func (f *tlsClientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.caFile, "cacert", "", "for an https URL: trust the CAs in `FILE` (PEM) instead of the system's")
	fs.StringVar(&f.certFile, "cert", "", "for an https URL: present the client certificate in `FILE` (PEM; mutual TLS)")
	fs.StringVar(&f.keyFile, "key", "", "the PEM private key of --cert, in `FILE`")
	fs.BoolVar(&f.http2, "http2", false, "for an https URL and --client std: speak HTTP/2, one connection per worker")
}

// validate reports the problems of the flags that need no URL.
func (f *tlsClientFlags) validate() error {
	if (f.certFile == "") != (f.keyFile == "") {
		return errors.New("--cert and --key go together")
	}
	return nil
}

func (f *tlsClientFlags) isZero() bool {
	return f.caFile == "" && f.certFile == "" && f.keyFile == "" && !f.http2
}

// config returns the client TLS configuration for base: nil for an http
// URL (which then takes no TLS flag). Every connection speaks HTTP/1.1
// (HTTP/2 with --http2) and checks the server's certificate against the
// host of base; workers share one session cache, so a reconnecting worker
// resumes its session.
func (f *tlsClientFlags) config(base *url.URL) (*tls.Config, error) {
	if base.Scheme != "https" {
		if !f.isZero() {
			return nil, fmt.Errorf("--cacert, --cert and --key go with an https URL, not %q", base.Scheme)
		}
		return nil, nil
	}
	tc, _, err := tlsutil.NewClient(tlsutil.ClientConfig{CAFile: f.caFile, CertFile: f.certFile, KeyFile: f.keyFile})
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc.ServerName = base.Hostname()
	tc.NextProtos = []string{"http/1.1"}
	if f.http2 {
		tc.NextProtos = []string{"h2"}
	}
	tc.ClientSessionCache = tls.NewLRUClientSessionCache(0)
	return tc, nil
}
