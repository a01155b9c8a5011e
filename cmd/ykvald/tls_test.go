package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/internal/tlsutil/tlstest"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
)

// mint returns an OTP of the CI key at (counter, use).
func mint(counter uint16, use uint8) string {
	key, _ := otp.ParseKey(ciKey.AESKey)
	uid, _ := otp.ParseUID(ciKey.InternalName)
	return otp.Generate(ciKey.PublicName, key, otp.Token{UID: uid, Counter: counter, Use: use,
		TimestampLow: 0x1000 + uint16(use)*8, TimestampHigh: 1, Random: 0x4754})
}

// otpSource hands out fresh OTPs of the CI key, each after the previous,
// from counter 2 on (after line1 and line2).
type otpSource struct{ n atomic.Int64 }

func (o *otpSource) next() string {
	n := o.n.Add(1) - 1
	return mint(uint16(2+n/256), uint8(n%256))
}

// httpsClient returns a client trusting ca, with keep-alive connections
// or not.
func httpsClient(ca *tlstest.CA, keepAlive bool) *http.Client {
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}, DisableKeepAlives: !keepAlive},
		Timeout:   30 * time.Second,
	}
}

// verifyWith asks base to verify o with a fresh nonce and returns the
// answer, checked to be signed with the CI client's key.
func verifyWith(c *http.Client, base, o string) (val.Status, error) {
	resp, err := c.Get(base + "/wsapi/2.0/verify?id=1&nonce=" + nonce + "&otp=" + o)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	r, err := val.ParseResponse(body)
	if err != nil || resp.StatusCode != 200 {
		return "", errors.New("HTTP " + resp.Status + ": " + string(body))
	}
	if !r.Verify(val.DecodeKey(ciSecret)) {
		return r.Status(), errors.New("answer not signed with the client key: " + string(body))
	}
	return r.Status(), nil
}

func handshakeSerial(t *testing.T, addr string, ca *tlstest.CA) string {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Text(16)
}

