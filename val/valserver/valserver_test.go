package valserver_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
)

// recordingSyncer answers every Sync with res and err and records the
// requests; Queue returns one entry per peer.
type recordingSyncer struct {
	mu    sync.Mutex
	res   valserver.SyncResult
	err   error
	got   []valserver.SyncRequest
	peers []string
}

func (s *recordingSyncer) Queue(req valserver.SyncRequest) []val.QueueEntry {
	var out []val.QueueEntry
	for _, p := range s.peers {
		out = append(out, val.QueueEntry{Modified: req.Accepted.Modified, ServerNonce: "recording", OTP: req.OTP, Server: p,
			Info: "yk_publicname=" + req.Accepted.PublicName})
	}
	return out
}

func (s *recordingSyncer) Sync(_ context.Context, req valserver.SyncRequest) (valserver.SyncResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, req)
	return s.res, s.err
}

func (s *recordingSyncer) last() valserver.SyncRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[len(s.got)-1]
}

// TestSyncHook checks that the pool's answers become the verify answer:
// enough confirmations are OK with sl, a replay vote REPLAYED_OTP, too few
// NOT_ENOUGH_ANSWERS with sl, a failure to queue BACKEND_ERROR.
func TestSyncHook(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			syncer := &recordingSyncer{}
			e := start(t, b, valserver.Config{Syncer: syncer})
			tests := []struct {
				res    valserver.SyncResult
				err    error
				status val.Status
				extras string // the fields after t, before status
			}{
				{valserver.SyncResult{}, nil, val.StatusOK, "sl=0"},
				{valserver.SyncResult{Pool: 3, Required: 2, Valid: 2}, nil, val.StatusOK, "sl=66"},
				{valserver.SyncResult{Pool: 3, Required: 2, Valid: 3}, nil, val.StatusOK, "sl=100"},
				{valserver.SyncResult{Pool: 3, Required: 2, Valid: 1}, nil, val.StatusNotEnoughAnswers, "sl=33"},
				{valserver.SyncResult{Pool: 3, Required: 1, Valid: 0, Replayed: true}, nil, val.StatusReplayedOTP, ""},
				{valserver.SyncResult{}, errors.New("queue: disk full"), val.StatusBackendError, ""},
			}
			for i, tt := range tests {
				syncer.res, syncer.err = tt.res, tt.err
				otp := mint(t, uint16(i+1), 0)
				n := nonce1 + string(rune('a'+i))
				body, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", otp, "nonce", n))
				want := "t=" + val.FormatTime(e.now) + "\r\n"
				if tt.status != val.StatusBackendError {
					want += "otp=" + otp + "\r\nnonce=" + n + "\r\n"
				}
				if tt.extras != "" {
					want += tt.extras + "\r\n"
				}
				want += "status=" + string(tt.status) + "\r\n\r\n"
				if _, rest, _ := strings.Cut(body, "\r\n"); rest != want || !r.Verify(clientKey) {
					t.Errorf("sync result %+v, %v: answer %q (signed with the client key: %v), want %q",
						tt.res, tt.err, rest, r.Verify(clientKey), want)
				}
			}
			if len(syncer.got) != len(tests) {
				t.Fatalf("Sync called %d times, want %d", len(syncer.got), len(tests))
			}
		})
	}
}

// TestSyncRequest checks what the Syncer is told: the OTP, the state before
// and after, the level and the bounded timeout.
func TestSyncRequest(t *testing.T) {
	b := testdb.Backends()[0]
	syncer := &recordingSyncer{}
	e := start(t, b, valserver.Config{Syncer: syncer, MaxSyncTimeout: 20 * time.Second})
	tests := []struct {
		extra   []string
		level   int64
		timeout time.Duration
	}{
		{nil, 60, time.Second},
		{[]string{"sl", "secure"}, 40, time.Second},
		{[]string{"sl", "FAST", "timeout", "5"}, 1, 5 * time.Second},
		{[]string{"sl", "150", "timeout", "0"}, 150, 20 * time.Second},
		{[]string{"timeout", "99999999999"}, 60, 20 * time.Second},
	}
	for i, tt := range tests {
		otp := mint(t, 1, uint8(i))
		q := query(append([]string{"id", "1", "otp", otp, "nonce", nonce1 + string(rune('a'+i))}, tt.extra...)...)
		if _, r := e.verify(t, "/wsapi/2.0/verify", q); r.Status() != val.StatusOK {
			t.Fatalf("verify(%s) = %s, want OK", q, r.Status())
		}
		got := syncer.last()
		if got.OTP != otp || got.Level != tt.level || got.Timeout != tt.timeout {
			t.Errorf("verify(%v): Sync got otp %s level %d timeout %v; want %s, %d, %v", tt.extra, got.OTP, got.Level, got.Timeout, otp, tt.level, tt.timeout)
		}
		wantPrev := i - 1
		if got.Accepted.Counter != 1 || got.Accepted.Use != i || got.Accepted.PublicName != ciPublicID ||
			got.Accepted.Modified != e.now.Unix() || got.Accepted.Nonce != nonce1+string(rune('a'+i)) {
			t.Errorf("verify(%v): Sync got accepted state %+v", tt.extra, got.Accepted)
		}
		if i > 0 && (got.Previous.Counter != 1 || got.Previous.Use != wantPrev) {
			t.Errorf("verify(%v): Sync got previous state %+v, want counter 1 use %d", tt.extra, got.Previous, wantPrev)
		}
		if i == 0 && got.Previous.Counter != -1 {
			t.Errorf("first verify: Sync got previous state %+v, want a fresh enrolment (-1)", got.Previous)
		}
	}
}

