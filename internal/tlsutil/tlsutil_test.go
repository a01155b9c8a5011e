package tlsutil_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/internal/tlsutil/tlstest"
)

// logBuffer collects log records written concurrently.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLog() (*slog.Logger, *logBuffer) {
	var b logBuffer
	return slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})), &b
}

// serve runs an HTTPS server with tc on loopback that answers "hello" and
// the client certificate's CN, and returns its URL.
func serve(t *testing.T, tc *tls.Config, errorLog func()) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := newLog()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "hello")
			if len(r.TLS.PeerCertificates) > 0 {
				io.WriteString(w, " "+r.TLS.PeerCertificates[0].Subject.CommonName)
			}
		}),
		TLSConfig: tc,
		ErrorLog:  tlsutil.ErrorLog(logger, errorLog),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String() + "/"
}

// client returns an HTTP client with tc.
func client(tc *tls.Config, keepAlive bool) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: !keepAlive, ForceAttemptHTTP2: true}, Timeout: 30 * time.Second}
}

// get fetches url and returns the body and the serial of the server's certificate.
func get(c *http.Client, url string) (string, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	return string(b), resp.TLS.PeerCertificates[0].SerialNumber.Text(16), nil
}

func serialOf(p *tlstest.Pair) string { return p.Cert.SerialNumber.Text(16) }

func TestReload(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	a, b := ca.Server(t), ca.Server(t)
	certFile, keyFile := a.Write(t, dir, "server")
	logger, logs := newLog()
	tc, kp, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: certFile, KeyFile: keyFile, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, tc, nil)
	keep := client(&tls.Config{RootCAs: ca.Pool()}, true)
	if body, serial, err := get(keep, url); err != nil || body != "hello" || serial != serialOf(a) {
		t.Fatalf("GET = %q, cert %s, %v; want hello with cert %s", body, serial, err, serialOf(a))
	}

	b.Write(t, dir, "server")
	if err := kp.Reload(); err != nil {
		t.Fatalf("Reload = %v", err)
	}
	if got := kp.Certificate().Leaf.SerialNumber.Text(16); got != serialOf(b) {
		t.Errorf("Certificate after Reload = %s, want %s", got, serialOf(b))
	}
	fresh := client(&tls.Config{RootCAs: ca.Pool()}, false)
	if _, serial, err := get(fresh, url); err != nil || serial != serialOf(b) {
		t.Errorf("new connection after Reload: cert %s, %v; want %s", serial, err, serialOf(b))
	}
	// The kept-alive connection is untouched: still the old handshake.
	if _, serial, err := get(keep, url); err != nil || serial != serialOf(a) {
		t.Errorf("kept-alive connection after Reload: cert %s, %v; want the old %s", serial, err, serialOf(a))
	}

	// Bad new files keep the current pair.
	c := ca.Server(t)
	expired := ca.Issue(t, tlstest.Options{CommonName: "old", Hosts: []string{"127.0.0.1"}, Server: true,
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	for _, tt := range []struct {
		name      string
		cert, key []byte
		want      string
	}{
		{"garbage certificate", []byte("not a certificate"), b.KeyPEM, "certificate"},
		{"empty key", b.CertPEM, nil, "key"},
		{"key of another certificate", c.CertPEM, b.KeyPEM, "private key does not match"},
		{"expired certificate", expired.CertPEM, expired.KeyPEM, "expired"},
	} {
		os.WriteFile(certFile, tt.cert, 0o600)
		os.WriteFile(keyFile, tt.key, 0o600)
		err := kp.Reload()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Reload = %v, want an error about %q", tt.name, err, tt.want)
		}
		if _, serial, err := get(fresh, url); err != nil || serial != serialOf(b) {
			t.Errorf("%s: new connection: cert %s, %v; want the kept %s", tt.name, serial, err, serialOf(b))
		}
	}
	os.Remove(certFile)
	if err := kp.Reload(); err == nil {
		t.Error("Reload with the certificate file gone = nil")
	}
	if _, serial, err := get(fresh, url); err != nil || serial != serialOf(b) {
		t.Errorf("missing file: new connection: cert %s, %v; want the kept %s", serial, err, serialOf(b))
	}
	l := logs.String()
	for _, want := range []string{`msg="tls: certificate loaded"`, `msg="tls: certificate reloaded"`, `level=ERROR msg="tls: reload failed; keeping the current certificate"`} {
		if !strings.Contains(l, want) {
			t.Errorf("log lacks %s:\n%s", want, l)
		}
	}
	if strings.Contains(l, "PRIVATE KEY") {
		t.Errorf("log shows a private key:\n%s", l)
	}
}

