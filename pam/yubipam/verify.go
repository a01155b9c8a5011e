package yubipam

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

// Verifier asks validation servers about an OTP. Verify returns nil only for
// an OK; its errors are judged by VerifyCode.
type Verifier interface {
	Verify(ctx context.Context, otp string) error
}

// VerifyCode maps a Verifier's result to the module's return code, as the
// original maps libykclient's: OK is PAM_SUCCESS; BAD_OTP and REPLAYED_OTP
// (and an OTP too malformed to send, which a server would answer BAD_OTP)
// are PAM_AUTH_ERR; everything else (no server reachable, BAD_SIGNATURE,
// NO_SUCH_CLIENT, BACKEND_ERROR, a bad response signature, a missing nonce
// or OTP echo, …) is PAM_AUTHINFO_UNAVAIL.
func VerifyCode(err error) Code {
	switch {
	case err == nil:
		return Success
	case errors.Is(err, valclient.ErrBadOTP), errors.Is(err, valclient.ErrReplayedOTP),
		errors.Is(err, valclient.ErrInvalidOTP):
		return AuthErr
	}
	return AuthinfoUnavail
}

// skipStatuses are answers that do not decide a login: the module waits for
// the other servers instead. REPLAYED_REQUEST and unknown statuses are
// skipped by libykclient too; BACKEND_ERROR is skipped so that one server
// with a broken database does not fail logins another server could accept.
var skipStatuses = map[val.Status]bool{
	val.StatusReplayedRequest: true,
	val.StatusBackendError:    true,
}

// ErrNoServer means no validation server gave a usable answer.
var ErrNoServer = errors.New("yubipam: no validation server gave a usable answer")

// ServerVerifier asks every configured validation server at once through
// valclient and takes the first answer that decides: unreachable servers,
// bad responses and BACKEND_ERROR or REPLAYED_REQUEST answers are skipped
// while another server may still answer.
type ServerVerifier struct {
	configs []valclient.Config // one per server; Logger set per call
	log     *slog.Logger
}

// ServerOptions are the settings of a ServerVerifier.
type ServerOptions struct {
	URLs     []string
	ClientID int64
	Key      string // base64 API key; "" for unsigned requests
	CAPath   string // directory of PEM CA certificates
	CAInfo   string // PEM CA bundle
	Proxy    string // proxy URL (http, https, socks5, socks5h; no scheme means http; default port 1080)
	Timeout  time.Duration
	Log      *slog.Logger // debug logs; nil discards
}

// NewServerVerifier builds a verifier from opts.
func NewServerVerifier(opts ServerOptions) (*ServerVerifier, error) {
	tr := &http.Transport{
		Proxy:                 nil, // never from the environment: only proxy=
		DialContext:           (&net.Dialer{Timeout: opts.Timeout, KeepAlive: -1}).DialContext,
		TLSHandshakeTimeout:   opts.Timeout,
		ResponseHeaderTimeout: opts.Timeout,
		DisableKeepAlives:     true,
		ForceAttemptHTTP2:     false,
	}
	if opts.Proxy != "" {
		p, err := ParseProxy(opts.Proxy)
		if err != nil {
			return nil, err
		}
		tr.Proxy = http.ProxyURL(p)
	}
	if opts.CAPath != "" || opts.CAInfo != "" {
		pool, err := loadCAs(opts.CAPath, opts.CAInfo)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := &http.Client{Transport: tr, Timeout: opts.Timeout}
	v := &ServerVerifier{log: log}
	for _, u := range opts.URLs {
		c := valclient.Config{
			URLs:       []string{u},
			ClientID:   opts.ClientID,
			APIKey:     opts.Key,
			Timeout:    opts.Timeout,
			HTTPClient: hc,
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("yubipam: %w", err)
		}
		v.configs = append(v.configs, c)
	}
	if len(v.configs) == 0 {
		return nil, errors.New("yubipam: no validation server URL")
	}
	return v, nil
}

// Verify asks all servers in parallel and returns the first deciding
// answer: nil for OK, a valclient error for any other status. When no server
// decides it returns an error wrapping ErrNoServer and every server's error.
func (v *ServerVerifier) Verify(ctx context.Context, otp string) error {
	if _, err := valclient.Normalize(otp); err != nil {
		return err // the OTP cannot be valid; no server needs to see it
	}
	// The client library logs response bodies, which echo the OTP, at
	// debug level: hide the OTP's token part from this call's logs.
	log := slog.New(redactHandler{v.log.Handler(), otp[len(otp)-OTPTokenLength:]})
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(v.configs))
	for _, cfg := range v.configs {
		cfg.Logger = log
		c, err := valclient.New(cfg)
		if err != nil {
			errs <- err
			continue
		}
		go func() {
			_, err := c.Verify(ctx, otp)
			errs <- err
		}()
	}
	var skipped []error
	for range v.configs {
		err := <-errs
		if decides(err) {
			return err
		}
		v.log.Debug("yubipam: server answer skipped", "err", err)
		skipped = append(skipped, err)
	}
	return fmt.Errorf("%w: %w", ErrNoServer, errors.Join(skipped...))
}

// decides reports whether a server's answer ends the request.
func decides(err error) bool {
	if err == nil {
		return true
	}
	var se *valclient.StatusError
	if errors.As(err, &se) {
		return !skipStatuses[se.Status]
	}
	return false // transport error, bad signature, echo mismatch, no verdict
}

// ParseProxy reads proxy= like curl: no scheme means http, no port means
// 1080. The schemes Go can use are http, https, socks5 and socks5h.
func ParseProxy(s string) (*url.URL, error) {
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("yubipam: proxy: %w", err)
	}
	switch u.Scheme {
	case "http", "https", "socks5", "socks5h":
	default:
		return nil, fmt.Errorf("yubipam: proxy scheme %q not supported (http, https, socks5, socks5h)", u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("yubipam: proxy %q has no host", s)
	}
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), "1080")
	}
	return u, nil
}

// loadCAs builds a certificate pool from a bundle file and every PEM file
// of a directory. As with curl's CAINFO/CAPATH, these replace the system
// roots.
func loadCAs(dir, file string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	if file != "" {
		pem, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("yubipam: cainfo: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("yubipam: cainfo %s: no PEM certificate", file)
		}
		n++
	}
	if dir != "" {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("yubipam: capath: %w", err)
		}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			pem, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err == nil && pool.AppendCertsFromPEM(pem) {
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("yubipam: capath %s: no PEM certificate", dir)
		}
	}
	return pool, nil
}

// redactHandler replaces a secret in every string it logs.
type redactHandler struct {
	h      slog.Handler
	secret string
}

func (r redactHandler) Enabled(ctx context.Context, l slog.Level) bool { return r.h.Enabled(ctx, l) }

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.hide(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) attr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, len(g))
		for i, x := range g {
			out[i] = r.attr(x)
		}
		return slog.Group(a.Key, out...)
	case slog.KindString:
		return slog.String(a.Key, r.hide(v.String()))
	case slog.KindAny:
		if err, ok := v.Any().(error); ok {
			return slog.String(a.Key, r.hide(err.Error()))
		}
		return slog.String(a.Key, r.hide(v.String()))
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func (r redactHandler) hide(s string) string { return strings.ReplaceAll(s, r.secret, "<token>") }

func (r redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = r.attr(a)
	}
	return redactHandler{r.h.WithAttrs(out), r.secret}
}

func (r redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{r.h.WithGroup(name), r.secret}
}
