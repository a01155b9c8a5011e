package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/tlsutil"
)

// tlsFlags are the TLS flags: a certificate and key turn TLS on; a client
// CA turns on mutual TLS.
type tlsFlags struct {
	cert, key, clientCA string
}

func (f *tlsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve HTTPS with the PEM certificate (and chain) in `FILE`; reread on SIGHUP")
	fs.StringVar(&f.key, "tls-key", "", "the PEM private key of --tls-cert, in `FILE`; reread on SIGHUP")
	fs.StringVar(&f.clientCA, "tls-client-ca", "", "require callers to present a client certificate signed by a CA in `FILE` (PEM; mutual TLS)")
}

// validate returns the problems of the flags.
func (f *tlsFlags) validate() []error {
	var errs []error
	if (f.cert == "") != (f.key == "") {
		errs = append(errs, fmt.Errorf("--tls-cert and --tls-key go together"))
	}
	if f.clientCA != "" && f.cert == "" {
		errs = append(errs, fmt.Errorf("--tls-client-ca needs --tls-cert and --tls-key"))
	}
	return errs
}

func (f *tlsFlags) enabled() bool { return f.cert != "" }

// serverConfig loads the files: nil, nil without TLS.
func (f *tlsFlags) serverConfig(logger *slog.Logger) (*tls.Config, *tlsutil.KeyPair, error) {
	if !f.enabled() {
		return nil, nil, nil
	}
	return tlsutil.NewServer(tlsutil.ServerConfig{CertFile: f.cert, KeyFile: f.key, ClientCAFile: f.clientCA, Logger: logger})
}

// newHandshakeCounter registers ykksm_tls_handshake_errors_total: TLS
// handshakes that failed, including those mutual TLS refused.
func newHandshakeCounter(reg prometheus.Registerer) (prometheus.Counter, error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ykksm_tls_handshake_errors_total",
		Help: "TLS handshakes that failed: no or an untrusted client certificate under mutual TLS, plain HTTP to the TLS port, clients that hung up.",
	})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}
