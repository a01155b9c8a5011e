package valclient

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/val"
)

const (
	secret = "EHmo8FMxuhumBlTinC4uYL0Mgwg=" // yubikey-val's CI client (spec 5.1)
	ciOTP  = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"
)

// server is a validation server for tests: it parses requests with the val
// codec, checks their signature, and answers with val.Response.Format.
type server struct {
	*httptest.Server
	mu       sync.Mutex
	requests []val.Request
}

// answerFunc decides a test server's response to a request that passed the
// protocol's checks; it may rewrite the response or the signing key.
type answerFunc func(r val.Request) (resp val.Response, key []byte)

func newServer(t *testing.T, answer answerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		r, p := val.ParseRequest(hr.RequestURI, val.ParseQuery(hr.URL.RawQuery))
		if p != nil {
			w.Write(val.Response{Status: p.Status}.Format(nil))
			return
		}
		s.mu.Lock()
		s.requests = append(s.requests, r)
		s.mu.Unlock()
		key := val.DecodeKey(secret)
		if !r.SignatureOK(key) {
			w.Write(val.Response{Status: val.StatusBadSignature}.Format(key))
			return
		}
		resp, k := answer(r)
		w.Write(resp.Format(k))
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) url() string { return s.URL + "/wsapi/2.0/verify" }

func (s *server) seen() []val.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]val.Request(nil), s.requests...)
}

// d is what the CI OTP of spec 5.2 decrypts to: counter 1, use 0, timestamp 0x0f8d40.
var d = val.Decrypted{Counter: 1, Low: 0x8d40, High: 0x0f, Use: 0}

// answering returns an answerFunc giving status the way a real server would,
// signed with the client's key.
func answering(status val.Status) answerFunc {
	return func(r val.Request) (val.Response, []byte) {
		return val.Response{Status: status, Extras: r.Extras(status, 100, d)}, val.DecodeKey(secret)
	}
}

func newClient(t *testing.T, cfg Config) *Client {
	t.Helper()
	if cfg.ClientID == 0 {
		cfg.ClientID = 1
	}
	if cfg.APIKey == "-" {
		cfg.APIKey = ""
	} else if cfg.APIKey == "" {
		cfg.APIKey = secret
	}
	cfg.Logger = slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	return c
}

// tWriter sends logs to the test's output.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestVerifyOK(t *testing.T) {
	s := newServer(t, answering(val.StatusOK))
	c := newClient(t, Config{URLs: []string{s.url()}, ClientID: 42, SyncLevel: "secure"})
	res, err := c.Verify(context.Background(), " "+strings.ToUpper(ciOTP)+"\n")
	if err != nil {
		t.Fatalf("Verify = %+v, %v; want OK", res, err)
	}
	want := Result{Status: val.StatusOK, URL: s.url(), Timestamp: 0x0f8d40, SessionCounter: 1, SessionUse: 0, SyncLevel: 100}
	if res.Reply.Get("otp") != ciOTP || res.Reply.Get("t") == "" {
		t.Errorf("Verify Reply = %+v, want the server's fields", res.Reply)
	}
	res.Reply = val.Reply{}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Verify = %+v, want %+v", res, want)
	}
	reqs := s.seen()
	if len(reqs) != 1 {
		t.Fatalf("server saw %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if !r.Signed() || r.ClientID != 42 || r.OTP != ciOTP || !r.Timestamp || r.SyncLevel != 40 || !r.V2() {
		t.Errorf("server saw %+v; want signed, id 42, the OTP lower-cased, timestamp, sl=secure", r)
	}
	if len(r.Nonce) != 32 || strings.Trim(r.Nonce, "abcdefghijklmnopqrstuvwxyz") != "" {
		t.Errorf("nonce %q, want 32 lower-case letters", r.Nonce)
	}
}

func TestVerifyUnsigned(t *testing.T) {
	// Without a key, responses are not checked: even one signed with garbage passes.
	s := newServer(t, func(r val.Request) (val.Response, []byte) {
		return val.Response{Status: val.StatusOK, Extras: r.Extras(val.StatusOK, 0, d)}, []byte("not the key")
	})
	c := newClient(t, Config{URLs: []string{s.url()}, APIKey: "-"})
	if _, err := c.Verify(context.Background(), ciOTP); err != nil {
		t.Fatalf("Verify = %v, want OK", err)
	}
	if r := s.seen()[0]; r.Signed() {
		t.Errorf("request carried h=%q, want none without an API key", r.H)
	}
}