// TestReloader sends the test process a real SIGHUP.
func TestReloader(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	a, b := ca.Server(t), ca.Server(t)
	certFile, keyFile := a.Write(t, dir, "server")
	tc, kp, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, tc, nil)
	logger, logs := newLog()
	r := tlsutil.CatchReload(syscall.SIGHUP)
	r.Run(t.Context(), logger, func() { kp.Reload() })
	defer r.Stop()

	b.Write(t, dir, "server")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	fresh := client(&tls.Config{RootCAs: ca.Pool()}, false)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, serial, err := get(fresh, url)
		if err != nil {
			t.Fatalf("GET: %v", err)
		}
		if serial == serialOf(b) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the server still shows certificate %s, want %s", serial, serialOf(b))
		}
		time.Sleep(10 * time.Millisecond)
	}
	r.Stop()
	r.Stop() // twice is harmless

	// With nothing to reload the signal is caught and logged.
	r2 := tlsutil.CatchReload(syscall.SIGHUP)
	r2.Run(t.Context(), logger)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for !strings.Contains(logs.String(), "nothing to reload") {
		if time.Now().After(deadline) {
			t.Fatalf("no log of the signal:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r2.Stop()
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	stranger := tlstest.NewCA(t, "stranger CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	var handshakeErrors atomic.Int64
	tc, _, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	if tc.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientAuth = %v, want RequireAndVerifyClientCert", tc.ClientAuth)
	}
	url := serve(t, tc, func() { handshakeErrors.Add(1) })

	for _, tt := range []struct {
		name string
		pair *tlstest.Pair
		ok   bool
	}{
		{"no client certificate", nil, false},
		{"client certificate of a stranger CA", stranger.Client(t, "val1"), false},
		{"server certificate of the right CA", ca.Server(t), false}, // no clientAuth usage
		{"client certificate of the right CA", ca.Client(t, "val1"), true},
	} {
		ctc := &tls.Config{RootCAs: ca.Pool()}
		if tt.pair != nil {
			ctc.Certificates = []tls.Certificate{tt.pair.TLSCertificate(t)}
		}
		before := handshakeErrors.Load()
		body, _, err := get(client(ctc, false), url)
		switch {
		case tt.ok && (err != nil || body != "hello val1"):
			t.Errorf("%s: GET = %q, %v; want \"hello val1\"", tt.name, body, err)
		case !tt.ok && err == nil:
			t.Errorf("%s: GET = %q, want the handshake refused", tt.name, body)
		case !tt.ok:
			// The server logs the failed handshake after the client saw it.
			deadline := time.Now().Add(10 * time.Second)
			for handshakeErrors.Load() == before && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if handshakeErrors.Load() == before {
				t.Errorf("%s: the refused handshake was not counted", tt.name)
			}
		}
	}

	// NewClient with the client's files works too.
	clientCert, clientKey := ca.Client(t, "val2").Write(t, dir, "client")
	ctc, kp, err := tlsutil.NewClient(tlsutil.ClientConfig{CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})
	if err != nil || kp == nil {
		t.Fatalf("NewClient = %v, %v", kp, err)
	}
	if body, _, err := get(client(ctc, true), url); err != nil || body != "hello val2" {
		t.Errorf("GET with NewClient's config = %q, %v; want \"hello val2\"", body, err)
	}
	// A reloaded client certificate is sent on the next handshake.
	ca.Client(t, "val3").Write(t, dir, "client")
	if err := kp.Reload(); err != nil {
		t.Fatal(err)
	}
	if body, _, err := get(client(ctc, false), url); err != nil || body != "hello val3" {
		t.Errorf("GET after the client's Reload = %q, %v; want \"hello val3\"", body, err)
	}
}

func TestServerName(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t, "ksm.example").Write(t, dir, "server")
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	tc, _, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, tc, nil)
	ctc, kp, err := tlsutil.NewClient(tlsutil.ClientConfig{CAFile: caFile})
	if err != nil || kp != nil {
		t.Fatalf("NewClient = %v, %v; want no pair", kp, err)
	}
	if _, _, err := get(client(ctc, false), url); err == nil {
		t.Error("GET 127.0.0.1 with a certificate for ksm.example succeeded")
	}
	ctc, _, err = tlsutil.NewClient(tlsutil.ClientConfig{CAFile: caFile, ServerName: "ksm.example"})
	if err != nil {
		t.Fatal(err)
	}
	if body, _, err := get(client(ctc, false), url); err != nil || body != "hello" {
		t.Errorf("GET with ServerName ksm.example = %q, %v", body, err)
	}
	// Without a CA file the system roots do not know the test CA.
	ctc, _, _ = tlsutil.NewClient(tlsutil.ClientConfig{ServerName: "ksm.example"})
	if _, _, err := get(client(ctc, false), url); err == nil {
		t.Error("GET trusting the system roots accepted the test CA")
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	noPEM := filepath.Join(dir, "empty.pem")
	os.WriteFile(noPEM, []byte("nothing\n"), 0o600)
	missing := filepath.Join(dir, "missing.pem")

	for _, tt := range []struct {
		name string
		cfg  tlsutil.ServerConfig
		want []string
	}{
		{"nothing", tlsutil.ServerConfig{}, []string{"no certificate file", "no key file"}},
		{"bad CA and missing cert", tlsutil.ServerConfig{CertFile: missing, KeyFile: keyFile, ClientCAFile: noPEM}, []string{"holds no PEM certificate", "missing.pem"}},
		{"key for cert", tlsutil.ServerConfig{CertFile: keyFile, KeyFile: keyFile}, []string{"certificate"}},
	} {
		_, _, err := tlsutil.NewServer(tt.cfg)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("NewServer(%s) = %v, want an error about %q", tt.name, err, w)
			}
		}
	}
	for _, tt := range []struct {
		name string
		cfg  tlsutil.ClientConfig
		want []string
	}{
		{"cert without key", tlsutil.ClientConfig{CertFile: certFile}, []string{"both a certificate file and a key file"}},
		{"missing CA and bad pair", tlsutil.ClientConfig{CAFile: missing, CertFile: certFile, KeyFile: certFile}, []string{"CA file", "key"}},
	} {
		_, _, err := tlsutil.NewClient(tt.cfg)
		for _, w := range tt.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("NewClient(%s) = %v, want an error about %q", tt.name, err, w)
			}
		}
	}
	if !(tlsutil.ClientConfig{}).IsZero() || (tlsutil.ClientConfig{CAFile: "x"}).IsZero() {
		t.Error("ClientConfig.IsZero is wrong")
	}
}

