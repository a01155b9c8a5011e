// Package ksmclient is an HTTP client of YK-KSM's decrypt API, as YK-VAL
// uses it: it asks every configured KSM at once and takes the first OK.
//
// Each KSM is named by the URL of its decrypt endpoint, such as
// http://127.0.0.1:8002/wsapi/decrypt; the client adds "otp=" and the
// URL-escaped OTP to its query. [Client.Decrypt] sends the request to all
// KSMs in parallel with one deadline (10 seconds by default, as YK-VAL had)
// and returns the first answer that parses as an OK line; the other requests
// are then cancelled. When no KSM says OK, the [*Error] it returns tells two
// cases apart:
//
//   - every KSM gave a verdict ("ERR Unknown yubikey", "ERR Corrupt OTP",
//     "ERR Invalid OTP format" or "ERR No OTP provided"): the error wraps
//     those *ksm.RemoteError answers, so errors.Is(err, ksm.ErrCorrupt) and
//     the like work, and the OTP is bad;
//   - at least one KSM gave none (unreachable, timed out, HTTP status 400 or
//     more, a malformed answer, "ERR Database error" or another ERR line):
//     the error wraps ErrUnavailable and no verdict, because the KSM that
//     could not answer may be the one holding the key.
//
// YK-VAL answered BAD_OTP in both cases; a caller that tells them apart can
// answer BACKEND_ERROR for the second. A KSM's refusal (ykksmd answers
// HTTP 403 "ERR Access denied", 429 "ERR Rate limited" or 503 "ERR Server
// busy"; see ksm/ksmserver) is of the second kind.
//
// For https KSMs, Config names a CA file to trust instead of the system's
// roots and a client certificate for KSMs that require mutual TLS.
//
// The OTP travels in the URL, as the protocol has it. Errors never include
// it: a transport error's URL is dropped and only the KSM's base URL is named.
package ksmclient

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/ksm"
)

// Defaults of Config.
const (
	DefaultTimeout             = 10 * time.Second
	DefaultUserAgent           = "YK-VAL"
	DefaultMaxIdleConnsPerHost = 64
)

// maxAnswer is how much of an answer body is read; an OK line is 40 bytes.
const maxAnswer = 1 << 10

// ErrUnavailable means that no KSM gave a verdict on the OTP.
var ErrUnavailable = errors.New("ksmclient: no KSM available")

// ErrConfig reports an invalid Config.
var ErrConfig = errors.New("ksmclient: invalid configuration")

// Config configures a Client.
type Config struct {
	// URLs of the KSMs' decrypt endpoints, http or https, such as
	// http://127.0.0.1:8002/wsapi/decrypt. A URL may carry a query of its
	// own; one that ends in "otp=" (as YK-VAL's otp2ksmurls built them) gets
	// the OTP appended directly. At least one.
	URLs []string
	// Timeout bounds each Decrypt, all KSMs together. Zero means DefaultTimeout.
	Timeout time.Duration
	// UserAgent is sent with every request. Empty means DefaultUserAgent.
	UserAgent string
	// HTTPClient sends the requests. Nil means a client of this package's
	// own: HTTP/1.1 keep-alive connections (also over https),
	// MaxIdleConnsPerHost idle ones kept per KSM, no proxy (the
	// environment's proxy settings are ignored), and redirects not
	// followed, like YK-VAL's curl.
	HTTPClient *http.Client
	// MaxIdleConnsPerHost sizes the default HTTPClient's pool for the
	// number of concurrent requests expected. Zero means DefaultMaxIdleConnsPerHost.
	MaxIdleConnsPerHost int
	// MaxConnsPerHost, when positive, caps the default HTTPClient's
	// connections to each KSM, and so the calls in flight to it; more wait
	// for a connection within the Decrypt's deadline. Zero means no cap.
	MaxConnsPerHost int

	// CAFile names a PEM file of the CAs that sign the certificates of
	// https KSMs, trusted instead of the system's roots. Empty means the
	// system's roots. Only with the default HTTPClient.
	CAFile string
	// CertFile and KeyFile name the PEM client certificate and key sent to
	// KSMs that require mutual TLS (ykksmd --tls-client-ca). Both or
	// neither; only with the default HTTPClient. ReloadTLS reads them again.
	CertFile, KeyFile string
}