func TestVerifyNoncesDiffer(t *testing.T) {
	s := newServer(t, answering(val.StatusOK))
	c := newClient(t, Config{URLs: []string{s.url()}})
	for range 2 {
		if _, err := c.Verify(context.Background(), ciOTP); err != nil {
			t.Fatal(err)
		}
	}
	if r := s.seen(); r[0].Nonce == r[1].Nonce {
		t.Errorf("two requests used the same nonce %q", r[0].Nonce)
	}
}

// Every refusal is an error matching its sentinel, with the answer in Result.
func TestVerifyStatuses(t *testing.T) {
	for _, status := range val.Statuses {
		if status == val.StatusOK {
			continue
		}
		s := newServer(t, answering(status))
		c := newClient(t, Config{URLs: []string{s.url()}})
		res, err := c.Verify(context.Background(), ciOTP)
		var se *StatusError
		if !errors.As(err, &se) || se.Status != status || !errors.Is(err, statusErrors[status]) || res.Status != status {
			t.Errorf("Verify against %s = %+v, %v; want a *StatusError matching %v", status, res, err, statusErrors[status])
		}
		if err != nil && !strings.Contains(err.Error(), string(status)) {
			t.Errorf("error %q does not name %s", err, status)
		}
	}
}

func TestVerifyBadServerSignature(t *testing.T) {
	tests := map[string]http.HandlerFunc{
		"wrong key": func(w http.ResponseWriter, hr *http.Request) {
			r, _ := val.ParseRequest(hr.RequestURI, hr.URL.Query())
			w.Write(val.Response{Status: val.StatusOK, Extras: r.Extras(val.StatusOK, 0, d)}.Format(val.DecodeKey("Zm9vYmFyYmF6")))
		},
		"early error, empty key": func(w http.ResponseWriter, hr *http.Request) {
			w.Write(val.Response{Status: val.StatusNoSuchClient}.Format(nil))
		},
		"BAD_OTP signed, OK claimed": func(w http.ResponseWriter, hr *http.Request) {
			r, _ := val.ParseRequest(hr.RequestURI, hr.URL.Query())
			body := val.Response{Status: val.StatusBadOTP, Extras: r.Extras(val.StatusOK, 0, d)}.Format(val.DecodeKey(secret))
			w.Write([]byte(strings.Replace(string(body), "status=BAD_OTP", "status=OK", 1)))
		},
		"no signature": func(w http.ResponseWriter, hr *http.Request) {
			r, _ := val.ParseRequest(hr.RequestURI, hr.URL.Query())
			body := val.Response{Status: val.StatusOK, Extras: r.Extras(val.StatusOK, 0, d)}.Format(val.DecodeKey(secret))
			_, rest, _ := strings.Cut(string(body), "\r\n")
			w.Write([]byte("h=\r\n" + rest))
		},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			s := httptest.NewServer(h)
			defer s.Close()
			res, err := newClient(t, Config{URLs: []string{s.URL + "/wsapi/2.0/verify"}}).Verify(context.Background(), ciOTP)
			if !errors.Is(err, ErrBadServerSignature) || !errors.Is(err, ErrNoVerdict) || res.Status != "" {
				t.Errorf("Verify = %+v, %v; want ErrNoVerdict wrapping ErrBadServerSignature", res, err)
			}
		})
	}
}

// The early error's status is named in the error, to help find a wrong key or id.
func TestVerifyBadServerSignatureNamesStatus(t *testing.T) {
	s := newServer(t, func(val.Request) (val.Response, []byte) { return val.Response{Status: val.StatusNoSuchClient}, nil })
	_, err := newClient(t, Config{URLs: []string{s.url()}}).Verify(context.Background(), ciOTP)
	if err == nil || !strings.Contains(err.Error(), "NO_SUCH_CLIENT") {
		t.Errorf("Verify = %v, want an error naming NO_SUCH_CLIENT", err)
	}
}

func TestVerifyEchoMismatch(t *testing.T) {
	tests := map[string]func(*val.Response){
		"nonce": func(r *val.Response) { r.Extras[1].Value = "kakakakakakakakakakakaka" },
		"otp":   func(r *val.Response) { r.Extras[0].Value = "cccccccccccc" + ciOTP[12:] },
		"none": func(r *val.Response) {
			r.Extras = r.Extras[2:]
		},
	}
	for name, tamper := range tests {
		t.Run(name, func(t *testing.T) {
			s := newServer(t, func(r val.Request) (val.Response, []byte) {
				resp := val.Response{Status: val.StatusOK, Extras: r.Extras(val.StatusOK, 0, d)}
				tamper(&resp)
				return resp, val.DecodeKey(secret) // correctly signed: a replayed OK
			})
			res, err := newClient(t, Config{URLs: []string{s.url()}}).Verify(context.Background(), ciOTP)
			if !errors.Is(err, ErrEchoMismatch) || !errors.Is(err, ErrNoVerdict) || res.Status != "" {
				t.Errorf("Verify = %+v, %v; want ErrNoVerdict wrapping ErrEchoMismatch", res, err)
			}
		})
	}
}

