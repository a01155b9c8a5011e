package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/internal/tlsutil/tlstest"
	"github.com/ykstack/ykstack/ksm/ksmclient"
)

// BenchmarkDecryptTransport measures what TLS costs a decrypt: ykksmd over
// SQLite on loopback, asked by an in-process ksmclient (as ykvald asks it)
// on keep-alive connections, over plain HTTP, HTTPS and mutual TLS, with
// HTTP/1.1 (ksmclient's own client) and with net/http's client offering
// HTTP/2, which ykksmd declines (tlsutil.NewServer negotiates HTTP/1.1
// only), so the -h2 runs measure that client over HTTP/1.1. "serial" is
// one request at a time (latency); "parallel" is 8 clients per CPU
// (throughput). Logs are at warn, so the request log is not measured.
// Besides ns/op, cpu-µs/op is the process's CPU time (client and server
// together) per decrypt, which a machine shared with other work skews
// less than the time.
func BenchmarkDecryptTransport(b *testing.B) {
	dir := b.TempDir()
	ca := tlstest.NewCA(b, "bench CA")
	certFile, keyFile := ca.Server(b).Write(b, dir, "server")
	caFile := ca.WriteCert(b, filepath.Join(dir, "ca.crt"))
	clientPair := ca.Client(b, "val1")
	clientCert, clientKey := clientPair.Write(b, dir, "val1")

	dsn := testdb.SQLite(b)
	seed(b, dsn)
	base := []string{"--listen", "127.0.0.1:0", "--db", dsn, "--log-level", "warn"}
	plain := start(b, base, nil)
	tlsOnly := start(b, append(base, "--tls-cert", certFile, "--tls-key", keyFile), nil)
	mutual := start(b, append(base, "--tls-cert", certFile, "--tls-key", keyFile, "--tls-client-ca", caFile), nil)

	// h2 is a client offering HTTP/2 (ksmclient's own client does not).
	h2 := func(cert bool) *http.Client {
		tc := &tls.Config{RootCAs: ca.Pool()}
		if cert {
			tc.Certificates = []tls.Certificate{clientPair.TLSCertificate(b)}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}}
	}
	for _, tt := range []struct {
		name string
		cfg  ksmclient.Config
	}{
		{"http", ksmclient.Config{URLs: []string{"http://" + plain.addr + "/wsapi/decrypt"}}},
		{"https-h1", ksmclient.Config{URLs: []string{"https://" + tlsOnly.addr + "/wsapi/decrypt"}, CAFile: caFile}},
		{"https-h2", ksmclient.Config{URLs: []string{"https://" + tlsOnly.addr + "/wsapi/decrypt"}, HTTPClient: h2(false)}},
		{"mtls-h1", ksmclient.Config{URLs: []string{"https://" + mutual.addr + "/wsapi/decrypt"}, CAFile: caFile, CertFile: clientCert, KeyFile: clientKey}},
		{"mtls-h2", ksmclient.Config{URLs: []string{"https://" + mutual.addr + "/wsapi/decrypt"}, HTTPClient: h2(true)}},
	} {
		c, err := ksmclient.New(tt.cfg)
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		if _, err := c.Decrypt(ctx, ciOTP); err != nil { // warm up: the handshake
			b.Fatalf("%s: %v", tt.name, err)
		}
		b.Run(tt.name+"/serial", func(b *testing.B) {
			cpu := cpuTime(b)
			for b.Loop() {
				if _, err := c.Decrypt(ctx, ciOTP); err != nil {
					b.Fatal(err)
				}
			}
			reportCPU(b, cpu)
		})
		b.Run(tt.name+"/parallel", func(b *testing.B) {
			b.SetParallelism(8)
			cpu := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := c.Decrypt(ctx, ciOTP); err != nil {
						b.Error(err)
						return
					}
				}
			})
			reportCPU(b, cpu)
		})
		c.CloseIdleConnections()
	}
}

// cpuTime returns the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time since start per operation.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
}
