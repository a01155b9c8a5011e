package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/internal/tlsutil/tlstest"
	"github.com/ykstack/ykstack/ksm/ksmclient"
)

// httpsClient returns a client trusting ca and presenting pair when not
// nil, with keep-alive connections or not, offering HTTP/2 or not.
func httpsClient(t *testing.T, ca *tlstest.CA, pair *tlstest.Pair, keepAlive, h2 bool) *http.Client {
	tc := &tls.Config{RootCAs: ca.Pool()}
	if pair != nil {
		tc.Certificates = []tls.Certificate{pair.TLSCertificate(t)}
	}
	return &http.Client{
		Transport: &http.Transport{TLSClientConfig: tc, DisableKeepAlives: !keepAlive, ForceAttemptHTTP2: h2},
		Timeout:   30 * time.Second,
	}
}

// fetch GETs url with c.
func fetch(c *http.Client, url string) (int, string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// handshakeSerial makes a new TLS connection to addr and returns the
// serial number of the certificate the server presents.
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

// metricLine returns the /metrics line of name, fetched with c.
func metricLine(t *testing.T, c *http.Client, base, name string) string {
	t.Helper()
	_, body, err := fetch(c, base+"/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, name+" ") {
			return l
		}
	}
	return ""
}

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

func TestServeTLS(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dir := t.TempDir()
			ca := tlstest.NewCA(t, "test CA")
			certFile, keyFile := ca.Server(t).Write(t, dir, "server")
			caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
			dsn := b.DSN(t)
			seed(t, dsn)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--tls-cert", certFile, "--tls-key", keyFile}, nil)
			base := "https://" + s.addr

			for _, h2 := range []bool{false, true} {
				if code, body, err := fetch(httpsClient(t, ca, nil, true, h2), base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != 200 || body != ciOK {
					t.Errorf("GET over HTTPS (HTTP/2 %v) = %d %q, %v; want 200 %q", h2, code, body, err, ciOK)
				}
			}
			c, err := ksmclient.New(ksmclient.Config{URLs: []string{base + "/wsapi/decrypt"}, CAFile: caFile})
			if err != nil {
				t.Fatal(err)
			}
			if res, err := c.Decrypt(context.Background(), ciOTP); err != nil || res.String()+"\n" != ciOK {
				t.Errorf("ksmclient.Decrypt over HTTPS = %v, %v; want %q", res, err, ciOK)
			}
			// Plain HTTP to the TLS port is no decrypt.
			if code, body, err := fetch(http.DefaultClient, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); err == nil && (code != http.StatusBadRequest || body == ciOK) {
				t.Errorf("plain HTTP to the TLS port = %d %q, want net/http's 400", code, body)
			}
			waitFor(t, "the failed handshake in the metrics", func() bool {
				return metricLine(t, httpsClient(t, ca, nil, false, false), base, "ykksm_tls_handshake_errors_total") == "ykksm_tls_handshake_errors_total 1"
			})
			if err := s.stop(); err != nil {
				t.Errorf("serve after cancel = %v", err)
			}
			logs := s.stderr.String()
			for _, want := range []string{`msg="tls: certificate loaded"`, "tls=true mutual_tls=false allow=any", `msg="tls: handshake failed"`} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %s:\n%s", want, logs)
				}
			}
		})
	}
}

