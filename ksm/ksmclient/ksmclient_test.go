package ksmclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

var (
	ciKey = ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
		AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}
	// wrongKey has the CI key's public ID and another AES key: its KSM
	// answers "ERR Corrupt OTP".
	wrongKey = ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
		AESKey: "00000000000000000000000000000001", Active: true}
)

const ciOTP = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"

var ciResult = ksm.Result{Counter: 1, Low: 0x8d40, High: 0x0f, Use: 0}

// ksmServer starts a real KSM (ksmserver over a SQLite store) holding keys
// and returns its decrypt URL and its store.
func ksmServer(t *testing.T, keys ...ksm.Key) (string, *sqlstore.Store) {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if len(keys) > 0 {
		if err := store.Import(ctx, keys); err != nil {
			t.Fatal(err)
		}
	}
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: store, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/wsapi/decrypt", store
}

// stubServer starts an HTTP server that misbehaves the way h does.
func stubServer(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL + "/wsapi/decrypt"
}

// slowServer never answers; it reports each request's cancellation on the
// returned channel.
func slowServer(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	u, cancelled, _ := slowServerArrivals(t)
	return u, cancelled
}

// slowServerArrivals is slowServer that also reports each request's arrival.
func slowServerArrivals(t *testing.T) (string, <-chan struct{}, <-chan struct{}) {
	t.Helper()
	cancelled := make(chan struct{}, 16)
	arrived := make(chan struct{}, 16)
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default: // nobody is counting arrivals
		}
		select {
		case <-r.Context().Done():
			cancelled <- struct{}{}
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL + "/wsapi/decrypt", cancelled, arrived
}

// closedURL returns the URL of a server that is no longer listening.
func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/wsapi/decrypt"
	srv.Close()
	return u
}

func newClient(t *testing.T, timeout time.Duration, urls ...string) *ksmclient.Client {
	t.Helper()
	c, err := ksmclient.New(ksmclient.Config{URLs: urls, Timeout: timeout})
	if err != nil {
		t.Fatalf("New(%q): %v", urls, err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func TestDecryptOK(t *testing.T) {
	good, _ := ksmServer(t, ciKey)
	c := newClient(t, 0, good)
	for range 3 { // the connection is reused
		got, err := c.Decrypt(context.Background(), ciOTP)
		if err != nil || got != ciResult {
			t.Fatalf("Decrypt(%s) = %+v, %v, want %+v", ciOTP, got, err, ciResult)
		}
	}
}

// TestFirstOKWins: one KSM answers, another hangs; the answer comes back and
// the hanging request is cancelled.
func TestFirstOKWins(t *testing.T) {
	goodKSM, _ := ksmServer(t, ciKey)
	slow, cancelled, arrived := slowServerArrivals(t)
	// The good KSM answers only once the slow one holds its request, so
	// there is always a request in flight to cancel (otherwise the client
	// may win before it ever sends the slow one's request).
	good := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-arrived:
		case <-r.Context().Done():
			return
		}
		resp, err := http.Get(goodKSM + "?" + r.URL.RawQuery)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		io.Copy(w, resp.Body)
	})
	unknown, _ := ksmServer(t)
	c := newClient(t, time.Minute, slow, unknown, good)
	got, err := c.Decrypt(context.Background(), ciOTP)
	if err != nil || got != ciResult {
		t.Fatalf("Decrypt(%s) = %+v, %v, want %+v", ciOTP, got, err, ciResult)
	}
	select {
	case <-cancelled:
	case <-time.After(30 * time.Second):
		t.Fatal("the slow KSM's request was not cancelled after another KSM answered OK")
	}
}

// TestRejected: every KSM gave a verdict, so the error carries the verdicts
// and not ErrUnavailable.
func TestRejected(t *testing.T) {
	unknown, _ := ksmServer(t)
	corrupt, _ := ksmServer(t, wrongKey)
	tests := []struct {
		name string
		urls []string
		otp  string
		want []error
	}{
		{"unknown", []string{unknown}, ciOTP, []error{ksm.ErrUnknownKey}},
		{"corrupt", []string{corrupt}, ciOTP, []error{ksm.ErrCorrupt}},
		{"unknown and corrupt", []string{unknown, corrupt}, ciOTP, []error{ksm.ErrUnknownKey, ksm.ErrCorrupt}},
		{"format", []string{unknown, corrupt}, "x" + ciOTP, []error{ksm.ErrFormat}},
		{"no OTP", []string{unknown}, "", []error{ksm.ErrNoOTP}},
		{"PHP-falsy", []string{unknown}, "0", []error{ksm.ErrNoOTP}},
	}
	for _, tt := range tests {
		c := newClient(t, 0, tt.urls...)
		_, err := c.Decrypt(context.Background(), tt.otp)
		if errors.Is(err, ksmclient.ErrUnavailable) {
			t.Errorf("%s: Decrypt error %v wraps ErrUnavailable, want only verdicts", tt.name, err)
		}
		for _, w := range tt.want {
			if !errors.Is(err, w) {
				t.Errorf("%s: Decrypt error %v does not wrap %v", tt.name, err, w)
			}
		}
		var re *ksm.RemoteError
		var ce *ksmclient.Error
		if !errors.As(err, &re) || !errors.As(err, &ce) || ce.Unavailable || len(ce.Errs) != len(tt.urls) {
			t.Errorf("%s: Decrypt error %#v, want a *ksmclient.Error with a *ksm.RemoteError per KSM", tt.name, err)
		}
	}
}

