package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/tlsutil"
)

// genCerts runs ykbench gencert into a new directory and returns it.
func genCerts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if _, errOut, err := runCmd(t, "gencert", "--dir", dir); err != nil {
		t.Fatalf("ykbench gencert: %v\n%s", err, errOut)
	}
	return dir
}

// tlsServer serves h over HTTPS on loopback with the certificates in dir,
// as ykksmd does (tlsutil.NewServer), requiring a client certificate when
// mutual, and returns its https URL.
func tlsServer(t *testing.T, h http.Handler, dir string, mutual bool) string {
	t.Helper()
	return tlsServerH2(t, h, dir, mutual, false)
}

// tlsServerH2 is tlsServer, offering HTTP/2 as well when h2 (which
// tlsutil.NewServer's config does not).
func tlsServerH2(t *testing.T, h http.Handler, dir string, mutual, h2 bool) string {
	t.Helper()
	cfg := tlsutil.ServerConfig{CertFile: filepath.Join(dir, "server.crt"), KeyFile: filepath.Join(dir, "server.key")}
	if mutual {
		cfg.ClientCAFile = filepath.Join(dir, "ca.crt")
	}
	tc, _, err := tlsutil.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if h2 {
		tc = tc.Clone()
		tc.GetConfigForClient, tc.NextProtos = nil, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, TLSConfig: tc, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.ServeTLS(ln, "", "")
	t.Cleanup(func() { srv.Close() })
	return "https://" + ln.Addr().String()
}

func TestGenCert(t *testing.T) {
	dir := genCerts(t)
	for _, name := range []string{"ca.crt", "server.crt", "server.key", "client.crt", "client.key"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	for _, pair := range []string{"server", "client"} {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, pair+".crt"), filepath.Join(dir, pair+".key"))
		if err != nil {
			t.Fatalf("%s pair: %v", pair, err)
		}
		if c.Leaf.PublicKeyAlgorithm.String() != "ECDSA" {
			t.Errorf("%s key is %v, want ECDSA", pair, c.Leaf.PublicKeyAlgorithm)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"no dir", []string{"gencert"}},
		{"argument", []string{"gencert", "--dir", dir, "extra"}},
		{"days", []string{"gencert", "--dir", dir, "--days", "0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := runCmd(t, tc.args...); err == nil {
				t.Errorf("ykbench %s: no error", strings.Join(tc.args, " "))
			}
		})
	}
}

// TestKSMTLS loads a KSM over HTTPS and mutual TLS with both clients.
func TestKSMTLS(t *testing.T) {
	keysFile, keys := writeKeys(t, 50)
	dir := genCerts(t)
	h, _ := ksmMux(t, keys)
	ca := filepath.Join(dir, "ca.crt")
	clientArgs := []string{"--cert", filepath.Join(dir, "client.crt"), "--key", filepath.Join(dir, "client.key")}
	for _, tc := range []struct {
		name   string
		mutual bool
		args   []string
	}{
		{"tls", false, []string{"--cacert", ca}},
		{"tls-client-cert", false, append([]string{"--cacert", ca}, clientArgs...)},
		{"mtls", true, append([]string{"--cacert", ca}, clientArgs...)},
	} {
		url := tlsServer(t, h, dir, tc.mutual)
		for _, client := range []string{clientRaw, clientStd} {
			t.Run(tc.name+"/"+client, func(t *testing.T) {
				args := append([]string{"ksm", "--url", url, "--client", client, "-c", "4", "-d", "300ms", "--warmup", "50ms", "--otps", "500", "--keys", keysFile}, tc.args...)
				out, errOut, err := runCmd(t, args...)
				if err != nil {
					t.Fatalf("ykbench %s: %v\n%s", strings.Join(args, " "), err, errOut)
				}
				r := jsonResult(t, out)
				if r.Requests == 0 || r.Errors != 0 || r.WarmupErrs != 0 || r.URL != url {
					t.Errorf("result = %+v, want requests > 0, no errors, url %s", r, url)
				}
			})
		}
	}
}

