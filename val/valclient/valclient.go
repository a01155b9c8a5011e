// Package valclient is a client for the YubiKey validation protocol 2.0: it
// asks one or more validation servers (ykstack's or Yubico's YK-VAL, or
// YubiCloud) whether a YubiKey OTP is valid.
//
// Like Yubico's yubico-c-client, Verify sends one signed request (id, a
// fresh random nonce, the OTP and timestamp=1) to every configured server at
// once and takes the first final answer:
//
//   - With an API key, every response's signature is checked; a response
//     that fails the check counts as a failed server, never as an answer.
//   - An OK must echo the request's OTP and nonce, or it is rejected.
//   - REPLAYED_REQUEST (another server of the pool may already have seen this
//     request through replication) and unknown statuses are not final: Verify
//     keeps waiting for the other servers.
//   - Any other known status is final, and the remaining requests are
//     cancelled.
//
// Verify returns a nil error only for an OK: every other outcome is an
// error, so a caller that checks err cannot mistake a refusal for success.
// Errors for statuses match sentinels with errors.Is (ErrBadOTP,
// ErrReplayedOTP, …) and are *StatusError values.
//
// Security: configure an API key. Without one, requests are unsigned and
// responses unchecked, so anyone on the network path can forge an OK; use
// https URLs in any case. The API key is secret: it never appears in logs.
// OTPs are logged only shortened, at debug level; response bodies (which echo
// the OTP) are logged at debug level only.
//
// Only protocol 2.0 URLs (…/wsapi/2.0/verify) work: protocol 1.x servers do
// not echo the nonce, so their OK answers are rejected.
package valclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ykstack/ykstack/val"
)

// DefaultTimeout bounds a Verify call when Config.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// maxBody is the largest response body read; real ones are a few hundred bytes.
const maxBody = 16 << 10

// Config configures a Client.
type Config struct {
	// URLs are the full verify URLs of the servers, all asked at once,
	// e.g. https://val1.example.com/wsapi/2.0/verify. They must be http or
	// https and carry no query.
	URLs []string
	// ClientID is the API client id the servers know (1 to 10 digits).
	ClientID int64
	// APIKey is the client's base64 API key (the secret of ykval-gen-clients
	// or YubiCloud). Empty means unsigned requests and unchecked responses.
	APIKey string
	// Timeout bounds one Verify call; zero means DefaultTimeout.
	Timeout time.Duration
	// SyncLevel is sent as sl when set: "fast", "secure", or a percentage
	// 1–100 of the server's sync pool that must confirm the OTP.
	SyncLevel string
	// HTTPClient makes the requests; nil means a new client with
	// http.DefaultTransport's settings. Set one for custom CAs or proxies.
	HTTPClient *http.Client
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	if len(c.URLs) == 0 {
		errs = append(errs, errors.New("no server URL"))
	}
	for _, s := range c.URLs {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("URL %q: %w", s, err))
		case u.Scheme != "http" && u.Scheme != "https":
			errs = append(errs, fmt.Errorf("URL %q: scheme must be http or https", s))
		case u.Host == "":
			errs = append(errs, fmt.Errorf("URL %q: no host", s))
		case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
			errs = append(errs, fmt.Errorf("URL %q: must not have a query or fragment", s))
		}
	}
	if c.ClientID < 1 || c.ClientID > 9999999999 {
		errs = append(errs, fmt.Errorf("client id %d: must be 1 to 9999999999", c.ClientID))
	}
	if _, err := decodeAPIKey(c.APIKey); err != nil {
		errs = append(errs, err)
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v: must not be negative", c.Timeout))
	}
	switch sl := strings.ToLower(c.SyncLevel); sl {
	case "", "fast", "secure":
	default:
		if n, err := strconv.Atoi(sl); err != nil || n < 1 || n > 100 {
			errs = append(errs, fmt.Errorf("sync level %q: must be fast, secure or 1 to 100", c.SyncLevel))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("valclient: invalid config: %w", err)
	}
	return nil
}

// decodeAPIKey decodes a base64 API key strictly (surrounding blanks
// allowed); "" is no key.
func decodeAPIKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) == 0 {
		return nil, errors.New("API key is not base64") // never echo the key
	}
	return k, nil
}

// Client verifies OTPs against validation servers. It is safe for
// concurrent use.
type Client struct {
	urls      []string
	id        string
	key       []byte // nil: unsigned
	timeout   time.Duration
	syncLevel string
	http      *http.Client
	log       *slog.Logger
}