// TestReloadUnderLoad replaces the certificate while clients, on
// keep-alive connections and on new ones, HTTP/1.1 and HTTP/2, keep
// decrypting: SIGHUP must not cost a single request.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	a, b, c := ca.Server(t), ca.Server(t), ca.Server(t)
	certFile, keyFile := a.Write(t, dir, "server")
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--tls-cert", certFile, "--tls-key", keyFile, "--log-level", "warn"}, nil)
	url := "https://" + s.addr + "/wsapi/decrypt?otp=" + ciOTP
	if got := handshakeSerial(t, s.addr, ca); got != serialOf(a) {
		t.Fatalf("server presents %s, want %s", got, serialOf(a))
	}

	// A keep-alive connection opened before the reloads.
	var reused atomic.Bool
	keep := httpsClient(t, ca, nil, true, false)
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused.Store(i.Reused) }}
	keepGet := func() (string, error) {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", url, nil)
		resp, err := keep.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		io.ReadAll(resp.Body)
		return resp.TLS.PeerCertificates[0].SerialNumber.Text(16), nil
	}
	if serial, err := keepGet(); err != nil || serial != serialOf(a) {
		t.Fatalf("keep-alive GET = %s, %v", serial, err)
	}

	var ok, failed atomic.Int64
	var firstErr sync.Once
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		cl := httpsClient(t, ca, nil, i%2 == 0, i%4 == 0) // keep-alive or not, HTTP/2 or not
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body, err := fetch(cl, url)
				if err != nil || code != 200 || body != ciOK {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("request under load = %d %q, %v", code, body, err) })
					continue
				}
				ok.Add(1)
			}
		})
	}
	hup := func() {
		t.Helper()
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	progress := func() { // some requests between the steps
		t.Helper()
		n := ok.Load()
		waitFor(t, "requests under load", func() bool { return ok.Load() >= n+50 })
	}

	progress()
	b.Write(t, dir, "server")
	hup()
	waitFor(t, "the new certificate", func() bool { return handshakeSerial(t, s.addr, ca) == serialOf(b) })
	progress()

	// Bad files: logged, and the certificate stays.
	os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600)
	hup()
	waitFor(t, "the failed reload in the log", func() bool { return strings.Contains(s.stderr.String(), "reload failed") })
	if got := handshakeSerial(t, s.addr, ca); got != serialOf(b) {
		t.Errorf("after a bad reload the server presents %s, want the kept %s", got, serialOf(b))
	}
	progress()

	c.Write(t, dir, "server")
	hup()
	waitFor(t, "the third certificate", func() bool { return handshakeSerial(t, s.addr, ca) == serialOf(c) })
	progress()
	close(stop)
	wg.Wait()

	// The connection opened before the reloads is still the same one.
	if serial, err := keepGet(); err != nil || serial != serialOf(a) || !reused.Load() {
		t.Errorf("keep-alive GET after the reloads = cert %s, reused %v, %v; want the old connection with %s", serial, reused.Load(), err, serialOf(a))
	}
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Errorf("under load: %d requests failed, %d succeeded; want 0 failed", failed.Load(), ok.Load())
	}
	t.Logf("%d requests during three reloads, %d failed", ok.Load(), failed.Load())
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	stranger := tlstest.NewCA(t, "stranger CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", caFile}, nil)
	base := "https://" + s.addr
	val1 := ca.Client(t, "val1")

	for _, tt := range []struct {
		name string
		pair *tlstest.Pair
	}{
		{"no client certificate", nil},
		{"client certificate of a stranger CA", stranger.Client(t, "val1")},
		{"server certificate of the right CA", ca.Server(t)},
	} {
		code, body, err := fetch(httpsClient(t, ca, tt.pair, false, false), base+"/wsapi/decrypt?otp="+ciOTP)
		if err == nil {
			t.Errorf("%s: GET = %d %q, want the handshake refused", tt.name, code, body)
		}
	}
	withCert := httpsClient(t, ca, val1, true, false)
	if code, body, err := fetch(withCert, base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != 200 || body != ciOK {
		t.Errorf("GET with a client certificate = %d %q, %v; want 200 %q", code, body, err, ciOK)
	}

	// ksmclient, as ykvald uses it, with the client's files.
	clientCert, clientKey := ca.Client(t, "val2").Write(t, dir, "val2")
	kc, err := ksmclient.New(ksmclient.Config{URLs: []string{base + "/wsapi/decrypt"}, CAFile: caFile, CertFile: clientCert, KeyFile: clientKey})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := kc.Decrypt(context.Background(), ciOTP); err != nil || res.String()+"\n" != ciOK {
		t.Errorf("ksmclient.Decrypt with a client certificate = %v, %v", res, err)
	}
	kc, _ = ksmclient.New(ksmclient.Config{URLs: []string{base + "/wsapi/decrypt"}, CAFile: caFile})
	if _, err := kc.Decrypt(context.Background(), ciOTP); !errors.Is(err, ksmclient.ErrUnavailable) || ksmclient.Verdict(err) {
		t.Errorf("ksmclient.Decrypt without a client certificate = %v, want ErrUnavailable, no verdict", err)
	}
	waitFor(t, "four failed handshakes in the metrics", func() bool {
		return metricLine(t, withCert, base, "ykksm_tls_handshake_errors_total") == "ykksm_tls_handshake_errors_total 4"
	})
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
	logs := s.stderr.String()
	for _, want := range []string{"mutual_tls=true", "msg=decrypt result=ok public_id=idkfefrdhtru", "client=val1", "client=val2",
		`msg="tls: handshake failed"`, "certificate"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, ciOTP) || strings.Contains(logs, "PRIVATE KEY") {
		t.Errorf("log shows the OTP or a private key:\n%s", logs)
	}
}