// afterFirst is an HTTP client whose transport signals, on done, when the
// client has read and closed the response of the server at first. A test
// server that waits for done answers after first's answer reached Verify
// (bar scheduling), which matters only when the verdict depends on order.
func afterFirst(first string) (*http.Client, <-chan struct{}) {
	done := make(chan struct{})
	tr := &signalTransport{host: strings.TrimPrefix(first, "http://"), done: done}
	return &http.Client{Transport: tr}, done
}

type signalTransport struct {
	host string
	done chan struct{}
	once sync.Once
}

func (s *signalTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil && r.URL.Host == s.host {
		resp.Body = &signalBody{resp.Body, s}
	}
	return resp, err
}

type signalBody struct {
	io.ReadCloser
	s *signalTransport
}

func (b *signalBody) Close() error {
	err := b.ReadCloser.Close()
	b.s.once.Do(func() { close(b.s.done) })
	return err
}

// REPLAYED_REQUEST is not final: the OK of another server wins.
func TestVerifyReplayedRequestThenOK(t *testing.T) {
	replayed := newServer(t, answering(val.StatusReplayedRequest))
	hc, done := afterFirst(replayed.URL)
	ok := newServer(t, func(r val.Request) (val.Response, []byte) {
		<-done
		return answering(val.StatusOK)(r)
	})
	c := newClient(t, Config{URLs: []string{replayed.url(), ok.url()}, HTTPClient: hc})
	res, err := c.Verify(context.Background(), ciOTP)
	if err != nil || res.Status != val.StatusOK || res.URL != ok.url() {
		t.Errorf("Verify = %+v, %v; want OK from %s", res, err, ok.url())
	}
}

func TestVerifyOnlyReplayedRequest(t *testing.T) {
	s1 := newServer(t, answering(val.StatusReplayedRequest))
	s2 := newServer(t, answering(val.StatusReplayedRequest))
	res, err := newClient(t, Config{URLs: []string{s1.url(), s2.url()}}).Verify(context.Background(), ciOTP)
	if !errors.Is(err, ErrReplayedRequest) || res.Status != val.StatusReplayedRequest {
		t.Errorf("Verify = %+v, %v; want REPLAYED_REQUEST", res, err)
	}
	// Both servers were asked, with the same request.
	r1, r2 := s1.seen(), s2.seen()
	if len(r1) != 1 || len(r2) != 1 || r1[0].Nonce != r2[0].Nonce || r1[0].H != r2[0].H {
		t.Errorf("servers saw %+v and %+v; want one identical request each", r1, r2)
	}
}

func TestVerifyUnknownStatusNotFinal(t *testing.T) {
	unknown := newServer(t, answering("DELAYED_OTP"))
	hc, done := afterFirst(unknown.URL)
	ok := newServer(t, func(r val.Request) (val.Response, []byte) {
		<-done
		return answering(val.StatusOK)(r)
	})
	res, err := newClient(t, Config{URLs: []string{unknown.url(), ok.url()}, HTTPClient: hc}).Verify(context.Background(), ciOTP)
	if err != nil || res.Status != val.StatusOK {
		t.Errorf("Verify = %+v, %v; want OK", res, err)
	}
	res, err = newClient(t, Config{URLs: []string{unknown.url()}}).Verify(context.Background(), ciOTP)
	if !errors.Is(err, ErrUnknownStatus) || !errors.Is(err, ErrNoVerdict) || res.Status != "" {
		t.Errorf("Verify = %+v, %v; want ErrNoVerdict wrapping ErrUnknownStatus", res, err)
	}
}

// A final refusal wins at once and cancels the requests still running.
func TestVerifyFinalCancelsOthers(t *testing.T) {
	started, cancelled := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
		close(cancelled)
	}))
	defer slow.Close()
	bad := newServer(t, func(r val.Request) (val.Response, []byte) {
		<-started // refuse only once the slow request is under way
		return answering(val.StatusBadOTP)(r)
	})
	c := newClient(t, Config{URLs: []string{slow.URL + "/wsapi/2.0/verify", bad.url()}, Timeout: time.Hour})
	res, err := c.Verify(context.Background(), ciOTP)
	if !errors.Is(err, ErrBadOTP) || res.Status != val.StatusBadOTP || res.URL != bad.url() {
		t.Errorf("Verify = %+v, %v; want BAD_OTP from %s", res, err, bad.url())
	}
	select { // a liveness guard, not a speed requirement
	case <-cancelled:
	case <-time.After(30 * time.Second):
		t.Errorf("the slow server's request was not cancelled after Verify returned")
	}
}

