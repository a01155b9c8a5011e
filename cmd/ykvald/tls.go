package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/tlsutil"
)

// tlsFlags are the server's TLS flags: a certificate and key turn HTTPS on.
type tlsFlags struct {
	cert, key string
}

func (f *tlsFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve HTTPS with the PEM certificate (and chain) in `FILE`; reread on SIGHUP")
	fs.StringVar(&f.key, "tls-key", "", "the PEM private key of --tls-cert, in `FILE`; reread on SIGHUP")
}

// validate returns the problems of the flags.
func (f *tlsFlags) validate() []error {
	if (f.cert == "") != (f.key == "") {
		return []error{fmt.Errorf("--tls-cert and --tls-key go together")}
	}
	return nil
}

func (f *tlsFlags) enabled() bool { return f.cert != "" }

// serverConfig loads the files: nil, nil without TLS.
func (f *tlsFlags) serverConfig(logger *slog.Logger) (*tls.Config, *tlsutil.KeyPair, error) {
	if !f.enabled() {
		return nil, nil, nil
	}
	return tlsutil.NewServer(tlsutil.ServerConfig{CertFile: f.cert, KeyFile: f.key, Logger: logger})
}

// newHandshakeCounter registers ykval_tls_handshake_errors_total.
func newHandshakeCounter(reg prometheus.Registerer) (prometheus.Counter, error) {
	c := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ykval_tls_handshake_errors_total",
		Help: "TLS handshakes that failed: untrusted certificates, plain HTTP to the TLS port, clients that hung up.",
	})
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}