func TestSyncResultSL(t *testing.T) {
	tests := []struct {
		r    valserver.SyncResult
		want int
	}{
		{valserver.SyncResult{}, 0},
		{valserver.SyncResult{Pool: 3, Valid: 1}, 33},
		{valserver.SyncResult{Pool: 3, Valid: 2}, 66},
		{valserver.SyncResult{Pool: 2, Valid: 2}, 100},
	}
	for _, tt := range tests {
		if got := tt.r.SL(); got != tt.want {
			t.Errorf("%+v.SL() = %d, want %d", tt.r, got, tt.want)
		}
	}
}

// TestKSMFailures checks the answers for KSMs that fail in ways a real one
// cannot be made to: a panic, and an error of no known kind.
func TestKSMFailures(t *testing.T) {
	b := testdb.Backends()[0]
	tests := []struct {
		name string
		ksm  val.KSM
		want val.Status
	}{
		{"panic", ksmFunc(func(context.Context, string) (val.Decrypted, error) { panic("boom") }), val.StatusBackendError},
		{"unknown error", ksmFunc(func(context.Context, string) (val.Decrypted, error) { return val.Decrypted{}, io.ErrUnexpectedEOF }), val.StatusBackendError},
		{"both kinds", ksmFunc(func(context.Context, string) (val.Decrypted, error) {
			return val.Decrypted{}, errors.Join(val.ErrKSMRejected, val.ErrKSMUnavailable)
		}), val.StatusBackendError},
		{"rejected", ksmFunc(func(context.Context, string) (val.Decrypted, error) { return val.Decrypted{}, val.ErrKSMRejected }), val.StatusBadOTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, b, valserver.Config{KSM: tt.ksm})
			body, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", ciOTP, "nonce", nonce1))
			if r.Status() != tt.want || !r.Verify(clientKey) || len(r.Fields) != 2 {
				t.Errorf("verify with a KSM that fails (%s) = %q, want %s signed with the client key, no extras", tt.name, body, tt.want)
			}
		})
	}
}

// TestPhishingLogged checks that an OTP whose timestamp disagrees with the
// server's clock is accepted and logged.
func TestPhishingLogged(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{})
	if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 0), "nonce", nonce1)); r.Status() != val.StatusOK {
		t.Fatalf("first OTP: %s, want OK", r.Status())
	}
	if strings.Contains(e.logs.String(), "phishing") {
		t.Fatalf("phishing test logged for a fresh key:\n%s", e.logs)
	}
	e.now = e.now.Add(100 * time.Second) // the key's clock advanced 1 s (8 ticks)
	if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 1), "nonce", nonce1+"b")); r.Status() != val.StatusOK {
		t.Fatalf("second OTP: %s, want OK", r.Status())
	}
	if logs := e.logs.String(); !strings.Contains(logs, `level=WARN msg="OTP failed phishing test"`) {
		t.Errorf("no phishing warning in the log:\n%s", logs)
	}
}

