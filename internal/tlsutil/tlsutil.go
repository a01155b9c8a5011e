// Package tlsutil builds the TLS configurations of ykstack's servers and
// clients from PEM files, and reloads certificates without a restart.
//
// A [KeyPair] is a certificate and private key read from two files. Its
// Reload reads them again and swaps the new pair in atomically for the
// handshakes that follow; connections already established, and requests
// on them, are not touched. When the new files are bad (unreadable,
// unparsable, a key that does not match the certificate, or a certificate
// already expired) Reload keeps the pair it has, logs an error and returns
// it, so a half-written renewal never takes a server down. Write renewed
// files by renaming them into place, certificate and key, then signal.
// A [Reloader] catches SIGHUP (or another signal) and reloads on it.
//
// [NewServer] returns a server configuration: TLS 1.2 or later, the
// certificate from a KeyPair, and, with a client CA file, mutual TLS
// (tls.RequireAndVerifyClientCert): a client without a certificate signed
// by one of those CAs (for client authentication) fails the handshake and
// never reaches a handler. The client CA file is read once, at start. It
// negotiates HTTP/1.1 only, also with clients that offer HTTP/2 (see
// NewServer).
//
// [NewClient] returns a client configuration: the CAs of a file instead of
// the system's roots when one is given, and a client certificate (a
// reloadable KeyPair) for servers that ask for one.
//
// [ErrorLog] is an http.Server ErrorLog that turns the server's "TLS
// handshake error" lines into log records and a callback (for a metric).
package tlsutil

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// expirySoon is how close to its end a loaded certificate gets a warning.
const expirySoon = 7 * 24 * time.Hour

// KeyPair is a certificate and its private key, read from files and
// reloadable. It is safe for concurrent use.
type KeyPair struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time
	cur               atomic.Pointer[tls.Certificate]
	mu                sync.Mutex // serializes Reload
}

// LoadKeyPair reads a PEM certificate (with its chain) and private key. A
// nil logger discards.
func LoadKeyPair(certFile, keyFile string, logger *slog.Logger) (*KeyPair, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	k := &KeyPair{certFile: certFile, keyFile: keyFile, log: logger, now: time.Now}
	c, err := k.load()
	if err != nil {
		return nil, err
	}
	k.cur.Store(c)
	k.logLoaded("tls: certificate loaded", c)
	return k, nil
}

func (k *KeyPair) load() (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: certificate %s, key %s: %w", k.certFile, k.keyFile, err)
	}
	if c.Leaf == nil { // filled in by LoadX509KeyPair since Go 1.23
		if c.Leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tlsutil: certificate %s: %w", k.certFile, err)
		}
	}
	if now := k.now(); now.After(c.Leaf.NotAfter) {
		return nil, fmt.Errorf("tlsutil: certificate %s expired at %s", k.certFile, c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &c, nil
}

func (k *KeyPair) logLoaded(msg string, c *tls.Certificate) {
	k.log.Info(msg, "cert", k.certFile, "subject", c.Leaf.Subject.String(),
		"serial", c.Leaf.SerialNumber.Text(16), "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339))
	if left := c.Leaf.NotAfter.Sub(k.now()); left < expirySoon {
		k.log.Warn("tls: certificate expires soon", "cert", k.certFile, "not_after", c.Leaf.NotAfter.UTC().Format(time.RFC3339), "left", left.Round(time.Minute).String())
	}
}

// Reload reads the files again. On success the new pair serves the
// handshakes that follow; on failure the current pair stays, the error is
// logged and returned.
func (k *KeyPair) Reload() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	c, err := k.load()
	if err != nil {
		k.log.Error("tls: reload failed; keeping the current certificate", "err", err)
		return err
	}
	k.cur.Store(c)
	k.logLoaded("tls: certificate reloaded", c)
	return nil
}

// Certificate returns the current pair, with its Leaf.
func (k *KeyPair) Certificate() *tls.Certificate { return k.cur.Load() }

// GetCertificate is for tls.Config.GetCertificate: the current pair.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.cur.Load(), nil
}