// TestUnavailable: when some KSM gave no verdict the error wraps
// ErrUnavailable and no verdict, even if another KSM rejected the OTP.
func TestUnavailable(t *testing.T) {
	unknown, _ := ksmServer(t)
	dbDown, store := ksmServer(t, ciKey)
	store.Close()
	status500 := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, "OK counter=0001 low=8d40 high=0f use=00\n")
	})
	malformed := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>It works!</html>\n")
	})
	brokenOK := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "OK counter=zz\n")
	})
	otherERR := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ERR Syslog open error\n")
	})
	good, _ := ksmServer(t, ciKey)
	redirect := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, good+"?"+r.URL.RawQuery, http.StatusFound)
	})
	hugeLine := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ERR "+strings.Repeat("x", 1<<20)+"\n")
	})
	closed := closedURL(t)

	tests := []struct {
		name string
		urls []string
		also error // another error the result must wrap
	}{
		{"connection refused", []string{closed}, nil},
		{"database error", []string{dbDown}, ksm.ErrDatabase},
		{"HTTP 500", []string{status500}, nil},
		{"malformed", []string{malformed}, ksm.ErrAnswer},
		{"broken OK line", []string{brokenOK}, ksm.ErrAnswer},
		{"other ERR", []string{otherERR}, nil},
		{"redirect not followed", []string{redirect}, ksm.ErrAnswer},
		{"refused and unknown", []string{closed, unknown}, nil},
		{"unknown and database error", []string{unknown, dbDown}, ksm.ErrDatabase},
	}
	for _, tt := range tests {
		c := newClient(t, 0, tt.urls...)
		res, err := c.Decrypt(context.Background(), ciOTP)
		if !errors.Is(err, ksmclient.ErrUnavailable) {
			t.Errorf("%s: Decrypt = %+v, %v, want an error wrapping ErrUnavailable", tt.name, res, err)
			continue
		}
		if tt.also != nil && !errors.Is(err, tt.also) {
			t.Errorf("%s: Decrypt error %v does not wrap %v", tt.name, err, tt.also)
		}
		for _, verdict := range []error{ksm.ErrUnknownKey, ksm.ErrCorrupt, ksm.ErrFormat, ksm.ErrNoOTP} {
			if errors.Is(err, verdict) {
				t.Errorf("%s: Decrypt error %v wraps the verdict %v beside ErrUnavailable", tt.name, err, verdict)
			}
		}
		if strings.Contains(err.Error(), ciOTP) {
			t.Errorf("%s: Decrypt error %q contains the OTP", tt.name, err)
		}
	}
	// Under a huge ERR line the limited read still gives an ERR answer.
	_, err := newClient(t, 0, hugeLine).Decrypt(context.Background(), ciOTP)
	var re *ksm.RemoteError
	if !errors.As(err, &re) || len(re.Msg) > 1<<10 {
		t.Errorf("Decrypt from a KSM sending a 1 MiB line: %.100v, want a short *ksm.RemoteError", err)
	}
}

func TestTimeout(t *testing.T) {
	slow, _ := slowServer(t)
	unknown, _ := ksmServer(t)
	c := newClient(t, 100*time.Millisecond, slow, unknown)
	_, err := c.Decrypt(context.Background(), ciOTP)
	if !errors.Is(err, ksmclient.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Decrypt from a KSM that never answers = %v, want ErrUnavailable and context.DeadlineExceeded", err)
	}

	// A cancelled caller gets its cancellation back.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = newClient(t, time.Minute, slow).Decrypt(ctx, ciOTP)
	if !errors.Is(err, ksmclient.ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("Decrypt with a cancelled context = %v, want ErrUnavailable and context.Canceled", err)
	}
}