func TestExpiryWarning(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	soon := ca.Issue(t, tlstest.Options{CommonName: "soon", Server: true, NotAfter: time.Now().Add(time.Hour)})
	certFile, keyFile := soon.Write(t, dir, "soon")
	logger, logs := newLog()
	if _, err := tlsutil.LoadKeyPair(certFile, keyFile, logger); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), `level=WARN msg="tls: certificate expires soon"`) {
		t.Errorf("no expiry warning for a certificate ending in an hour:\n%s", logs)
	}
	expired := ca.Issue(t, tlstest.Options{CommonName: "gone", Server: true, NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	certFile, keyFile = expired.Write(t, dir, "gone")
	if _, err := tlsutil.LoadKeyPair(certFile, keyFile, nil); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("LoadKeyPair(expired) = %v, want an expiry error", err)
	}
}

func TestErrorLog(t *testing.T) {
	logger, logs := newLog()
	n := 0
	l := tlsutil.ErrorLog(logger, func() { n++ })
	l.Print("http: TLS handshake error from 192.0.2.1:5555: tls: client didn't provide a certificate")
	l.Print("http: TLS handshake error from [2001:db8::1]:5555: EOF")
	l.Print("http: Accept error: too many open files; retrying in 5ms")
	if n != 2 {
		t.Errorf("handshake errors counted = %d, want 2", n)
	}
	got := logs.String()
	for _, want := range []string{
		`level=INFO msg="tls: handshake failed" remote=192.0.2.1:5555 err="tls: client didn't provide a certificate"`,
		`level=DEBUG msg="tls: handshake failed" remote=[2001:db8::1]:5555 err=EOF`,
		`level=WARN msg="http: Accept error: too many open files; retrying in 5ms"`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %s:\n%s", want, got)
		}
	}
	// A nil callback is fine.
	tlsutil.ErrorLog(logger, nil).Print("http: TLS handshake error from 192.0.2.1:1: EOF")
}