// Client asks KSMs to decrypt OTPs. It is safe for concurrent use.
type Client struct {
	bases     []string // base URLs, for errors
	prefixes  []string // base URLs up to and including "otp="
	timeout   time.Duration
	userAgent string
	hc        *http.Client
	cert      *tlsutil.KeyPair // the client certificate, or nil
}

// New returns a Client for cfg, or an error wrapping ErrConfig that lists
// every problem with it.
func New(cfg Config) (*Client, error) {
	var errs []error
	var cert *tlsutil.KeyPair
	if len(cfg.URLs) == 0 {
		errs = append(errs, fmt.Errorf("%w: no KSM URL", ErrConfig))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("%w: negative timeout %v", ErrConfig, cfg.Timeout))
	}
	if cfg.MaxIdleConnsPerHost < 0 {
		errs = append(errs, fmt.Errorf("%w: negative MaxIdleConnsPerHost %d", ErrConfig, cfg.MaxIdleConnsPerHost))
	}
	if cfg.MaxConnsPerHost < 0 {
		errs = append(errs, fmt.Errorf("%w: negative MaxConnsPerHost %d", ErrConfig, cfg.MaxConnsPerHost))
	}
	var tc *tls.Config
	if tlsCfg := (tlsutil.ClientConfig{CAFile: cfg.CAFile, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile}); !tlsCfg.IsZero() {
		if cfg.HTTPClient != nil {
			errs = append(errs, fmt.Errorf("%w: CAFile, CertFile and KeyFile go with the default HTTPClient, not one of the caller's", ErrConfig))
		} else {
			var err error
			if tc, cert, err = tlsutil.NewClient(tlsCfg); err != nil {
				errs = append(errs, fmt.Errorf("%w: %w", ErrConfig, err))
			}
		}
	}
	c := &Client{timeout: cfg.Timeout, userAgent: cfg.UserAgent, hc: cfg.HTTPClient, cert: cert}
	for _, s := range cfg.URLs {
		p, err := otpPrefix(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		c.bases = append(c.bases, s)
		c.prefixes = append(c.prefixes, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.hc == nil {
		n := cfg.MaxIdleConnsPerHost
		if n == 0 {
			n = DefaultMaxIdleConnsPerHost
		}
		c.hc = &http.Client{
			Transport: &http.Transport{
				DialContext: (&net.Dialer{KeepAlive: 30 * time.Second}).DialContext,
				// HTTP/1.1 on https too: for requests this small,
				// Go's HTTP/2 cost 25-60% more CPU per decrypt than
				// HTTP/1.1 keep-alive (cmd/ykksmd's
				// BenchmarkDecryptTransport), and a pool of
				// connections does not queue behind one.
				ForceAttemptHTTP2:   false,
				MaxIdleConnsPerHost: n,
				MaxConnsPerHost:     cfg.MaxConnsPerHost,
				IdleConnTimeout:     90 * time.Second,
				TLSHandshakeTimeout: 10 * time.Second,
				TLSClientConfig:     tc,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return c, nil
}

// otpPrefix checks a KSM URL and returns it up to and including "otp=".
func otpPrefix(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: KSM URL %q: %w", ErrConfig, s, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%w: KSM URL %q: scheme must be http or https", ErrConfig, s)
	case u.Host == "":
		return "", fmt.Errorf("%w: KSM URL %q: no host", ErrConfig, s)
	case u.Fragment != "" || strings.Contains(s, "#"):
		return "", fmt.Errorf("%w: KSM URL %q: has a fragment", ErrConfig, s)
	case u.RawQuery == "" && !u.ForceQuery:
		return s + "?otp=", nil
	case u.RawQuery == "otp=" || strings.HasSuffix(u.RawQuery, "&otp="):
		return s, nil
	case u.RawQuery == "" || strings.HasSuffix(u.RawQuery, "&"):
		return s + "otp=", nil
	default:
		return s + "&otp=", nil
	}
}

// URLs returns the KSM URLs the client asks, as configured.
func (c *Client) URLs() []string { return append([]string(nil), c.bases...) }

// CloseIdleConnections closes the idle keep-alive connections to the KSMs.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// ReloadTLS reads Config.CertFile and KeyFile again; new connections
// present the new certificate (see tlsutil.KeyPair.Reload: on an error the
// old one stays). Without a client certificate it does nothing.
func (c *Client) ReloadTLS() error {
	if c.cert == nil {
		return nil
	}
	return c.cert.Reload()
}

// Decrypt asks every KSM to decrypt otp and returns the counters of the
// first OK answer. Otherwise the error is an *Error: see the package
// documentation for what it wraps.
func (c *Client) Decrypt(ctx context.Context, otp string) (ksm.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel() // also cancels the requests still running when one wins
	q := url.QueryEscape(otp)
	if len(c.prefixes) == 1 {
		res, err := c.ask(ctx, 0, q)
		if err != nil {
			return ksm.Result{}, newError(c.bases, []error{err})
		}
		return res, nil
	}
	type answer struct {
		i   int
		res ksm.Result
		err error
	}
	answers := make(chan answer, len(c.prefixes)) // buffered: losers never block
	for i := range c.prefixes {
		go func() {
			res, err := c.ask(ctx, i, q)
			answers <- answer{i, res, err}
		}()
	}
	errs := make([]error, len(c.prefixes))
	for range c.prefixes {
		a := <-answers
		if a.err == nil {
			return a.res, nil
		}
		errs[a.i] = a.err
	}
	return ksm.Result{}, newError(c.bases, errs)
}

// ask sends one request: q is the escaped OTP.
func (c *Client) ask(ctx context.Context, i int, q string) (ksm.Result, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.prefixes[i]+q, nil)
	if err != nil {
		return ksm.Result{}, redact(err)
	}
	req.Header.Set("User-Agent", c.userAgent)
	resp, err := c.hc.Do(req)
	if err != nil {
		return ksm.Result{}, redact(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return ksm.Result{}, fmt.Errorf("read answer: %w", redact(err))
	}
	// Drain a little more so the connection can be reused.
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode >= 400 {
		// Refusals (ykksmd's 403, 429, 503) say why on their first line.
		line, _, _ := strings.Cut(string(body), "\n")
		if line = strings.TrimSpace(line); line != "" {
			return ksm.Result{}, fmt.Errorf("HTTP status %s: %.80q", resp.Status, line)
		}
		return ksm.Result{}, fmt.Errorf("HTTP status %s", resp.Status)
	}
	return ksm.ParseAnswer(string(body))
}

// redact drops the request URL, which holds the OTP, from a transport error.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// Error is what Decrypt returns when no KSM said OK.
type Error struct {
	// URLs are the KSMs asked, and Errs what each answered or failed with:
	// a *ksm.RemoteError for an ERR answer, ksm.ErrAnswer for a malformed
	// one, or a transport or HTTP error.
	URLs []string
	Errs []error
	// Unavailable is true when some KSM gave no verdict (see Verdict).
	Unavailable bool
}

func newError(urls []string, errs []error) *Error {
	e := &Error{URLs: urls, Errs: errs}
	for _, err := range errs {
		if !Verdict(err) {
			e.Unavailable = true
		}
	}
	return e
}

// Verdict reports whether err is a KSM's verdict on an OTP: an ERR answer
// meaning the OTP is not genuine (ksm.ErrNoOTP, ErrFormat, ErrUnknownKey or
// ErrCorrupt), rather than a failure to decide.
func Verdict(err error) bool {
	var re *ksm.RemoteError
	if !errors.As(err, &re) {
		return false
	}
	switch re.Unwrap() {
	case ksm.ErrNoOTP, ksm.ErrFormat, ksm.ErrUnknownKey, ksm.ErrCorrupt:
		return true
	}
	return false
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Unavailable {
		b.WriteString("ksmclient: no KSM available")
	} else {
		b.WriteString("ksmclient: OTP rejected")
	}
	for i, err := range e.Errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s: %v", e.URLs[i], err)
	}
	return b.String()
}

// Unwrap returns the KSMs' verdicts when every KSM gave one; otherwise
// ErrUnavailable and the errors that are not verdicts, so that errors.Is
// finds no verdict in an error that has ErrUnavailable.
func (e *Error) Unwrap() []error {
	if !e.Unavailable {
		return e.Errs
	}
	out := []error{ErrUnavailable}
	for _, err := range e.Errs {
		if !Verdict(err) {
			out = append(out, err)
		}
	}
	return out
}