// sourceClient returns a plain HTTP client whose connections come from the
// loopback address source (Linux routes all of 127/8 to lo).
func sourceClient(source string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

func TestAllowFlag(t *testing.T) {
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--allow", "127.0.0.1", "--allow", "10.0.0.0/8, 192.0.2.0/24"}, nil)
	base := "http://" + s.addr
	if code, body, err := fetch(sourceClient("127.0.0.1"), base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != 200 || body != ciOK {
		t.Errorf("GET from 127.0.0.1 = %d %q, %v; want 200", code, body, err)
	}
	stranger := sourceClient("127.0.0.2")
	if code, body, err := fetch(stranger, base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != http.StatusForbidden || body != "ERR Access denied\n" {
		t.Errorf("GET from 127.0.0.2 = %d %q, %v; want 403 \"ERR Access denied\\n\"", code, body, err)
	}
	if got := metricLine(t, stranger, base, `ykksm_refused_total{reason="not_allowed"}`); got != `ykksm_refused_total{reason="not_allowed"} 1` {
		t.Errorf("/metrics: %q, want 1 not_allowed", got)
	}
	s.stop()
	logs := s.stderr.String()
	for _, want := range []string{"allow=10.0.0.0/8,127.0.0.1,192.0.2.0/24", `msg="decrypt refused" reason=not_allowed remote=127.0.0.2:`} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestRateLimitFlag(t *testing.T) {
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--rate-limit", "1/h", "--rate-burst", "2", "--max-inflight", "4"}, nil)
	base := "http://" + s.addr
	c := sourceClient("127.0.0.1")
	for i := range 2 {
		if code, body, err := fetch(c, base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != 200 || body != ciOK {
			t.Errorf("request %d of the burst = %d %q, %v; want 200", i+1, code, body, err)
		}
	}
	if code, body, err := fetch(c, base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != http.StatusTooManyRequests || body != "ERR Rate limited\n" {
		t.Errorf("request past the burst = %d %q, %v; want 429 \"ERR Rate limited\\n\"", code, body, err)
	}
	if code, body, err := fetch(sourceClient("127.0.0.4"), base+"/wsapi/decrypt?otp="+ciOTP); err != nil || code != 200 || body != ciOK {
		t.Errorf("GET from another source = %d %q, %v; want 200", code, body, err)
	}
	if got := metricLine(t, c, base, `ykksm_refused_total{reason="rate_limited"}`); got != `ykksm_refused_total{reason="rate_limited"} 1` {
		t.Errorf("/metrics: %q, want 1 rate_limited", got)
	}
}

func TestLogFlags(t *testing.T) {
	dsn := testdb.SQLite(t)
	seed(t, dsn)

	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--log-format", "json"}, nil)
	get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP)
	s.stop()
	var sawDecrypt bool
	for _, line := range strings.Split(strings.TrimSpace(s.stderr.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("--log-format json: line %q: %v", line, err)
		}
		if rec["msg"] == "decrypt" && rec["result"] == "ok" && rec["public_id"] == "idkfefrdhtru" && rec["duration"] != nil {
			sawDecrypt = true
		}
	}
	if !sawDecrypt {
		t.Errorf("--log-format json: no decrypt record:\n%s", s.stderr)
	}

	s = start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--log-target", "journal", "--log-level", "debug"}, nil)
	get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP)
	s.stop()
	logs := s.stderr.String()
	if !strings.HasPrefix(logs, "<6>level=INFO msg=\"ykksmd listening\"") || !strings.Contains(logs, "\n<6>level=INFO msg=decrypt result=ok") {
		t.Errorf("--log-target journal: log =\n%s\nwant <6>-prefixed lines without times", logs)
	}
}

func TestSecurityUsage(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, "test CA")
	certFile, keyFile := ca.Server(t).Write(t, dir, "server")
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--tls-cert", certFile}, []string{"--tls-cert and --tls-key go together"}},
		{[]string{"--tls-client-ca", certFile}, []string{"--tls-client-ca needs"}},
		{[]string{"--allow", "10.0.0.1", "--allow", "nonsense,10.0.0.300", "--rate-limit", "fast", "--rate-burst", "-1", "--max-inflight", "-2", "--log-format", "xml", "--log-level", "loud"},
			[]string{`"nonsense"`, `"10.0.0.300"`, `--rate-limit`, "--rate-burst -1", "--max-inflight -2", `format "xml"`, `level "loud"`}},
		{[]string{"--rate-burst", "5"}, []string{"--rate-burst goes with --rate-limit"}},
		{[]string{"--syslog-addr", "udp:127.0.0.1:514"}, []string{"syslog address goes with the syslog target"}},
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
		{"missing certificate", []string{"--tls-cert", filepath.Join(dir, "none.crt"), "--tls-key", keyFile}},
		{"key as certificate", []string{"--tls-cert", keyFile, "--tls-key", keyFile}},
		{"CA file without certificates", []string{"--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", keyFile}},
	} {
		args := append([]string{"--listen", "127.0.0.1:0", "--db", testdb.SQLite(t)}, tt.args...)
		err := run(context.Background(), cli.Env{Args: args, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
		if code := cli.Report("ykksmd", io.Discard, err); err == nil || code != cli.ExitFailure {
			t.Errorf("%s: run = %v (exit %d), want a runtime failure", tt.name, err, code)
		}
	}
}

// TestSIGHUPWithoutTLS: a plain server logs SIGHUP and keeps serving.
func TestSIGHUPWithoutTLS(t *testing.T) {
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn}, nil)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the signal in the log", func() bool { return strings.Contains(s.stderr.String(), "nothing to reload") })
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
		t.Errorf("GET after SIGHUP = %d %q", code, body)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}

// TestSIGHUPAtListening: SIGHUP sent while ykksmd logs that it listens
// (`systemctl reload` right after start) is caught and logged, not the end
// of the server.
func TestSIGHUPAtListening(t *testing.T) {
	dsn := testdb.SQLite(t)
	seed(t, dsn)
	hl := &tlstest.HUPLog{Line: "ykksmd listening"}
	s := startLogging(t, []string{"--listen", "127.0.0.1:0", "--db", dsn}, nil, hl)
	if sent, err := hl.Sent(); !sent || err != nil {
		t.Fatalf("SIGHUP sent: %v, %v", sent, err)
	}
	waitFor(t, "the signal in the log", func() bool { return strings.Contains(hl.String(), "nothing to reload") })
	if code, body := get(t, "http://"+s.addr+"/wsapi/decrypt?otp="+ciOTP); code != 200 || body != ciOK {
		t.Errorf("GET after SIGHUP = %d %q", code, body)
	}
	if err := s.stop(); err != nil {
		t.Errorf("serve after cancel = %v", err)
	}
}