// TestPlainClientOnTLS: a client speaking plain HTTP to the TLS port gets
// no answer from a handler and the failed handshake is counted.
func TestPlainClientOnTLS(t *testing.T) {
	tc, _ := newServerConfig(t)
	var count atomic.Int64
	url := serve(t, tc, func() { count.Add(1) })
	resp, err := http.Get("http" + strings.TrimPrefix(url, "https"))
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(b), "hello") {
			t.Errorf("plain HTTP to the TLS port = %d %q, want 400 from net/http", resp.StatusCode, b)
		}
	} else if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "malformed") && !strings.Contains(err.Error(), "EOF") {
		t.Logf("plain HTTP to the TLS port: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for count.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if count.Load() == 0 {
		t.Error("the failed handshake was not counted")
	}
}

func FuzzErrorLog(f *testing.F) {
	for _, s := range []string{
		"http: TLS handshake error from 192.0.2.1:5555: tls: client didn't provide a certificate",
		"http: TLS handshake error from [2001:db8::1]:5555: EOF",
		"http: TLS handshake error from ",
		"http: Accept error: too many open files; retrying in 5ms",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		var buf bytes.Buffer
		n := 0
		l := tlsutil.ErrorLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), func() { n++ })
		l.Print(line)
		want := 0
		if strings.HasPrefix(line, "http: TLS handshake error from ") {
			want = 1
		}
		if n != want {
			t.Fatalf("ErrorLog(%q) counted %d handshake errors, want %d", line, n, want)
		}
		if strings.Count(buf.String(), "\n") != 1 {
			t.Fatalf("ErrorLog(%q) logged %q, want one record", line, buf.String())
		}
	})
}

// TestHTTP1Only: under http.Server.ServeTLS, which offers HTTP/2 by
// default, NewServer's config negotiates HTTP/1.1 with clients that offer
// both, refuses clients that offer only HTTP/2, uses TLS 1.3 with an AEAD
// suite, and resumes sessions from its tickets.
func TestHTTP1Only(t *testing.T) {
	tc, ca := newServerConfig(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := newLog()
	srv := &http.Server{
		Handler:   http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
		TLSConfig: tc,
		ErrorLog:  tlsutil.ErrorLog(logger, nil),
	}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	url := "https://" + ln.Addr().String() + "/"

	for _, tt := range []struct {
		name   string
		protos []string
		want   string // the protocol the handler saw; "" for a refused handshake
	}{
		{"HTTP/2 and HTTP/1.1", []string{"h2", "http/1.1"}, "HTTP/1.1"},
		{"HTTP/1.1", []string{"http/1.1"}, "HTTP/1.1"},
		{"no ALPN", nil, "HTTP/1.1"},
		{"HTTP/2 only", []string{"h2"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctc := &tls.Config{RootCAs: ca.Pool(), NextProtos: tt.protos, ClientSessionCache: tls.NewLRUClientSessionCache(4)}
			if tt.want == "" {
				conn, err := tls.Dial("tcp", ln.Addr().String(), ctc)
				if err == nil {
					conn.Close()
					t.Fatalf("handshake offering only h2 succeeded (ALPN %q), want it refused", conn.ConnectionState().NegotiatedProtocol)
				}
				return
			}
			// A request (which also brings the session ticket), then a new
			// connection that resumes the session.
			tr := &http.Transport{TLSClientConfig: ctc, ForceAttemptHTTP2: slices.Contains(tt.protos, "h2")}
			defer tr.CloseIdleConnections()
			body, _, err := get(&http.Client{Transport: tr, Timeout: 10 * time.Second}, url)
			if err != nil || body != tt.want {
				t.Errorf("GET = %q, %v; want %q", body, err, tt.want)
			}
			conn, err := tls.Dial("tcp", ln.Addr().String(), ctc)
			if err != nil {
				t.Fatal(err)
			}
			cs := conn.ConnectionState()
			conn.Close()
			if cs.NegotiatedProtocol == "h2" {
				t.Errorf("negotiated h2, want HTTP/1.1")
			}
			if cs.Version != tls.VersionTLS13 || (cs.CipherSuite != tls.TLS_AES_128_GCM_SHA256 && cs.CipherSuite != tls.TLS_CHACHA20_POLY1305_SHA256) {
				t.Errorf("negotiated %s with %s, want TLS 1.3 with AES-128-GCM (or ChaCha20-Poly1305 without AES instructions)",
					tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))
			}
			if !cs.DidResume {
				t.Errorf("second connection did not resume the session")
			}
		})
	}
}

// newServerConfig returns NewServer's config for a server certificate of a
// new test CA (no client certificates asked for), and the CA.
func newServerConfig(t *testing.T) (*tls.Config, *tlstest.CA) {
	t.Helper()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t).Write(t, t.TempDir(), "server")
	tc, _, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	return tc, ca
}