func TestRevoke(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := start(t, b, valserver.Config{RevokeIPs: []string{"192.0.2.1", "::ffff:127.0.0.1"}})
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 0), "nonce", nonce1)); r.Status() != val.StatusOK {
				t.Fatalf("enrol the key: %s, want OK", r.Status())
			}
			tests := []struct {
				query, want string
			}{
				{"", "ERROR Missing parameter"},
				{"yk=idkfefrdhtru", "ERROR Missing parameter"},
				{"yk=0&do=enable", "ERROR Missing parameter"},
				{"yk=idkfefrdhtru&do=", "ERROR Missing parameter"},
				{"yk=abc&do=enable", "ERROR Unknown yk value: abc"},
				{"yk=IDKFEFRDHTRU&do=enable", "ERROR Unknown yk value: IDKFEFRDHTRU"},
				{"yk=ccccccccccccccccc&do=enable", "ERROR Unknown yk value: ccccccccccccccccc"},
				{"yk=idkfefrdhtru&do=remove", "ERROR Unknown do value: remove"},
				{"yk=cccccccccccb&do=disable", "ERROR Unknown yubikey: cccccccccccb"},
				{"yk=idkfefrdhtru&do=disable", "OK Processed idkfefrdhtru with disable"},
				{"yk=idkfefrdhtru&do=disable", "OK Processed idkfefrdhtru with disable"},
			}
			for _, tt := range tests {
				if got := revoke(t, http.MethodGet, e.url+"/wsapi/revoke?"+tt.query, ""); got != tt.want+"\n" {
					t.Errorf("revoke?%s = %q, want %q", tt.query, got, tt.want+"\n")
				}
			}
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 1), "nonce", nonce1)); r.Status() != val.StatusBadOTP || !r.Verify(clientKey) {
				t.Errorf("verify with a disabled key = %s, want BAD_OTP signed with the client key", r.Status())
			}
			// POST form values replace the query's, as in PHP's $_REQUEST.
			if got := revoke(t, http.MethodPost, e.url+"/wsapi/revoke.php?yk=idkfefrdhtru&do=remove", "do=enable"); got != "OK Processed idkfefrdhtru with enable\n" {
				t.Errorf("POST revoke do=enable = %q", got)
			}
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 2), "nonce", nonce1)); r.Status() != val.StatusOK {
				t.Errorf("verify with the re-enabled key = %s, want OK", r.Status())
			}
		})
	}
}

func TestRevokeNotAllowed(t *testing.T) {
	for _, ips := range [][]string{nil, {"127.0.0.2", "::1"}} {
		e := start(t, testdb.Backends()[0], valserver.Config{RevokeIPs: ips})
		want := "ERROR Authorization failed (logged 127.0.0.1)\n"
		if got := revoke(t, http.MethodGet, e.url+"/wsapi/revoke?yk=idkfefrdhtru&do=disable", ""); got != want {
			t.Errorf("revoke from 127.0.0.1 with allowed IPs %v = %q, want %q", ips, got, want)
		}
	}
}

func revoke(t *testing.T, method, u, form string) string {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Errorf("%s %s: HTTP %d %q", method, u, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return string(body)
}

func TestMetrics(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{})
	e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", ciOTP, "nonce", nonce1))
	e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", ciOTP, "nonce", nonce1))
	e.verify(t, "/wsapi/2.0/verify", query("id", "2", "otp", ciOTP, "nonce", nonce1))
	e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", "cccccccccccbtjduvtcjbfeuvhehdvjjlbchtlenfgku", "nonce", nonce1))
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	text := string(b)
	for _, want := range []string{
		`ykval_verify_total{client="1",status="OK"} 1`,
		`ykval_verify_total{client="1",status="REPLAYED_REQUEST"} 1`,
		`ykval_verify_total{client="1",status="BAD_OTP"} 1`,
		`ykval_verify_total{client="unknown",status="NO_SUCH_CLIENT"} 1`,
		`ykval_verify_total{client="unknown",status="BACKEND_ERROR"} 0`,
		`ykval_verify_duration_seconds_count 4`,
		`ykval_ksm_duration_seconds_count{result="ok"} 2`,
		`ykval_ksm_duration_seconds_count{result="rejected"} 1`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("/metrics has no line %q", want)
		}
	}
	if strings.Contains(text, ciOTP) || strings.Contains(text, `client="2"`) {
		t.Errorf("/metrics shows an OTP or an unknown client id:\n%s", text)
	}
}

// TestLogging checks the one line per verify: status, client, public ID,
// nonce; never the OTP, the secret or a signature.
func TestLogging(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{})
	q := url.Values{"id": {"1"}, "otp": {ciOTP}, "nonce": {nonce1}}
	h := val.Sign(clientKey, val.FieldsFromValues(q))
	q.Set("h", h)
	_, r := e.verify(t, "/wsapi/2.0/verify", q.Encode())
	logs := e.logs.String()
	if r.Status() != val.StatusOK || strings.Count(logs, "msg=verify") != 1 {
		t.Fatalf("verify: %s, log:\n%s", r.Status(), logs)
	}
	for _, want := range []string{"level=INFO", "status=OK", "client=1", "public_id=" + ciPublicID, "nonce=" + nonce1, "signed=true"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log has no %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{ciOTP, ciOTP[12:], ciSecret, h, r.H} {
		if strings.Contains(logs, secret) {
			t.Errorf("log shows %q:\n%s", secret, logs)
		}
	}
}