// GetClientCertificate is for tls.Config.GetClientCertificate: the current
// pair, whatever CAs the server asks for (a server that does not trust it
// refuses the handshake, which is the clearer error).
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.cur.Load(), nil
}

// LoadCertPool reads the PEM certificates of file into a new pool; a file
// without one is an error.
func LoadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsutil: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ServerConfig names a server's TLS files.
type ServerConfig struct {
	// CertFile and KeyFile are the server's certificate (with its chain)
	// and private key, PEM. Required.
	CertFile, KeyFile string
	// ClientCAFile, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of its CAs, PEM.
	ClientCAFile string
	// Logger receives the load and reload records. Nil discards.
	Logger *slog.Logger
}

// NewServer returns a server tls.Config for cfg and its reloadable pair.
// The config may be given to http.Server.TLSConfig or tls.NewListener.
//
// The config speaks HTTP/1.1 only, even under http.Server.ServeTLS (which
// adds "h2" to NextProtos): its handshakes use a copy whose ALPN list is
// "http/1.1" alone, so a client offering HTTP/2 and HTTP/1.1 (curl, say)
// gets HTTP/1.1, one offering no protocol gets HTTP/1.1 as before, and one
// offering only HTTP/2 fails the handshake (no_application_protocol). The servers' APIs are one short request and
// answer per round trip, for which HTTP/2 costs the server 60–75% more CPU
// per request than HTTP/1.1 over TLS (measured with ykbench --http2 against
// ykksmd) and buys nothing.
//
// Cipher suites and key exchange are crypto/tls's defaults: TLS 1.3 with
// AES-128-GCM first on CPUs with AES instructions (ChaCha20-Poly1305
// otherwise), X25519MLKEM768 then X25519 for the key exchange, and session
// tickets for resumption.
func NewServer(cfg ServerConfig) (*tls.Config, *KeyPair, error) {
	var errs []error
	if cfg.CertFile == "" {
		errs = append(errs, errors.New("tlsutil: no certificate file"))
	}
	if cfg.KeyFile == "" {
		errs = append(errs, errors.New("tlsutil: no key file"))
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	var pool *x509.CertPool
	var kp *KeyPair
	var err error
	if cfg.ClientCAFile != "" {
		if pool, err = LoadCertPool(cfg.ClientCAFile); err != nil {
			errs = append(errs, err)
		}
	}
	if kp, err = LoadKeyPair(cfg.CertFile, cfg.KeyFile, cfg.Logger); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.GetCertificate, NextProtos: http1Only}
	if pool != nil {
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	// The handshakes use hs, a copy that ServeTLS does not see, so its
	// ALPN list stays HTTP/1.1 alone. hs is made once: its session ticket
	// keys (crypto/tls makes and rotates them) serve every connection.
	hs := tc.Clone()
	tc.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return hs, nil }
	return tc, kp, nil
}

// http1Only is the ALPN list of the servers' handshakes.
var http1Only = []string{"http/1.1"}

// ClientConfig names a client's TLS files; every field is optional.
type ClientConfig struct {
	// CAFile holds the CAs that sign the servers' certificates, PEM. Empty
	// means the system's roots.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key, PEM, for
	// servers that require mutual TLS. Both or neither.
	CertFile, KeyFile string
	// ServerName, when set, is the name the servers' certificates are
	// checked against instead of the host of the URL.
	ServerName string
	// Logger receives the client certificate's load and reload records.
	// Nil discards.
	Logger *slog.Logger
}

// IsZero reports whether cfg names no file and no server name.
func (cfg ClientConfig) IsZero() bool {
	return cfg.CAFile == "" && cfg.CertFile == "" && cfg.KeyFile == "" && cfg.ServerName == ""
}