func serialOf(p *tlstest.Pair) string { return p.Cert.SerialNumber.Text(16) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func hup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// mtlsKSM runs a real KSM (ksmserver over a SQLite key database holding
// the CI key) over HTTPS requiring client certificates signed by ca, as
// ykksmd --tls-client-ca does, and returns its decrypt URL.
func mtlsKSM(t *testing.T, ca *tlstest.CA) string {
	t.Helper()
	dir := t.TempDir()
	st, err := ksmsqlstore.Open(context.Background(), sqldb.Config{DSN: ksmDB(t, testdb.Backends()[0])})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := ca.Server(t).Write(t, dir, "ksm")
	tc, _, err := tlsutil.NewServer(tlsutil.ServerConfig{CertFile: certFile, KeyFile: keyFile, ClientCAFile: ca.WriteCert(t, filepath.Join(dir, "ca.crt"))})
	if err != nil {
		t.Fatal(err)
	}
	// Not httptest's StartTLS: it would put its own certificate first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: mux, TLSConfig: tc, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String() + "/wsapi/decrypt"
}

// TestServeTLS serves the verify API over HTTPS on each backend: verify,
// plain HTTP to the TLS port refused and counted.
func TestServeTLS(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			ca := tlstest.NewCA(t, "test CA")
			certFile, keyFile := ca.Server(t).Write(t, dir, "server")
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-url", ksmServer(t),
				"--tls-cert", certFile, "--tls-key", keyFile}, nil)
			base := "https://" + strings.TrimPrefix(s.url, "http://")
			c := httpsClient(ca, true)
			if st, err := verifyWith(c, base, line1); err != nil || st != val.StatusOK {
				t.Errorf("verify over HTTPS = %s, %v; want OK", st, err)
			}
			resp, err := http.Get(s.url + "/wsapi/2.0/verify?id=1&nonce=" + nonce + "&otp=" + line2)
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest || strings.Contains(string(body), "status=") {
					t.Errorf("plain HTTP to the TLS port = %d %q, want net/http's 400", resp.StatusCode, body)
				}
			}
			waitFor(t, "the failed handshake in the metrics", func() bool {
				resp, err := c.Get(base + "/metrics")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				m, _ := io.ReadAll(resp.Body)
				return strings.Contains(string(m), "\nykval_tls_handshake_errors_total 1\n")
			})
			if err := s.stop(); err != nil {
				t.Errorf("serve after cancel = %v", err)
			}
			logs := s.stderr.String()
			for _, want := range []string{`msg="tls: certificate loaded"`, "tls=true", `msg="tls: handshake failed"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %s:\n%s", want, logs)
				}
			}
		})
	}
}

// TestReloadUnderLoad replaces the server certificate, and the client
// certificate ykvald presents to a mutual-TLS KSM, while clients on
// keep-alive and on new connections keep verifying fresh OTPs: SIGHUP must
// not cost a single request.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	a, b, c := ca.Server(t), ca.Server(t), ca.Server(t)
	certFile, keyFile := a.Write(t, dir, "server")
	ksmCert, ksmKey := ca.Client(t, "val1").Write(t, dir, "val1")
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0]), "--tls-cert", certFile, "--tls-key", keyFile,
		"--ksm-url", mtlsKSM(t, ca), "--ksm-ca", caFile, "--ksm-cert", ksmCert, "--ksm-key", ksmKey, "--log-level", "warn"}, nil)
	addr := strings.TrimPrefix(s.url, "http://")
	base := "https://" + addr
	if got := handshakeSerial(t, addr, ca); got != serialOf(a) {
		t.Fatalf("server presents %s, want %s", got, serialOf(a))
	}

	var src otpSource
	var ok, failed atomic.Int64
	var firstErr sync.Once
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		cl := httpsClient(ca, i%2 == 0)
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				// Workers race, so a fresh OTP may come after a later one:
				// REPLAYED_OTP is a right answer too.
				st, err := verifyWith(cl, base, src.next())
				if err != nil || (st != val.StatusOK && st != val.StatusReplayedOTP) {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("verify under load = %s, %v", st, err) })
					continue
				}
				ok.Add(1)
			}
		})
	}
	progress := func() {
		t.Helper()
		n := ok.Load()
		waitFor(t, "requests under load", func() bool { return ok.Load() >= n+30 })
	}

	progress()
	b.Write(t, dir, "server")
	ca.Client(t, "val1").Write(t, dir, "val1")
	hup(t)
	waitFor(t, "the new certificate", func() bool { return handshakeSerial(t, addr, ca) == serialOf(b) })
	progress()

	// Bad files: logged, and the certificates stay.
	os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600)
	os.WriteFile(ksmCert, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600)
	hup(t)
	waitFor(t, "the failed reloads in the log", func() bool {
		l := s.stderr.String()
		return strings.Contains(l, "tls: reload failed") && strings.Contains(l, "reload of the KSM client certificate failed")
	})
	if got := handshakeSerial(t, addr, ca); got != serialOf(b) {
		t.Errorf("after a bad reload the server presents %s, want the kept %s", got, serialOf(b))
	}
	progress()

	c.Write(t, dir, "server")
	ca.Client(t, "val1").Write(t, dir, "val1")
	hup(t)
	waitFor(t, "the third certificate", func() bool { return handshakeSerial(t, addr, ca) == serialOf(c) })
	progress()
	close(stop)
	wg.Wait()
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("under load: %d verifies failed, %d succeeded; want 0 failed", failed.Load(), ok.Load())
	}
	t.Logf("%d verifies during three reloads, %d failed", ok.Load(), failed.Load())
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}

// TestKSMMutualTLS: ykvald reaches a KSM that requires client
// certificates with --ksm-ca/--ksm-cert/--ksm-key; without the certificate
// the KSM refuses the handshake and the answer is BACKEND_ERROR, never OK
// or BAD_OTP.
func TestKSMMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	stranger := tlstest.NewCA(t, "stranger CA")
	ksmURL := mtlsKSM(t, ca)
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	goodCert, goodKey := ca.Client(t, "val1").Write(t, dir, "val1")
	badCert, badKey := stranger.Client(t, "val1").Write(t, dir, "stranger")
	tests := []struct {
		name string
		args []string
		want val.Status
	}{
		{"client certificate", []string{"--ksm-ca", caFile, "--ksm-cert", goodCert, "--ksm-key", goodKey}, val.StatusOK},
		{"no client certificate", []string{"--ksm-ca", caFile}, val.StatusBackendError},
		{"certificate of another CA", []string{"--ksm-ca", caFile, "--ksm-cert", badCert, "--ksm-key", badKey}, val.StatusBackendError},
		{"KSM not trusted", []string{"--ksm-cert", goodCert, "--ksm-key", goodKey}, val.StatusBackendError},
		{"route with a client certificate", []string{"--ksm-route", "idkf=" + ksmURL, "--ksm-ca", caFile, "--ksm-cert", goodCert, "--ksm-key", goodKey}, val.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0]), "--ksm-timeout", "5s"}
			if !strings.HasPrefix(tt.name, "route") {
				args = append(args, "--ksm-url", ksmURL)
			}
			s := start(t, append(args, tt.args...), nil)
			if r := s.verify(t, line1, nonce); r.Status() != tt.want {
				t.Errorf("verify = %s, want %s", r.Status(), tt.want)
			}
			s.stop()
			if logs := s.stderr.String(); strings.Contains(logs, line1) || strings.Contains(logs, "PRIVATE KEY") {
				t.Errorf("log shows the OTP or a key:\n%s", logs)
			}
		})
	}
}

func TestTLSUsage(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--ksm-url", "http://k/", "--tls-cert", certFile}, []string{"--tls-cert and --tls-key go together"}},
		{[]string{"--ksm-url", "http://k/", "--ksm-cert", certFile}, []string{"--ksm-cert and --ksm-key go together"}},
		{[]string{"--ksm-db", "sqlite:/x.db", "--ksm-ca", certFile, "--ksm-kek-file", "/x", "--ksm-key-cache-ttl", "-1s"}, []string{
			"--ksm-ca, --ksm-cert and --ksm-key go with --ksm-url or --ksm-route", "--ksm-key-cache-ttl -1s",
		}},
		{[]string{"--ksm-url", "http://k/", "--ksm-kek-file", "/x"}, []string{"--ksm-kek-file and --ksm-old-kek-file go with --ksm-db"}},
		{[]string{"--ksm-url", "http://k/", "--sync-ca", certFile}, []string{"--sync-ca goes with --sync-peer"}},
		{[]string{"--ksm-url", "http://k/", "--log-format", "xml", "--log-level", "loud", "--syslog-addr", "x"}, []string{`format "xml"`, `level "loud"`, "syslog address"}},
	} {
		err := run(context.Background(), cli.Env{Args: tt.args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
		if !errors.Is(err, cli.ErrUsage) {
			t.Errorf("run(%q) = %v, want a usage error", tt.args, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("run(%q) = %v, want it to name %s", tt.args, err, w)
			}
		}
	}
	// Files that do not load are a runtime failure, before serving.
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"missing certificate", []string{"--ksm-url", "http://k/", "--tls-cert", filepath.Join(dir, "none.crt"), "--tls-key", keyFile}},
		{"key as certificate", []string{"--ksm-url", "http://k/", "--tls-cert", keyFile, "--tls-key", keyFile}},
		{"missing KSM client certificate", []string{"--ksm-url", "https://k/", "--ksm-cert", filepath.Join(dir, "none.crt"), "--ksm-key", keyFile}},
		{"KSM CA file without certificates", []string{"--ksm-url", "https://k/", "--ksm-ca", keyFile}},
		{"sync CA file without certificates", []string{"--ksm-url", "https://k/", "--sync-peer", "https://p/wsapi/2.0/sync", "--sync-ca", keyFile}},
	} {
		args := append([]string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0])}, tt.args...)
		err := run(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
		if code := cli.Report("ykvald", io.Discard, err); err == nil || code != cli.ExitFailure {
			t.Errorf("%s: run = %v (exit %d), want a runtime failure", tt.name, err, code)
		}
	}
}

// TestSIGHUPWithoutTLS: a plain server logs SIGHUP and keeps serving.
func TestSIGHUPWithoutTLS(t *testing.T) {
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0]), "--ksm-url", ksmServer(t)}, nil)
	hup(t)
	waitFor(t, "the signal in the log", func() bool { return strings.Contains(s.stderr.String(), "nothing to reload") })
	if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
		t.Errorf("verify after SIGHUP = %s, want OK", r.Status())
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}

// TestPoolOverTLS: two ykvalds serving HTTPS replicate to each other over
// https, trusting the pool's CA with --sync-ca; without it the peer's
// certificate is not trusted and the pool falls short.
func TestPoolOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "pool CA")
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	certFile, keyFile := ca.Server(t).Write(t, dir, "val")
	ksm := ksmServer(t)
	b := testdb.Backends()[0]
	peer := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-url", ksm, "--tls-cert", certFile, "--tls-key", keyFile,
		"--sync-allow", "127.0.0.1"}, nil)
	peerSync := "https://" + strings.TrimPrefix(peer.url, "http://") + "/wsapi/2.0/sync"
	for _, tt := range []struct {
		name  string
		args  []string
		otp   string
		want  val.Status
		sl    string
		level string
	}{
		{"--sync-ca", []string{"--sync-ca", caFile}, line1, val.StatusOK, "100", ""},
		{"system roots", nil, line2, val.StatusNotEnoughAnswers, "0", "100"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := start(t, append([]string{"--listen", "127.0.0.1:0", "--db", valDB(t, b), "--ksm-url", ksm, "--sync-peer", peerSync, "--queue-worker=false"}, tt.args...), nil)
			q := "/wsapi/2.0/verify?id=1&nonce=" + nonce + "&otp=" + tt.otp + "&timeout=5"
			if tt.level != "" {
				q += "&sl=" + tt.level
			}
			code, body := a.get(t, q)
			r, err := val.ParseResponse([]byte(body))
			if code != 200 || err != nil || r.Status() != tt.want || r.Get("sl") != tt.sl {
				t.Errorf("verify: %d %q, want %s sl=%s", code, body, tt.want, tt.sl)
			}
		})
	}
}

// TestSIGHUPAtListening: SIGHUP sent while ykvald logs that it listens
// (`systemctl reload` right after start) is caught and logged, not the end
// of the server.
func TestSIGHUPAtListening(t *testing.T) {
	hl := &tlstest.HUPLog{Line: "ykvald listening"}
	s := startLogging(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0]), "--ksm-url", ksmServer(t)}, nil, hl)
	if sent, err := hl.Sent(); !sent || err != nil {
		t.Fatalf("SIGHUP sent: %v, %v", sent, err)
	}
	waitFor(t, "the signal in the log", func() bool { return strings.Contains(hl.String(), "nothing to reload") })
	if r := s.verify(t, line1, nonce); r.Status() != val.StatusOK {
		t.Errorf("verify after SIGHUP = %s, want OK", r.Status())
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}
