package valserver_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/internal/ratelimit"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
)

// metricValue returns the value of one series in reg, as text, or "".
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return strconv.FormatFloat(m.GetCounter().GetValue(), 'g', -1, 64)
		}
	}
	return ""
}

func limiter(t *testing.T, rate float64, burst int) *ratelimit.Limiter {
	t.Helper()
	l, err := ratelimit.New(ratelimit.Config{Rate: rate, Burst: burst})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rawVerify GETs a verify URL and returns the HTTP status, the
// Retry-After header and the parsed answer.
func rawVerify(t *testing.T, u string) (int, string, val.Reply) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	r, err := val.ParseResponse(body)
	if err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), r
}

// TestRateLimit: past the source's rate, verify answers
// OPERATION_NOT_ALLOWED signed with the empty key (before the client is
// read), with HTTP 200 and a Retry-After, and counts it.
func TestRateLimit(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := start(t, b, valserver.Config{RateLimit: limiter(t, 1.0/3600, 2)})
			for i := range 2 {
				if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, uint8(i)), "nonce", nonce1)); r.Status() != val.StatusOK {
					t.Errorf("verify %d of the burst: %s, want OK", i+1, r.Status())
				}
			}
			code, retry, r := rawVerify(t, e.url+"/wsapi/2.0/verify?"+query("id", "1", "otp", mint(t, 1, 2), "nonce", nonce1))
			if code != 200 || r.Status() != val.StatusOperationNotAllowed || !r.Verify(nil) || retry != "3600" || r.Get("otp") != "" {
				t.Errorf("verify past the rate: HTTP %d, %s (empty key %v), Retry-After %q, otp %q; want 200 OPERATION_NOT_ALLOWED signed with the empty key, Retry-After 3600, no otp",
					code, r.Status(), r.Verify(nil), retry, r.Get("otp"))
			}
			if got := metricValue(t, e.reg, "ykval_refused_total", map[string]string{"reason": "rate_limited"}); got != "1" {
				t.Errorf("ykval_refused_total{reason=rate_limited} = %s, want 1", got)
			}
			if got := metricValue(t, e.reg, "ykval_verify_total", map[string]string{"status": "OPERATION_NOT_ALLOWED", "client": "unknown"}); got != "1" {
				t.Errorf("ykval_verify_total{OPERATION_NOT_ALLOWED,unknown} = %s, want 1", got)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "level=DEBUG msg=verify status=OPERATION_NOT_ALLOWED reason=\"source address over its rate limit\" refused=rate_limited ip=127.0.0.1") {
				t.Errorf("no debug line for the refusal:\n%s", logs)
			}
		})
	}
}

// TestClientRateLimit: past a client's rate, verify answers
// OPERATION_NOT_ALLOWED signed with the client's key; a request with a bad
// signature takes none of the client's rate; other clients go on.
func TestClientRateLimit(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{ClientRateLimit: limiter(t, 1.0/3600, 1)})
	if _, err := e.store.ImportClients(context.Background(), []val.Client{{ID: 2, Active: true, Created: 1, Secret: ciSecret}}); err != nil {
		t.Fatal(err)
	}
	bad := query("id", "1", "otp", mint(t, 1, 0), "nonce", nonce1) + "&h=" + strings.Repeat("A", 27) + "%3D"
	if _, r := e.verify(t, "/wsapi/2.0/verify", bad); r.Status() != val.StatusBadSignature {
		t.Fatalf("badly signed verify: %s, want BAD_SIGNATURE", r.Status())
	}
	if _, r := e.verify(t, "/wsapi/2.0/verify", signed(query("id", "1", "otp", mint(t, 1, 0), "nonce", nonce1))); r.Status() != val.StatusOK {
		t.Errorf("first verify of client 1: %s, want OK", r.Status())
	}
	code, retry, r := rawVerify(t, e.url+"/wsapi/2.0/verify?"+query("id", "1", "otp", mint(t, 1, 1), "nonce", nonce1))
	if code != 200 || r.Status() != val.StatusOperationNotAllowed || !r.Verify(clientKey) || retry != "3600" {
		t.Errorf("second verify of client 1: HTTP %d, %s (client key %v), Retry-After %q; want 200 OPERATION_NOT_ALLOWED signed with the client key",
			code, r.Status(), r.Verify(clientKey), retry)
	}
	if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "2", "otp", mint(t, 1, 2), "nonce", nonce1)); r.Status() != val.StatusOK {
		t.Errorf("first verify of client 2: %s, want OK", r.Status())
	}
	if got := metricValue(t, e.reg, "ykval_refused_total", map[string]string{"reason": "client_rate_limited"}); got != "1" {
		t.Errorf("ykval_refused_total{reason=client_rate_limited} = %s, want 1", got)
	}
	if got := metricValue(t, e.reg, "ykval_verify_total", map[string]string{"status": "OPERATION_NOT_ALLOWED", "client": "1"}); got != "1" {
		t.Errorf("ykval_verify_total{OPERATION_NOT_ALLOWED,1} = %s, want 1", got)
	}
}