// NewClient returns a client tls.Config for cfg, and the client's
// reloadable pair (nil without a client certificate).
func NewClient(cfg ClientConfig) (*tls.Config, *KeyPair, error) {
	var errs []error
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		errs = append(errs, errors.New("tlsutil: a client certificate needs both a certificate file and a key file"))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.ServerName}
	if cfg.CAFile != "" {
		pool, err := LoadCertPool(cfg.CAFile)
		if err != nil {
			errs = append(errs, err)
		}
		tc.RootCAs = pool
	}
	var kp *KeyPair
	if cfg.CertFile != "" && cfg.KeyFile != "" {
		var err error
		if kp, err = LoadKeyPair(cfg.CertFile, cfg.KeyFile, cfg.Logger); err != nil {
			errs = append(errs, err)
		} else {
			tc.GetClientCertificate = kp.GetClientCertificate
		}
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
	}
	return tc, kp, nil
}

// Reloader catches a reload signal (SIGHUP, say) from the moment
// CatchReload returns until Stop, so that the signal never ends the
// process, even while a server is still starting up; Run then acts on it.
// A server catches the signal first thing and runs its reloads once it has
// built what they reload: `systemctl reload` right after start (systemd's
// Type=exec counts a service as started once it runs) is then a reload, not
// the end of the server. Run and Stop are called from one goroutine.
type Reloader struct {
	sig    os.Signal
	ch     chan os.Signal
	cancel context.CancelFunc // set by Run
	done   chan struct{}      // closed when Run's goroutine returns
	once   sync.Once
}

// CatchReload starts catching sig.
func CatchReload(sig os.Signal) *Reloader {
	r := &Reloader{sig: sig, ch: make(chan os.Signal, 1)}
	signal.Notify(r.ch, sig)
	return r
}

// Run calls each reload function every time the signal arrives, first for a
// signal caught before Run, until ctx is done or Stop is called; each logs
// its own result (KeyPair.Reload keeps the old pair when the new files are
// bad). With none, the signal is logged and otherwise ignored. Call Run at
// most once.
func (r *Reloader) Run(ctx context.Context, logger *slog.Logger, reloads ...func()) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-r.ch:
				if len(reloads) == 0 {
					logger.Info("tls: got a reload signal; nothing to reload", "signal", r.sig.String())
				}
				for _, reload := range reloads {
					reload()
				}
			}
		}
	}()
}

// Stop stops catching the signal and waits for Run's goroutine to return.
// Calling it again does nothing.
func (r *Reloader) Stop() {
	r.once.Do(func() {
		signal.Stop(r.ch)
		if r.cancel != nil {
			r.cancel()
			<-r.done
		}
	})
}

// ErrorLog returns a logger for http.Server.ErrorLog: a "TLS handshake
// error" line calls onHandshakeError (if not nil) and is logged at Info
// with the client's address, or at Debug when the client just hung up
// (EOF: port scanners, TCP health checks); any other line is logged at
// Warn.
func ErrorLog(logger *slog.Logger, onHandshakeError func()) *log.Logger {
	return log.New(errorLogWriter{logger, onHandshakeError}, "", 0)
}

type errorLogWriter struct {
	log         *slog.Logger
	onHandshake func()
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	const marker = "http: TLS handshake error from "
	rest, ok := strings.CutPrefix(line, marker)
	if !ok {
		w.log.Warn(line)
		return len(p), nil
	}
	if w.onHandshake != nil {
		w.onHandshake()
	}
	// "ADDR: ERR"; ADDR may be IPv6 in brackets, which holds no ": ".
	remote, msg, _ := strings.Cut(rest, ": ")
	level := slog.LevelInfo
	if msg == "EOF" || strings.HasSuffix(msg, ": EOF") {
		level = slog.LevelDebug
	}
	w.log.Log(context.Background(), level, "tls: handshake failed", "remote", remote, "err", msg)
	return len(p), nil
}
