package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

const (
	secret = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
	ciOTP  = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"
)

// handler answers verify requests with the val codec: status for client 1's
// signed or unsigned requests, signed with the client's key.
func handler(status val.Status) http.HandlerFunc {
	return func(w http.ResponseWriter, hr *http.Request) {
		r, p := val.ParseRequest(hr.RequestURI, val.ParseQuery(hr.URL.RawQuery))
		if p != nil {
			w.Write(val.Response{Status: p.Status}.Format(nil))
			return
		}
		if r.ClientID != 1 {
			w.Write(val.Response{Status: val.StatusNoSuchClient}.Format(nil))
			return
		}
		key := val.DecodeKey(secret)
		if !r.SignatureOK(key) {
			w.Write(val.Response{Status: val.StatusBadSignature}.Format(key))
			return
		}
		d := val.Decrypted{Counter: 1, Low: 0x8d40, High: 0x0f}
		w.Write(val.Response{Status: status, Extras: r.Extras(status, 0, d)}.Format(key))
	}
}

func startServer(t *testing.T, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.URL + "/wsapi/2.0/verify"
}

// invoke runs ykclient with args and returns its exit status and output.
func invoke(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdout: &out, Stderr: &errb, Getenv: func(k string) string { return env[k] }})
	code = exitCode(&errb, err)
	return code, out.String(), errb.String()
}

func TestVerdicts(t *testing.T) {
	ok := startServer(t, handler(val.StatusOK))
	replayed := startServer(t, handler(val.StatusReplayedOTP))
	badOTP := startServer(t, handler(val.StatusBadOTP))
	backend := startServer(t, handler(val.StatusBackendError))
	garbage := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>\n")) }))
	downURL := "http://127.0.0.1:1/wsapi/2.0/verify" // nothing listens on port 1

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"ok", []string{"--url", ok, "--apikey", secret, "1", ciOTP}, 0, "Verification output (0): Success\n"},
		{"ok unsigned", []string{"--url", ok, "1", ciOTP}, 0, "Verification output (0): Success\n"},
		{"ok upper case", []string{"--url", ok, "--apikey", secret, "1", strings.ToUpper(ciOTP)}, 0, "Verification output (0): Success\n"},
		{"replayed", []string{"--url", replayed, "--apikey", secret, "1", ciOTP}, 2, "Verification output (2): The OTP was used before (REPLAYED_OTP)\n"},
		{"bad otp", []string{"--url", badOTP, "--apikey", secret, "1", ciOTP}, 3, "Verification output (1): The OTP is invalid (BAD_OTP)\n"},
		{"backend", []string{"--url", backend, "1", ciOTP}, 3, "Verification output (7): The server failed internally (BACKEND_ERROR)\n"},
		{"wrong key", []string{"--url", ok, "--apikey", "Zm9vYmFyYmF6", "1", ciOTP}, 3, "Verification output (107): The server's response signature is wrong (BAD_SERVER_SIGNATURE)\n"},
		// Unsigned, the client sees the server's refusal of a wrong id.
		{"unknown client", []string{"--url", ok, "2", ciOTP}, 3, "Verification output (5): The client id is unknown (NO_SUCH_CLIENT)\n"},
		// Signed, that early error is signed with the empty key: a bad server signature.
		{"unknown client signed", []string{"--url", ok, "--apikey", secret, "2", ciOTP}, 3, "Verification output (107): The server's response signature is wrong (BAD_SERVER_SIGNATURE)\n"},
		{"garbage", []string{"--url", garbage, "1", ciOTP}, 3, "Verification output (101): Could not parse the server's response\n"},
		{"down", []string{"--url", downURL, "1", ciOTP}, 3, "Verification output (109): Could not get an answer from any validation server\n"},
		{"down and ok", []string{"--url", downURL, "--url", ok, "1", ciOTP}, 0, "Verification output (0): Success\n"},
		{"bad otp format", []string{"--url", ok, "1", "idkf"}, 3, "Verification output (110): The OTP is not 32 to 48 modhex characters\n"},
		{"flags after args", []string{"1", ciOTP, "--url", ok}, 0, "Verification output (0): Success\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := invoke(t, nil, tt.args...)
			if code != tt.code || out != tt.out {
				t.Errorf("ykclient %q = exit %d, stdout %q (stderr %q); want %d, %q", tt.args, code, out, errOut, tt.code, tt.out)
			}
			if strings.Contains(out+errOut, secret) {
				t.Errorf("ykclient %q printed the API key", tt.args)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	ok := startServer(t, handler(val.StatusOK))
	tests := []struct {
		args []string
		want string
	}{
		{nil, "want CLIENT_ID and OTP"},
		{[]string{"1"}, "want CLIENT_ID and OTP"},
		{[]string{"1", ciOTP, "extra"}, "want CLIENT_ID and OTP"},
		{[]string{"0", ciOTP}, "client id"},
		{[]string{"abc", ciOTP}, "client id"},
		{[]string{"--url", "ftp://x/", "1", ciOTP}, "scheme"},
		{[]string{"--url", ok, "--apikey", "not base64!", "1", ciOTP}, "API key"},
		{[]string{"--url", ok, "--apikey-file", "/nonexistent/key", "1", ciOTP}, "API key file"},
		{[]string{"--url", ok, "--ca", "/nonexistent/ca.pem", "1", ciOTP}, "CA"},
		{[]string{"--url", ok, "--timeout", "0s", "1", ciOTP}, "timeout"},
		{[]string{"--url", ok, "--sl", "200", "1", ciOTP}, "sync level"},
		{[]string{"--bogus", "1", ciOTP}, "unknown flag"},
	}
	for _, tt := range tests {
		code, out, errOut := invoke(t, nil, tt.args...)
		if code != 1 || !strings.Contains(errOut, tt.want) || out != "" {
			t.Errorf("ykclient %q = exit %d, stdout %q, stderr %q; want 1 and an error about %q", tt.args, code, out, errOut, tt.want)
		}
	}
	if code, out, _ := invoke(t, nil, "--help"); code != 0 || !strings.Contains(out, "Usage: ykclient") || !strings.Contains(out, "--apikey-file") {
		t.Errorf("ykclient --help = exit %d, %q; want 0 and the usage", code, out)
	}
}

func TestAPIKeySources(t *testing.T) {
	ok := startServer(t, handler(val.StatusOK))
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := map[string]string{"YKCLIENT_APIKEY": "Zm9vYmFyYmF6"}
	right := map[string]string{"YKCLIENT_APIKEY": secret}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		code int
	}{
		{"file", nil, []string{"--apikey-file", keyFile}, 0},
		{"env", right, nil, 0},
		{"env wrong", wrong, nil, 3},
		{"flag beats env", wrong, []string{"--apikey", secret}, 0},
		{"file beats env", wrong, []string{"--apikey-file", keyFile}, 0},
	}
	for _, tt := range tests {
		code, out, errOut := invoke(t, tt.env, append(tt.args, "--url", ok, "1", ciOTP)...)
		if code != tt.code {
			t.Errorf("%s: exit %d (%q, %q), want %d", tt.name, code, out, errOut, tt.code)
		}
	}
}

