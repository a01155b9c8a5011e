package yubipam

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

var testKey = []byte("0123456789abcdefghij")

// scriptedVAL is a validation server that answers every request with one
// status, signed like the real one; it checks the request's signature.
type scriptedVAL struct {
	status  val.Status
	key     []byte // signs responses
	noEcho  bool   // leave out the nonce echo
	delay   time.Duration
	hits    atomic.Int32
	badReqs atomic.Int32 // requests whose signature did not verify
}

func (s *scriptedVAL) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.hits.Add(1)
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-r.Context().Done():
			return
		}
	}
	q := r.URL.Query()
	if !val.Verify(testKey, val.FieldsFromValues(q), q.Get("h")) {
		s.badReqs.Add(1)
	}
	var extras []val.Field
	switch s.status {
	case val.StatusOK, val.StatusReplayedOTP, val.StatusReplayedRequest:
		extras = append(extras, val.Field{Key: "otp", Value: q.Get("otp")})
		if !s.noEcho {
			extras = append(extras, val.Field{Key: "nonce", Value: q.Get("nonce")})
		}
	}
	w.Write(val.Response{Status: s.status, Extras: extras}.Format(s.key))
}

func startVAL(t *testing.T, s *scriptedVAL) string {
	t.Helper()
	if s.key == nil {
		s.key = testKey
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL + "/wsapi/2.0/verify"
}

// deadURL is a URL nothing listens on.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/wsapi/2.0/verify"
}

func TestServerVerifier(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(testKey)
	tests := []struct {
		name    string
		servers func(t *testing.T) []string
		want    Code
		wantIs  error
	}{
		{"OK", func(t *testing.T) []string { return []string{startVAL(t, &scriptedVAL{status: val.StatusOK})} }, Success, nil},
		{"BAD_OTP", func(t *testing.T) []string { return []string{startVAL(t, &scriptedVAL{status: val.StatusBadOTP})} }, AuthErr, valclient.ErrBadOTP},
		{"REPLAYED_OTP", func(t *testing.T) []string { return []string{startVAL(t, &scriptedVAL{status: val.StatusReplayedOTP})} }, AuthErr, valclient.ErrReplayedOTP},
		{"NO_SUCH_CLIENT", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusNoSuchClient})}
		}, AuthinfoUnavail, valclient.ErrNoSuchClient},
		{"BACKEND_ERROR then OK", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusBackendError}), startVAL(t, &scriptedVAL{status: val.StatusOK, delay: 50 * time.Millisecond})}
		}, Success, nil},
		{"only BACKEND_ERROR", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusBackendError})}
		}, AuthinfoUnavail, ErrNoServer},
		{"unreachable then OK", func(t *testing.T) []string {
			return []string{deadURL(t), startVAL(t, &scriptedVAL{status: val.StatusOK, delay: 50 * time.Millisecond})}
		}, Success, nil},
		{"all unreachable", func(t *testing.T) []string { return []string{deadURL(t), deadURL(t)} }, AuthinfoUnavail, ErrNoServer},
		{"REPLAYED_REQUEST then REPLAYED_OTP", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusReplayedRequest}), startVAL(t, &scriptedVAL{status: val.StatusReplayedOTP, delay: 50 * time.Millisecond})}
		}, AuthErr, valclient.ErrReplayedOTP},
		{"response signed with another key", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusOK, key: []byte("wrong")})}
		}, AuthinfoUnavail, ErrNoServer},
		{"forged OK skipped, real BAD_OTP decides", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusOK, key: []byte("wrong")}), startVAL(t, &scriptedVAL{status: val.StatusBadOTP, delay: 50 * time.Millisecond})}
		}, AuthErr, valclient.ErrBadOTP},
		{"OK without nonce echo", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusOK, noEcho: true})}
		}, AuthinfoUnavail, valclient.ErrEchoMismatch},
		{"black hole bounded by the timeout", func(t *testing.T) []string {
			return []string{startVAL(t, &scriptedVAL{status: val.StatusOK, delay: time.Minute})}
		}, AuthinfoUnavail, ErrNoServer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewServerVerifier(ServerOptions{URLs: tt.servers(t), ClientID: 1, Key: key, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			err = v.Verify(context.Background(), bobOTP)
			if got := VerifyCode(err); got != tt.want {
				t.Errorf("Verify = %v (%v), want %v", got, err, tt.want)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("Verify = %v, want errors.Is %v", err, tt.wantIs)
			}
		})
	}
}