func TestVerifyAllDown(t *testing.T) {
	s1, s2 := httptest.NewServer(http.NotFoundHandler()), httptest.NewServer(http.NotFoundHandler())
	urls := []string{s1.URL + "/wsapi/2.0/verify", s2.URL + "/wsapi/2.0/verify"}
	s1.Close()
	s2.Close()
	res, err := newClient(t, Config{URLs: urls}).Verify(context.Background(), ciOTP)
	var se *ServerError
	if !errors.Is(err, ErrNoVerdict) || !errors.As(err, &se) || res.Status != "" {
		t.Errorf("Verify = %+v, %v; want ErrNoVerdict with server errors", res, err)
	}
	if err != nil && strings.Contains(err.Error(), ciOTP) {
		t.Errorf("error %q holds the full OTP", err)
	}
	for _, u := range urls {
		if err != nil && !strings.Contains(err.Error(), u) {
			t.Errorf("error %q does not name %s", err, u)
		}
	}
}

func TestVerifyTimeout(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer s.Close()
	c := newClient(t, Config{URLs: []string{s.URL + "/wsapi/2.0/verify"}, Timeout: 50 * time.Millisecond})
	res, err := c.Verify(context.Background(), ciOTP)
	if !errors.Is(err, ErrNoVerdict) || !errors.Is(err, context.DeadlineExceeded) || res.Status != "" {
		t.Errorf("Verify = %+v, %v; want ErrNoVerdict wrapping context.DeadlineExceeded", res, err)
	}
	if err != nil && strings.Contains(err.Error(), ciOTP) {
		t.Errorf("error %q holds the full OTP", err)
	}
	// The caller's context counts too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newClient(t, Config{URLs: []string{s.URL + "/wsapi/2.0/verify"}}).Verify(ctx, ciOTP); !errors.Is(err, context.Canceled) {
		t.Errorf("Verify(cancelled ctx) = %v, want context.Canceled", err)
	}
}

func TestVerifyMalformedAndHTTPErrors(t *testing.T) {
	bodies := map[string]struct {
		code int
		body string
	}{
		"html":      {200, "<html><body>hello</body></html>\n"},
		"cut short": {200, "h=x\r\nstatus=OK"},
		"empty":     {200, ""},
		"ksm line":  {200, "OK counter=0001 low=8d40 high=0f use=00\n"},
		"huge":      {200, strings.Repeat("x=y\n", maxBody)},
		"500":       {500, "status=OK\n"},
		"404":       {404, "not found\n"},
	}
	for name, b := range bodies {
		t.Run(name, func(t *testing.T) {
			broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(b.code)
				w.Write([]byte(b.body))
			}))
			defer broken.Close()
			u := broken.URL + "/wsapi/2.0/verify"
			res, err := newClient(t, Config{URLs: []string{u}}).Verify(context.Background(), ciOTP)
			if !errors.Is(err, ErrNoVerdict) || res.Status != "" {
				t.Errorf("Verify = %+v, %v; want ErrNoVerdict", res, err)
			}
			if b.code == 200 && !errors.Is(err, val.ErrMalformedResponse) {
				t.Errorf("Verify = %v, want it to wrap val.ErrMalformedResponse", err)
			}
			// A broken server does not spoil a working one.
			ok := newServer(t, answering(val.StatusOK))
			if _, err := newClient(t, Config{URLs: []string{u, ok.url()}}).Verify(context.Background(), ciOTP); err != nil {
				t.Errorf("Verify with a working server too = %v, want OK", err)
			}
		})
	}
}

func TestVerifyInvalidOTP(t *testing.T) {
	s := newServer(t, answering(val.StatusOK))
	c := newClient(t, Config{URLs: []string{s.url()}})
	for _, otp := range []string{"", "idkf", "cccccc" + ciOTP, "a" + ciOTP[1:], ciOTP[:31], "cccccccccccccccccccccccccccccccccccccccccccccccccccc"} {
		if res, err := c.Verify(context.Background(), otp); !errors.Is(err, ErrInvalidOTP) || res.Status != "" {
			t.Errorf("Verify(%q) = %+v, %v; want ErrInvalidOTP", otp, res, err)
		}
	}
	if n := len(s.seen()); n != 0 {
		t.Errorf("server saw %d requests for invalid OTPs, want 0", n)
	}
}

