package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
)

// sourceClient returns a plain HTTP client whose connections come from the
// loopback address source (Linux routes all of 127/8 to lo).
func sourceClient(source string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 30 * time.Second}
}

// answer GETs path from base with c and returns the HTTP status and the
// parsed answer.
func answer(t *testing.T, c *http.Client, url string) (int, val.Reply) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r, err := val.ParseResponse(b)
	if err != nil {
		t.Fatalf("GET %s: %q: %v", url, b, err)
	}
	return resp.StatusCode, r
}

// TestRateLimitFlags: --rate-limit per source address, --client-rate-limit
// per client, both answered OPERATION_NOT_ALLOWED and counted; other
// sources go on; --revoke-ip takes networks.
func TestRateLimitFlags(t *testing.T) {
	s := start(t, []string{"--listen", "127.0.0.1:0", "--db", valDB(t, testdb.Backends()[0]), "--ksm-url", ksmServer(t),
		"--rate-limit", "1/h", "--rate-burst", "2", "--client-rate-limit", "2/h", "--client-rate-burst", "3",
		"--max-inflight", "8", "--ksm-max-inflight", "4", "--revoke-ip", "10.0.0.0/8, 127.0.0.0/29"}, nil)
	var src otpSource
	url := func() string { return s.url + "/wsapi/2.0/verify?id=1&nonce=" + nonce + "&otp=" + src.next() }
	one := sourceClient("127.0.0.1")
	for i := range 2 {
		if code, r := answer(t, one, url()); code != 200 || r.Status() != val.StatusOK {
			t.Errorf("verify %d of the burst: %d %s, want OK", i+1, code, r.Status())
		}
	}
	if code, r := answer(t, one, url()); code != 200 || r.Status() != val.StatusOperationNotAllowed || !r.Verify(nil) {
		t.Errorf("verify past the source's rate: %d %s, want OPERATION_NOT_ALLOWED signed with the empty key", code, r.Status())
	}
	// Another source: its own rate, but the same client, whose burst of 3
	// the first source has taken 2 of.
	if code, r := answer(t, sourceClient("127.0.0.4"), url()); code != 200 || r.Status() != val.StatusOK {
		t.Errorf("verify from another source: %d %s, want OK", code, r.Status())
	}
	if code, r := answer(t, sourceClient("127.0.0.4"), url()); code != 200 || r.Status() != val.StatusOperationNotAllowed || !r.Verify(val.DecodeKey(ciSecret)) {
		t.Errorf("verify past the client's rate: %d %s, want OPERATION_NOT_ALLOWED signed with the client key", code, r.Status())
	}
	if _, body := s.get(t, "/wsapi/revoke?yk=idkfefrdhtru&do=disable"); body != "OK Processed idkfefrdhtru with disable\n" {
		t.Errorf("revoke from 127.0.0.1 with --revoke-ip 127.0.0.0/29 = %q", body)
	}
	_, m := s.get(t, "/metrics")
	for _, want := range []string{`ykval_refused_total{reason="rate_limited"} 1`, `ykval_refused_total{reason="client_rate_limited"} 1`,
		`ykval_verify_total{client="unknown",status="OPERATION_NOT_ALLOWED"} 1`, `ykval_verify_total{client="1",status="OPERATION_NOT_ALLOWED"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestLimitUsage(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{[]string{"--ksm-url", "http://k/", "--rate-limit", "fast", "--rate-burst", "-1", "--client-rate-limit", "1/d",
			"--max-inflight", "-2", "--ksm-max-inflight", "-3", "--revoke-ip", "10.0.0.0/33"}, []string{
			"--rate-limit: ratelimit", "--client-rate-limit: ratelimit", "--max-inflight -2", "--ksm-max-inflight -3", `"10.0.0.0/33"`,
		}},
		{[]string{"--ksm-url", "http://k/", "--rate-burst", "5", "--client-rate-burst", "2"}, []string{
			"--rate-burst goes with --rate-limit", "--client-rate-burst goes with --client-rate-limit",
		}},
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
}