func TestServerVerifierSignsRequests(t *testing.T) {
	s := &scriptedVAL{status: val.StatusOK}
	u := startVAL(t, s)
	var logs bytes.Buffer
	dbg := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	v, err := NewServerVerifier(ServerOptions{URLs: []string{u}, ClientID: 7, Key: base64.StdEncoding.EncodeToString(testKey), Timeout: 2 * time.Second, Log: dbg})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), bobOTP); err != nil {
		t.Fatalf("Verify = %v, want nil", err)
	}
	if strings.Contains(logs.String(), bobOTP[12:]) || !strings.Contains(logs.String(), "status=OK") {
		t.Errorf("debug logs show the OTP's token or miss the response:\n%s", logs.String())
	}
	if s.badReqs.Load() != 0 || s.hits.Load() != 1 {
		t.Errorf("server saw %d requests, %d badly signed; want 1, 0", s.hits.Load(), s.badReqs.Load())
	}
	// An OTP that cannot be valid is not sent.
	if err := v.Verify(context.Background(), bobID); !errors.Is(err, valclient.ErrInvalidOTP) || VerifyCode(err) != AuthErr {
		t.Errorf("Verify(public ID alone) = %v, want ErrInvalidOTP (PAM_AUTH_ERR)", err)
	}
	if s.hits.Load() != 1 {
		t.Errorf("server saw %d requests, want 1", s.hits.Load())
	}
}

func TestServerVerifierBadConfig(t *testing.T) {
	for _, o := range []ServerOptions{
		{URLs: []string{"http://h/v"}, ClientID: 0},                      // id 0
		{URLs: []string{"http://h/v"}, ClientID: 1, Key: "!!notb64"},     // key
		{URLs: []string{"ftp://h/v"}, ClientID: 1},                       // scheme
		{URLs: nil, ClientID: 1},                                         // none
		{URLs: []string{"http://h/v"}, ClientID: 1, Proxy: "socks4://p"}, // proxy scheme
		{URLs: []string{"http://h/v"}, ClientID: 1, CAInfo: "/nonexistent.pem"},
		{URLs: []string{"http://h/v"}, ClientID: 1, CAPath: "/nonexistent"},
	} {
		if _, err := NewServerVerifier(o); err == nil {
			t.Errorf("NewServerVerifier(%+v) returned no error", o)
		}
	}
}

func TestServerVerifierTLS(t *testing.T) {
	s := &scriptedVAL{status: val.StatusOK, key: testKey}
	srv := httptest.NewTLSServer(s)
	t.Cleanup(srv.Close)
	u := srv.URL + "/wsapi/2.0/verify"
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "README"), []byte("not a certificate"), 0o644)
	key := base64.StdEncoding.EncodeToString(testKey)
	tests := []struct {
		name           string
		caPath, caInfo string
		want           Code
	}{
		{"system roots only", "", "", AuthinfoUnavail},
		{"cainfo", "", caFile, Success},
		{"capath", dir, "", Success},
		{"other CA", "", "/etc/ssl/certs/ca-certificates.crt", AuthinfoUnavail},
	}
	for _, tt := range tests {
		if tt.caInfo != "" {
			if _, err := os.Stat(tt.caInfo); err != nil {
				continue
			}
		}
		v, err := NewServerVerifier(ServerOptions{URLs: []string{u}, ClientID: 1, Key: key, CAPath: tt.caPath, CAInfo: tt.caInfo, Timeout: 2 * time.Second})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if err := v.Verify(context.Background(), bobOTP); VerifyCode(err) != tt.want {
			t.Errorf("%s: Verify = %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestServerVerifierProxy(t *testing.T) {
	u := startVAL(t, &scriptedVAL{status: val.StatusOK})
	var proxied atomic.Int32
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proxied.Add(1)
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, r.URL.String(), nil)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(proxy.Close)
	v, err := NewServerVerifier(ServerOptions{URLs: []string{u}, ClientID: 1, Key: base64.StdEncoding.EncodeToString(testKey),
		Proxy: proxy.Listener.Addr().String(), Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(context.Background(), bobOTP); err != nil || proxied.Load() != 1 {
		t.Errorf("Verify through proxy = %v with %d proxied requests, want nil with 1", err, proxied.Load())
	}
}

func TestParseProxy(t *testing.T) {
	tests := []struct{ in, want string }{
		{"proxy.example", "http://proxy.example:1080"},
		{"proxy.example:3128", "http://proxy.example:3128"},
		{"https://p:443", "https://p:443"},
		{"socks5://p", "socks5://p:1080"},
		{"socks5h://user:pw@p:9050", "socks5h://user:pw@p:9050"},
		{"socks4://p", ""},
		{"socks4a://p", ""},
		{"http://", ""},
	}
	for _, tt := range tests {
		u, err := ParseProxy(tt.in)
		got := ""
		if err == nil {
			got = u.String()
		}
		if got != tt.want {
			t.Errorf("ParseProxy(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}