// TestKSMTLSRefused checks that the TLS checks are real: a server whose
// certificate the client does not trust, and a mutual-TLS server to which
// the client shows no certificate, fail every request.
func TestKSMTLSRefused(t *testing.T) {
	keysFile, keys := writeKeys(t, 10)
	dir, other := genCerts(t), genCerts(t)
	h, _ := ksmMux(t, keys)
	plain := tlsServer(t, h, dir, false)
	mutual := tlsServer(t, h, dir, true)
	for _, tc := range []struct {
		name, url, ca string
	}{
		{"untrusted server", plain, filepath.Join(other, "ca.crt")},
		{"no client certificate", mutual, filepath.Join(dir, "ca.crt")},
	} {
		for _, client := range []string{clientRaw, clientStd} {
			t.Run(tc.name+"/"+client, func(t *testing.T) {
				out, errOut, err := runCmd(t, "ksm", "--url", tc.url, "--client", client, "--cacert", tc.ca, "--keys", keysFile, "-c", "1", "-d", "100ms", "--warmup", "0s")
				if err != nil {
					t.Fatalf("ykbench ksm: %v\n%s", err, errOut)
				}
				if r := jsonResult(t, out); r.Requests == 0 || r.Errors != r.Requests {
					t.Errorf("requests %d, errors %d, sample %q; want every request to fail", r.Requests, r.Errors, r.ErrorSample)
				}
			})
		}
	}
}

// TestTLSFlags checks the usage errors of the TLS flags.
func TestTLSFlags(t *testing.T) {
	keysFile, _ := writeKeys(t, 2)
	dir := genCerts(t)
	ca := filepath.Join(dir, "ca.crt")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cacert with http", []string{"--url", "http://127.0.0.1:1", "--cacert", ca}, "go with an https URL"},
		{"cert without key", []string{"--url", "https://127.0.0.1:1", "--cacert", ca, "--cert", filepath.Join(dir, "client.crt")}, "--cert and --key go together"},
		{"missing CA file", []string{"--url", "https://127.0.0.1:1", "--cacert", filepath.Join(dir, "nosuch.crt")}, "CA file"},
		{"non-loopback https", []string{"--url", "https://192.0.2.1:8443", "--cacert", ca}, "not a loopback address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"ksm", "--keys", keysFile, "-d", "100ms"}, tc.args...)
			_, _, err := runCmd(t, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ykbench %s: error %v, want one containing %q", strings.Join(args, " "), err, tc.want)
			}
		})
	}
}

// TestWaitTLS waits for HTTPS servers, with and without a client certificate.
func TestWaitTLS(t *testing.T) {
	dir := genCerts(t)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	plain, mutual := tlsServer(t, ok, dir, false), tlsServer(t, ok, dir, true)
	ca := filepath.Join(dir, "ca.crt")
	for _, tc := range []struct {
		name string
		args []string
		ok   bool
	}{
		{"tls", []string{"--cacert", ca, plain + "/healthz", "5s"}, true},
		{"mtls", []string{"--cacert", ca, "--cert", filepath.Join(dir, "client.crt"), "--key", filepath.Join(dir, "client.key"), mutual + "/", "5s"}, true},
		{"mtls without a certificate", []string{"--cacert", ca, mutual + "/", "300ms"}, false},
		{"untrusted", []string{plain + "/", "300ms"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, err := runCmd(t, append([]string{"wait"}, tc.args...)...)
			if (err == nil) != tc.ok {
				t.Errorf("ykbench wait %s: error %v, want ok = %v\n%s", strings.Join(tc.args, " "), err, tc.ok, errOut)
			}
		})
	}
}