func TestNormalizeAndPublicID(t *testing.T) {
	dvorak := strings.NewReplacer("c", "j", "b", "x", "d", "e", "e", ".", "f", "u", "g", "i", "h", "d", "i", "c",
		"j", "h", "k", "t", "l", "n", "n", "b", "r", "p", "t", "y", "u", "g", "v", "k").Replace(ciOTP)
	tests := []struct {
		in, otp, id string
		err         error
	}{
		{ciOTP, ciOTP, "idkfefrdhtru", nil},
		{strings.ToUpper(ciOTP), ciOTP, "idkfefrdhtru", nil},
		{dvorak, ciOTP, "idkfefrdhtru", nil},
		{" " + ciOTP + "\n", ciOTP, "idkfefrdhtru", nil},
		{ciOTP[12:], ciOTP[12:], "", nil},
		{"cccc" + ciOTP, "cccc" + ciOTP, "ccccidkfefrdhtru", nil},
		{"ccccc" + ciOTP, "", "", ErrInvalidOTP},
		{"x", "", "", ErrInvalidOTP},
	}
	for _, tt := range tests {
		otp, err := Normalize(tt.in)
		if otp != tt.otp || err != tt.err {
			t.Errorf("Normalize(%q) = %q, %v; want %q, %v", tt.in, otp, err, tt.otp, tt.err)
		}
		id, err := PublicID(tt.in)
		if id != tt.id || err != tt.err {
			t.Errorf("PublicID(%q) = %q, %v; want %q, %v", tt.in, id, err, tt.id, tt.err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{URLs: []string{"https://a/wsapi/2.0/verify", "http://b:8080/wsapi/2.0/verify"}, ClientID: 1, APIKey: secret}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", good, err)
	}
	tests := []struct {
		name   string
		change func(*Config)
		want   string
	}{
		{"no URL", func(c *Config) { c.URLs = nil }, "no server URL"},
		{"scheme", func(c *Config) { c.URLs = []string{"ftp://a/"} }, "scheme"},
		{"relative", func(c *Config) { c.URLs = []string{"/wsapi/2.0/verify"} }, "scheme"},
		{"no host", func(c *Config) { c.URLs = []string{"https:///wsapi/2.0/verify"} }, "no host"},
		{"query", func(c *Config) { c.URLs = []string{"https://a/wsapi/2.0/verify?id=1"} }, "query"},
		{"unparsable", func(c *Config) { c.URLs = []string{"https://a b/%zz"} }, "URL"},
		{"id 0", func(c *Config) { c.ClientID = 0 }, "client id"},
		{"id too big", func(c *Config) { c.ClientID = 10000000000 }, "client id"},
		{"key", func(c *Config) { c.APIKey = "not base64!" }, "API key"},
		{"timeout", func(c *Config) { c.Timeout = -1 }, "timeout"},
		{"sl 0", func(c *Config) { c.SyncLevel = "0" }, "sync level"},
		{"sl 101", func(c *Config) { c.SyncLevel = "101" }, "sync level"},
		{"sl word", func(c *Config) { c.SyncLevel = "slow" }, "sync level"},
	}
	for _, tt := range tests {
		c := good
		c.URLs = append([]string(nil), good.URLs...)
		tt.change(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate() = %v, want an error about %q", tt.name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "not base64!") {
			t.Errorf("%s: Validate() = %v echoes the API key", tt.name, err)
		}
		if _, err := New(c); err == nil {
			t.Errorf("%s: New accepted an invalid config", tt.name)
		}
	}
	// Every problem is reported at once.
	err := Config{ClientID: -1, Timeout: -1}.Validate()
	for _, want := range []string{"no server URL", "client id", "timeout"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v, want it to mention %q", err, want)
		}
	}
	for _, sl := range []string{"", "fast", "SECURE", "1", "100"} {
		c := good
		c.SyncLevel = sl
		if err := c.Validate(); err != nil {
			t.Errorf("Validate(sl %q) = %v", sl, err)
		}
	}
}

func TestNewNonce(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := newNonce()
		if len(n) != 32 || strings.Trim(n, "abcdefghijklmnopqrstuvwxyz") != "" || seen[n] {
			t.Fatalf("newNonce() = %q: want 32 fresh lower-case letters", n)
		}
		seen[n] = true
	}
}