// New returns a Client for cfg, or cfg's problems.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	key, _ := decodeAPIKey(cfg.APIKey)
	c := &Client{
		urls:      append([]string(nil), cfg.URLs...),
		id:        strconv.FormatInt(cfg.ClientID, 10),
		key:       key,
		timeout:   cfg.Timeout,
		syncLevel: cfg.SyncLevel,
		http:      cfg.HTTPClient,
		log:       cfg.Logger,
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Result is what a server answered.
type Result struct {
	// Status is the verdict ("" when no server gave one).
	Status val.Status
	// URL is the server that gave it.
	URL string
	// Reply is the server's whole (verified) response.
	Reply val.Reply
	// Timestamp is the token's 24-bit timestamp (8 Hz ticks since the key
	// powered up), SessionCounter and SessionUse its counters, and
	// SyncLevel the percentage of the server's sync pool that confirmed the
	// OTP; each is -1 when the response does not carry it (servers send the
	// first three only with OK).
	Timestamp, SessionCounter, SessionUse, SyncLevel int64
}

// Errors of Verify. A server's status is reported as a *StatusError that
// matches the sentinel of its status with errors.Is.
var (
	// ErrInvalidOTP means the OTP is not 32 to 48 modhex characters (after
	// lower-casing and Dvorak translation); no server was asked.
	ErrInvalidOTP = errors.New("valclient: invalid OTP format")
	// ErrNoVerdict means no server gave a final answer: each was
	// unreachable, timed out, answered an HTTP error or a malformed, badly
	// signed or mismatched response, or a non-final status. The error also
	// wraps each server's *ServerError.
	ErrNoVerdict = errors.New("valclient: no server gave a verdict")
	// ErrBadServerSignature means a response's signature did not verify
	// under the API key.
	ErrBadServerSignature = errors.New("valclient: bad server signature")
	// ErrEchoMismatch means an OK response did not echo the request's OTP
	// or nonce.
	ErrEchoMismatch = errors.New("valclient: response does not echo the request")
	// ErrUnknownStatus means a response carried a status this package does
	// not know.
	ErrUnknownStatus = errors.New("valclient: unknown status")

	ErrBadOTP              = errors.New("valclient: " + string(val.StatusBadOTP))
	ErrReplayedOTP         = errors.New("valclient: " + string(val.StatusReplayedOTP))
	ErrReplayedRequest     = errors.New("valclient: " + string(val.StatusReplayedRequest))
	ErrBadSignature        = errors.New("valclient: " + string(val.StatusBadSignature))
	ErrMissingParameter    = errors.New("valclient: " + string(val.StatusMissingParameter))
	ErrNoSuchClient        = errors.New("valclient: " + string(val.StatusNoSuchClient))
	ErrOperationNotAllowed = errors.New("valclient: " + string(val.StatusOperationNotAllowed))
	ErrBackendError        = errors.New("valclient: " + string(val.StatusBackendError))
	ErrNotEnoughAnswers    = errors.New("valclient: " + string(val.StatusNotEnoughAnswers))
)

var statusErrors = map[val.Status]error{
	val.StatusBadOTP:              ErrBadOTP,
	val.StatusReplayedOTP:         ErrReplayedOTP,
	val.StatusReplayedRequest:     ErrReplayedRequest,
	val.StatusBadSignature:        ErrBadSignature,
	val.StatusMissingParameter:    ErrMissingParameter,
	val.StatusNoSuchClient:        ErrNoSuchClient,
	val.StatusOperationNotAllowed: ErrOperationNotAllowed,
	val.StatusBackendError:        ErrBackendError,
	val.StatusNotEnoughAnswers:    ErrNotEnoughAnswers,
}

// StatusError is a server's refusal: any status but OK.
type StatusError struct {
	Status val.Status
	URL    string
}

// Error names the server and its status.
func (e *StatusError) Error() string {
	return fmt.Sprintf("valclient: %s answered %s", e.URL, e.Status)
}

// Unwrap returns the sentinel of e's status (ErrBadOTP, …).
func (e *StatusError) Unwrap() error { return statusErrors[e.Status] }

// ServerError is why one server gave no verdict.
type ServerError struct {
	URL string
	Err error
}

// Error returns "URL: cause".
func (e *ServerError) Error() string { return e.URL + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ServerError) Unwrap() error { return e.Err }

// Normalize lower-cases otp and translates it from Dvorak modhex when it is
// typed that way, as validation servers do, and checks that it is 32 to 48
// modhex characters. It returns ErrInvalidOTP otherwise.
func Normalize(otp string) (string, error) {
	n := val.NormalizeOTP(strings.TrimSpace(otp))
	if !val.ValidOTP(n) {
		return "", ErrInvalidOTP
	}
	return n, nil
}

// PublicID returns the public ID of otp (its normalised form minus the last
// 32 characters; "" for a key without one), or ErrInvalidOTP.
func PublicID(otp string) (string, error) {
	n, err := Normalize(otp)
	if err != nil {
		return "", err
	}
	return n[:len(n)-val.TokenLen], nil
}

// Verify asks every server whether otp is valid and returns the first final
// answer. err is nil only when that answer is OK. For any other status it is
// a *StatusError and Result holds the answer; when no server gave a final
// answer it wraps ErrNoVerdict and each server's error (or, if one answered
// REPLAYED_REQUEST, it is that *StatusError).
func (c *Client) Verify(ctx context.Context, otp string) (Result, error) {
	otp, err := Normalize(otp)
	if err != nil {
		return Result{}, err
	}
	nonce := newNonce()
	fields := []val.Field{{Key: "id", Value: c.id}, {Key: "nonce", Value: nonce}, {Key: "otp", Value: otp}}
	if c.syncLevel != "" {
		fields = append(fields, val.Field{Key: "sl", Value: c.syncLevel})
	}
	fields = append(fields, val.Field{Key: "timestamp", Value: "1"})
	var q strings.Builder
	for i, f := range fields { // already in key order, as the signature wants
		if i > 0 {
			q.WriteByte('&')
		}
		q.WriteString(f.Key + "=" + url.QueryEscape(f.Value))
	}
	query := q.String()
	if c.key != nil {
		query += "&h=" + url.QueryEscape(val.Sign(c.key, fields))
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	answers := make(chan answer, len(c.urls))
	for _, u := range c.urls {
		go func() { answers <- c.ask(ctx, u, query, otp, nonce) }()
	}
	var (
		final    *answer
		replayed *answer
		errs     []error
	)
	for range c.urls {
		a := <-answers
		switch {
		case final != nil:
			// Already decided; drain the cancelled requests.
		case a.err != nil:
			errs = append(errs, &ServerError{a.url, a.err})
		case a.final:
			final = &a
			cancel()
		case a.status == val.StatusReplayedRequest:
			replayed = &a
			errs = append(errs, &ServerError{a.url, ErrReplayedRequest})
		default:
			errs = append(errs, &ServerError{a.url, fmt.Errorf("%w %q", ErrUnknownStatus, a.status)})
		}
	}
	switch {
	case final != nil:
		return final.result(), final.statusErr()
	case replayed != nil:
		return replayed.result(), replayed.statusErr()
	}
	return Result{}, fmt.Errorf("%w: %w", ErrNoVerdict, errors.Join(errs...))
}

// answer is one server's reply, judged.
type answer struct {
	url    string
	reply  val.Reply
	status val.Status
	final  bool
	err    error // no usable answer
}

func (a *answer) result() Result {
	num := func(k string) int64 {
		n, err := strconv.ParseInt(a.reply.Get(k), 10, 64)
		if err != nil {
			return -1
		}
		return n
	}
	return Result{
		Status:         a.status,
		URL:            a.url,
		Reply:          a.reply,
		Timestamp:      num("timestamp"),
		SessionCounter: num("sessioncounter"),
		SessionUse:     num("sessionuse"),
		SyncLevel:      num("sl"),
	}
}

func (a *answer) statusErr() error {
	if a.status == val.StatusOK {
		return nil
	}
	return &StatusError{a.status, a.url}
}

// ask sends the request to one server and judges its answer.
func (c *Client) ask(ctx context.Context, base, query, otp, nonce string) answer {
	a := answer{url: base}
	log := c.log.With("server", base)
	log.DebugContext(ctx, "valclient: request", "url", base+"?"+strings.Replace(query, "otp="+otp, "otp="+shorten(otp), 1))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"?"+query, nil)
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("User-Agent", "ykstack-valclient")
	resp, err := c.http.Do(req)
	if err != nil {
		// A *url.Error quotes the whole URL, OTP and all: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		log.DebugContext(ctx, "valclient: request failed", "err", err)
		a.err = err
		return a
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	log.DebugContext(ctx, "valclient: response", "http_status", resp.StatusCode, "body", string(body))
	switch {
	case err != nil:
		a.err = fmt.Errorf("reading response: %w", err)
		return a
	case resp.StatusCode != http.StatusOK:
		a.err = fmt.Errorf("HTTP status %s", resp.Status)
		return a
	case len(body) > maxBody:
		a.err = fmt.Errorf("%w: longer than %d bytes", val.ErrMalformedResponse, maxBody)
		return a
	}
	reply, err := val.ParseResponse(body)
	if err != nil {
		a.err = err
		return a
	}
	status := reply.Status()
	if c.key != nil && !reply.Verify(c.key) {
		// Say what it claimed, to tell a wrong key or client id (the
		// server's early errors are signed with the empty key) from forgery.
		a.err = fmt.Errorf("%w (unverified status %s)", ErrBadServerSignature, clip(string(status)))
		return a
	}
	if status == val.StatusOK && (reply.Get("otp") != otp || reply.Get("nonce") != nonce) {
		a.err = ErrEchoMismatch
		return a
	}
	a.reply, a.status = reply, status
	a.final = status.Known() && status != val.StatusReplayedRequest
	return a
}

// newNonce returns 32 random lower-case letters, like yubico-c-client's.
func newNonce() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 0, 32)
	buf := make([]byte, 48)
	for len(b) < 32 {
		rand.Read(buf)
		for _, x := range buf {
			if x < 234 && len(b) < 32 { // 234 = 9×26: no modulo bias
				b = append(b, letters[x%26])
			}
		}
	}
	return string(b)
}

// shorten keeps an OTP's public ID and hides its token.
func shorten(otp string) string {
	return otp[:len(otp)-val.TokenLen] + "…"
}

func clip(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