// signed adds the CI client's signature to a query.
func signed(q string) string {
	return q + "&h=" + strings.NewReplacer("+", "%2B", "/", "%2F", "=", "%3D").Replace(val.Sign(clientKey, val.FieldsFromValues(val.ParseQuery(q))))
}

// blockingKSM decrypts with the CI key once release is closed, and says
// on entered each time a decryption starts.
func blockingKSM(t *testing.T) (val.KSM, chan struct{}, chan struct{}) {
	entered, release := make(chan struct{}, 16), make(chan struct{})
	k := ciKSM(t)
	return ksmFunc(func(ctx context.Context, o string) (val.Decrypted, error) {
		entered <- struct{}{}
		<-release
		return k.Decrypt(ctx, o)
	}), entered, release
}

// TestMaxInflight: with every verify slot taken, a verify waits
// InflightWait, then gets HTTP 503 with BACKEND_ERROR signed with the empty
// key (clients take a 5xx as this server failing and ask another).
func TestMaxInflight(t *testing.T) {
	tests := []struct {
		name   string
		cfg    valserver.Config
		key    []byte
		reason string
	}{
		{"verify cap", valserver.Config{MaxInflight: 1, InflightWait: 10 * time.Millisecond}, nil, "busy"},
		{"KSM cap", valserver.Config{MaxKSMInflight: 1, InflightWait: 10 * time.Millisecond}, clientKey, "ksm_busy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ksm, entered, release := blockingKSM(t)
			tt.cfg.KSM = ksm
			e := start(t, testdb.Backends()[0], tt.cfg)
			var wg sync.WaitGroup
			var first val.Status
			wg.Go(func() {
				_, _, r := rawVerify(t, e.url+"/wsapi/2.0/verify?"+query("id", "1", "otp", mint(t, 1, 0), "nonce", nonce1))
				first = r.Status()
			})
			<-entered // the first verify holds the slot
			code, retry, r := rawVerify(t, e.url+"/wsapi/2.0/verify?"+query("id", "1", "otp", mint(t, 1, 1), "nonce", nonce1))
			if code != http.StatusServiceUnavailable || r.Status() != val.StatusBackendError || !r.Verify(tt.key) || retry != "1" {
				t.Errorf("verify with the slot taken: HTTP %d, %s (signed with the expected key: %v), Retry-After %q; want 503 BACKEND_ERROR, Retry-After 1",
					code, r.Status(), r.Verify(tt.key), retry)
			}
			close(release)
			wg.Wait()
			if first != val.StatusOK {
				t.Errorf("the verify holding the slot: %s, want OK", first)
			}
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 2), "nonce", nonce1)); r.Status() != val.StatusOK {
				t.Errorf("verify with the slot free again: %s, want OK", r.Status())
			}
			if got := metricValue(t, e.reg, "ykval_refused_total", map[string]string{"reason": tt.reason}); got != "1" {
				t.Errorf("ykval_refused_total{reason=%s} = %s, want 1", tt.reason, got)
			}
		})
	}
}

// TestAllowLists: revoke, sync and resync take networks; refusals are
// counted as not_allowed.
func TestAllowLists(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{RevokeIPs: []string{"10.0.0.0/8", "127.0.0.0/30"}})
	if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 0), "nonce", nonce1)); r.Status() != val.StatusOK {
		t.Fatalf("enrol the key: %s", r.Status())
	}
	if got := revoke(t, http.MethodGet, e.url+"/wsapi/revoke?yk=idkfefrdhtru&do=disable", ""); got != "OK Processed idkfefrdhtru with disable\n" {
		t.Errorf("revoke from 127.0.0.1 allowed by 127.0.0.0/30 = %q", got)
	}
	if got := revoke(t, http.MethodGet, e.url+"/wsapi/2.0/resync?yk=all", ""); got != "ERROR Authorization failed (logged 127.0.0.1)\n" {
		t.Errorf("resync without an allow-list = %q", got)
	}
	if got := metricValue(t, e.reg, "ykval_refused_total", map[string]string{"reason": "not_allowed"}); got != "1" {
		t.Errorf("ykval_refused_total{reason=not_allowed} = %s, want 1", got)
	}
}