func TestHealthz(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{})
	get := func() (int, string) {
		resp, err := http.Get(e.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(); code != http.StatusOK || body != "OK\n" {
		t.Errorf("/healthz = %d %q, want 200 OK", code, body)
	}
	e.store.Close()
	if code, _ := get(); code != http.StatusServiceUnavailable {
		t.Errorf("/healthz with the store closed = %d, want 503", code)
	}
	// And verify fails closed.
	if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", ciOTP, "nonce", nonce1)); r.Status() != val.StatusBackendError || !r.Verify(nil) {
		t.Errorf("verify with the store closed = %s, want BACKEND_ERROR signed with the empty key", r.Status())
	}
}

func TestPaths(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{})
	tests := []struct {
		path string
		code int
	}{
		{"/wsapi/2.0/verify", 200},
		{"/wsapi/2.0/verify.php", 200},
		{"/wsapi/verify", 200},
		{"/wsapi/verify.php", 200},
		{"/wsapi/1.1/verify", 200},
		{"/wsapi/11.22/verify", 200},
		{"/wsapi/abc/verify", 404},
		{"/wsapi/2/verify", 404},
		{"/wsapi/2.0/verify/x", 404},
		{"/verify", 404},
	}
	for _, tt := range tests {
		resp, err := http.Get(e.url + tt.path + "?id=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.code {
			t.Errorf("GET %s: HTTP %d, want %d", tt.path, resp.StatusCode, tt.code)
		}
	}
	req, _ := http.NewRequest(http.MethodPut, e.url+"/wsapi/2.0/verify", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT verify: HTTP %d, want 405", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	err := valserver.Config{
		Levels:         val.Config{FastLevel: 0, SecureLevel: 101, DefaultLevel: 60},
		MaxSyncTimeout: -1,
		RevokeIPs:      []string{"127.0.0.1", "localhost", "10.0.0.0/8", "10.0.0.0/33"},
		MaxInflight:    -1,
	}.Validate()
	want := []string{"no store", "no KSM", "fast sync level 0", "secure sync level 101", "default sync timeout 0s",
		"maximum sync timeout -1ns", `"localhost"`, `"10.0.0.0/33"`, "MaxInflight -1"}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %s", err, w)
		}
	}
	if strings.Contains(err.Error(), `"10.0.0.0/8"`) {
		t.Errorf("Validate() = %v, want the network 10.0.0.0/8 accepted", err)
	}
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != len(want)-1 { // the revoke list is one problem
		t.Errorf("Validate() reported %d problems, want %d: %v", n, len(want), err)
	}
	if _, err := valserver.NewMux(valserver.Config{}); err == nil {
		t.Error("NewMux(Config{}) succeeded, want an error")
	}
}

// TestGuessMetrics: on MySQL/MariaDB, a key's second fresh OTP is stored on
// the state the server remembered, and ykval_key_state_guesses_total says
// so; an OTP after another server moved the row on counts as stale. On
// SQLite, which does not guess, both stay 0.
func TestGuessMetrics(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := start(t, b, valserver.Config{})
			check := func(step, wantCurrent, wantStale string) {
				t.Helper()
				for result, want := range map[string]string{"current": wantCurrent, "stale": wantStale} {
					if got := metricValue(t, e.reg, "ykval_key_state_guesses_total", map[string]string{"result": result}); got != want {
						t.Errorf("%s: ykval_key_state_guesses_total{result=%q} = %s, want %s", step, result, got, want)
					}
				}
			}
			ok := func(counter uint16, use uint8) {
				t.Helper()
				if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, counter, use), "nonce", nonce1)); r.Status() != val.StatusOK {
					t.Fatalf("verify %d/%d = %s, want OK", counter, use, r.Status())
				}
			}
			ok(10, 0) // enrols the key
			ok(10, 1) // reads the row, then UPDATE; now remembered
			ok(10, 2) // on MySQL: a guess that holds
			// The row moves on behind the verify path's back, as when
			// another server on the same database accepts an OTP
			// (AdvanceKey leaves the remembered state alone).
			if _, err := e.store.AdvanceKey(context.Background(), val.KeyState{PublicName: ciPublicID, Active: true, Modified: 1, Counter: 11, Use: 0, Nonce: "elsewhereelsewhere"}); err != nil {
				t.Fatal(err)
			}
			ok(12, 0) // on MySQL: a guess found stale, then read and accepted
			if b.Name == "sqlite" {
				check("sqlite", "0", "0")
				return
			}
			check("mysql", "1", "1")
		})
	}
}