// TestReportVsPlaintext checks the pairing of TLS and sealed runs with the
// plaintext runs of the same results: interleaved repeats pair in order,
// each run keeps its own server record, and the medians and the target
// follow.
func TestReportVsPlaintext(t *testing.T) {
	load := func(label, mode string, c int, rps float64) string {
		return fmt.Sprintf(`{"kind":"load","label":%q,"mode":%q,"client":"raw","concurrency":%d,"requests":%d,"rps":%g,"p99_ms":2,"elapsed_s":10}`, label, mode, c, int(rps*10), rps)
	}
	server := func(label string, c int, cpu float64) string {
		return fmt.Sprintf(`{"kind":"server","label":%q,"client":"raw","concurrency":%d,"server":"ykksmd","peak_rss_kib":1024,"cpu_s":%g,"wall_s":12}`, label, c, cpu)
	}
	var lines []string
	// Three interleaved pairs at c=32: TLS at 95%, 80% and 92% of plaintext
	// (median 92%); CPU per request 10, 12, 11 µs against 10 (median 110%).
	for _, tc := range []struct{ plain, tls, tlsCPU float64 }{{40000, 38000, 3.8}, {40000, 32000, 3.84}, {40000, 36800, 4.048}} {
		lines = append(lines, load("ksm-sqlite", "ksm", 32, tc.plain), server("ksm-sqlite", 32, 4),
			load("ksm-sqlite-tls", "ksm", 32, tc.tls), server("ksm-sqlite-tls", 32, tc.tlsCPU))
	}
	lines = append(lines,
		load("ksm-sqlite-sealed", "ksm", 8, 30000), server("ksm-sqlite-sealed", 8, 3), // no plaintext run at c=8
		load("val-sqlite-embedded", "val", 32, 5000), load("val-sqlite-embedded-tls", "val", 32, 4000))
	out := report(t, lines)
	for _, want := range []string{
		"| ksm-sqlite-tls | raw | 32 | 38000 | 0.000 | 0.000 | 2.000 | 0.000 | 0 | – | req/s 95%, CPU/req 100% | 1.0 MiB | 32% | 10 |",
		"| ksm-sqlite-tls | raw | 32 | 32000 | 0.000 | 0.000 | 2.000 | 0.000 | 0 | – | req/s 80%, CPU/req 120% |",
		"| ksm-sqlite-tls | ksm-sqlite | raw | 32 | 3 | 36800 | 40000 | 92% | 2.000 | 2.000 | 11 | 10 | 110% |",
		"| val-sqlite-embedded-tls | val-sqlite-embedded | raw | 32 | 1 | 4000 | 5000 | 80% | 2.000 | 2.000 | – | – | – |",
		"ksm-sqlite-tls (raw client) c=32: 8.0% slower than ksm-sqlite (req/s, median of 3 run pairs; server CPU/req +10%), target < 10% slower | met |",
		"val-sqlite-embedded-tls (raw client) c=32: 20.0% slower than val-sqlite-embedded (req/s, median of 1 run pairs; server CPU/req –), target < 10% slower | **missed** |",
		"| ksm-sqlite-sealed | raw | 8 | 30000 | 0.000 | 0.000 | 2.000 | 0.000 | 0 | – | – |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ksm-sqlite-tls (raw client) c=32: 38000 decrypts/s") {
		t.Errorf("report checks the plaintext decrypt target on a TLS run:\n%s", out)
	}
	for _, tc := range []struct{ label, want string }{
		{"ksm-sqlite-tls", "ksm-sqlite"},
		{"ksm-sqlite-mtls", "ksm-sqlite"},
		{"ksm-sqlite-sealed", "ksm-sqlite"},
		{"val-sqlite-embedded-tls", "val-sqlite-embedded"},
		{"ksm-sqlite", ""},
		{"-tls", ""},
	} {
		if got := plaintextLabel(tc.label); got != tc.want {
			t.Errorf("plaintextLabel(%q) = %q, want %q", tc.label, got, tc.want)
		}
	}
}

// TestTLSProtocols checks which HTTP version each client speaks over TLS:
// HTTP/1.1, or HTTP/2 with --http2 (std only), one connection per worker.
func TestTLSProtocols(t *testing.T) {
	dir := genCerts(t)
	var conns sync.Map
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conns.Store(r.RemoteAddr, true)
		io.WriteString(w, r.Proto)
	})
	h1, _ := url.Parse(tlsServer(t, h, dir, false))
	h2, _ := url.Parse(tlsServerH2(t, h, dir, false, true))
	for _, tc := range []struct {
		client string
		http2  bool
		server *url.URL
		want   string // "": every request fails
		conns  int    // requests here are sequential: std's shared pool needs one
	}{
		{clientRaw, false, h1, "HTTP/1.1", 2},
		{clientStd, false, h1, "HTTP/1.1", 1},
		{clientStd, false, h2, "HTTP/1.1", 1},
		{clientStd, true, h2, "HTTP/2.0", 2},
		{clientStd, true, h1, "", 0}, // ykstack's servers refuse HTTP/2 only clients
	} {
		u := tc.server
		t.Run(fmt.Sprintf("%s/http2=%v/%s", tc.client, tc.http2, u.Host), func(t *testing.T) {
			conns.Clear()
			f := tlsClientFlags{caFile: filepath.Join(dir, "ca.crt"), http2: tc.http2}
			cfg, err := f.config(u)
			if err != nil {
				t.Fatal(err)
			}
			gs, err := newGetters(tc.client, u, 2, 5*time.Second, cfg)
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				for _, g := range gs {
					status, body, err := g.get(context.Background(), "/")
					if tc.want == "" {
						if err == nil {
							t.Fatalf("GET = %d, %q; want an error", status, body)
						}
						continue
					}
					if err != nil || status != 200 || string(body) != tc.want {
						t.Fatalf("GET = %d, %q, %v; want 200, %q", status, body, err, tc.want)
					}
				}
			}
			for _, g := range gs {
				g.close()
			}
			n := 0
			conns.Range(func(any, any) bool { n++; return true })
			if tc.want != "" && n != tc.conns {
				t.Errorf("2 workers used %d connections, want %d", n, tc.conns)
			}
		})
	}
	if _, _, err := runCmd(t, "ksm", "--url", h1.String(), "--keys", "x", "--http2"); err == nil || !strings.Contains(err.Error(), "--http2 needs --client std") {
		t.Errorf("--http2 with the raw client: error %v, want a usage error", err)
	}
}