func TestDebug(t *testing.T) {
	ok := startServer(t, handler(val.StatusOK))
	code, out, errOut := invoke(t, nil, "--debug", "--url", ok, "--apikey", secret, "1", ciOTP)
	if code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	for _, want := range []string{
		"Response from: " + ok + "\n",
		"Verification output (0): Success\n",
		"  otp: " + ciOTP + "\n",
		"  timestamp: 1019200\n",
		"  sessioncounter: 1\n",
		"  sessionuse: 0\n",
		"  sl: 0\n",
		"  status: OK\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("--debug stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{
		"validation URL 1: " + ok,
		"client id: 1",
		"api key: set",
		"otp=idkfefrdhtru…&timestamp=1", // the request, token hidden
		`body="h=`,                      // the raw response
		`status=OK\r\n\r\n"`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--debug stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, secret) || strings.Contains(out, secret) {
		t.Errorf("--debug printed the API key")
	}
	if strings.Contains(errOut, "otp="+ciOTP+"&") {
		t.Errorf("--debug printed the request with the full OTP:\n%s", errOut)
	}
}

func TestCA(t *testing.T) {
	s := httptest.NewTLSServer(handler(val.StatusOK))
	defer s.Close()
	u := s.URL + "/wsapi/2.0/verify"
	dir := t.TempDir()
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.pem")
	os.WriteFile(other, []byte("not a certificate\n"), 0o644)

	tests := []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"system roots reject the test CA", nil, 3, "Verification output (109)"},
		{"--ca file", []string{"--ca", caFile}, 0, "Verification output (0)"},
		{"--ca directory", []string{"--ca", dir}, 0, "Verification output (0)"},
		{"--cai file", []string{"--cai", caFile}, 0, "Verification output (0)"},
		{"no certificate", []string{"--ca", other}, 1, ""},
	}
	for _, tt := range tests {
		code, out, errOut := invoke(t, nil, append(tt.args, "--url", u, "--apikey", secret, "1", ciOTP)...)
		if code != tt.code || !strings.HasPrefix(out, tt.out) {
			t.Errorf("%s: exit %d, %q (%q); want %d, %q", tt.name, code, out, errOut, tt.code, tt.out)
		}
	}
}

func TestVerdictOf(t *testing.T) {
	for status, want := range statusVerdicts {
		err := error(&valclient.StatusError{Status: status, URL: "u"})
		if got := verdictOf(err); got != want {
			t.Errorf("verdictOf(%s) = %v, want %v", status, got, want)
		}
		if !strings.Contains(want.text, string(status)) {
			t.Errorf("verdict text %q does not name %s", want.text, status)
		}
	}
	tests := []struct {
		err  error
		want verdict
	}{
		{nil, verdictOK},
		{valclient.ErrInvalidOTP, verdictBadInput},
		{errors.Join(valclient.ErrNoVerdict, valclient.ErrBadServerSignature), verdictServerSig},
		{errors.Join(valclient.ErrNoVerdict, val.ErrMalformedResponse), verdictParse},
		{errors.Join(valclient.ErrNoVerdict, valclient.ErrEchoMismatch), verdictParse},
		{errors.Join(valclient.ErrNoVerdict, context.DeadlineExceeded), verdictNoServer},
	}
	for _, tt := range tests {
		if got := verdictOf(tt.err); got != tt.want {
			t.Errorf("verdictOf(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