// TestRequest checks what a KSM receives: the OTP escaped in the query, the
// User-Agent, and the URL's own query kept.
func TestRequest(t *testing.T) {
	var mu sync.Mutex
	var got []*http.Request
	stub := stubServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r)
		mu.Unlock()
		io.WriteString(w, "OK counter=0001 low=8D40 high=0F use=00 trailing text\n")
	})
	otps := []string{ciOTP, "", "a b&c=d+e%zz#f?g", "é\x00\n"}
	for _, base := range []string{stub, stub + "?", stub + "?otp=", stub + "?route=a&otp=", stub + "?route=a", stub + "?route=a&"} {
		mu.Lock()
		got = nil
		mu.Unlock()
		c, err := ksmclient.New(ksmclient.Config{URLs: []string{base}, UserAgent: "ykstack-test"})
		if err != nil {
			t.Fatalf("New(%q): %v", base, err)
		}
		for _, o := range otps {
			res, err := c.Decrypt(context.Background(), o)
			if err != nil || res != ciResult {
				t.Errorf("Decrypt(%q) via %s = %+v, %v, want %+v", o, base, res, err, ciResult)
			}
		}
		mu.Lock()
		if len(got) != len(otps) {
			t.Fatalf("%s: the KSM got %d requests, want %d", base, len(got), len(otps))
		}
		for i, r := range got {
			q, err := url.ParseQuery(r.URL.RawQuery)
			if err != nil {
				t.Errorf("%s: query %q: %v", base, r.URL.RawQuery, err)
			}
			if all := q["otp"]; len(all) != 1 || all[0] != otps[i] {
				t.Errorf("%s: the KSM got otp=%q, want [%q]", base, all, otps[i])
			}
			if strings.Contains(base, "route=a") && q.Get("route") != "a" {
				t.Errorf("%s: the KSM got query %q, want route=a kept", base, r.URL.RawQuery)
			}
			if r.Method != http.MethodGet || r.UserAgent() != "ykstack-test" {
				t.Errorf("%s: %s with User-Agent %q, want GET with ykstack-test", base, r.Method, r.UserAgent())
			}
		}
		mu.Unlock()
		c.CloseIdleConnections()
	}

	// The default User-Agent is YK-VAL's.
	c := newClient(t, 0, stub)
	if _, err := c.Decrypt(context.Background(), ciOTP); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if ua := got[len(got)-1].UserAgent(); ua != "YK-VAL" {
		t.Errorf("default User-Agent %q, want YK-VAL", ua)
	}
	mu.Unlock()
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		cfg  ksmclient.Config
		want []string // parts of the error message
	}{
		{ksmclient.Config{}, []string{"no KSM URL"}},
		{ksmclient.Config{URLs: []string{"ftp://h/x", "http:///x", "http://h/x#frag", "http://h/x#", "://"}},
			[]string{"ftp://h/x", "http:///x", "http://h/x#frag", `"http://h/x#"`, `"://"`}},
		{ksmclient.Config{URLs: []string{"http://h/"}, Timeout: -1, MaxIdleConnsPerHost: -1}, []string{"negative timeout", "negative MaxIdleConnsPerHost"}},
	}
	for _, tt := range tests {
		c, err := ksmclient.New(tt.cfg)
		if c != nil || !errors.Is(err, ksmclient.ErrConfig) {
			t.Errorf("New(%+v) = %v, %v, want an error wrapping ErrConfig", tt.cfg, c, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("New(%+v) error %q does not mention %q", tt.cfg, err, w)
			}
		}
	}
	c, err := ksmclient.New(ksmclient.Config{URLs: []string{"http://127.0.0.1:8002/wsapi/decrypt", "https://ksm2.example/wsapi/decrypt.php"}})
	if err != nil || len(c.URLs()) != 2 {
		t.Errorf("New with two valid URLs = %v, %v", c, err)
	}
}

func TestVerdict(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&ksm.RemoteError{Msg: "Unknown yubikey"}, true},
		{&ksm.RemoteError{Msg: "Corrupt OTP"}, true},
		{&ksm.RemoteError{Msg: "Invalid OTP format"}, true},
		{&ksm.RemoteError{Msg: "No OTP provided"}, true},
		{&ksm.RemoteError{Msg: "Database error"}, false},
		{&ksm.RemoteError{Msg: "Log error"}, false},
		{ksm.ErrCorrupt, false}, // a local error, not a KSM's answer
		{ksm.ErrAnswer, false},
		{context.DeadlineExceeded, false},
		{nil, false},
	}
	for _, tt := range tests {
		if got := ksmclient.Verdict(tt.err); got != tt.want {
			t.Errorf("Verdict(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
