package yubipam

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

// fakeTx is a Transaction that answers from fields and records what the
// module did.
type fakeTx struct {
	user       string
	userErr    error
	authtok    *string
	authtokErr error
	setErr     error
	answer     *string
	convErr    error

	prompts []string
	styles  []Style
	setTok  []string
}

func (f *fakeTx) User() (string, error) { return f.user, f.userErr }

func (f *fakeTx) Authtok() (string, bool, error) {
	if f.authtokErr != nil {
		return "", false, f.authtokErr
	}
	if f.authtok == nil {
		return "", false, nil
	}
	return *f.authtok, true, nil
}

func (f *fakeTx) SetAuthtok(tok string) error {
	if f.setErr != nil {
		return f.setErr
	}
	f.setTok = append(f.setTok, tok)
	f.authtok = &tok
	return nil
}

func (f *fakeTx) Prompt(style Style, msg string) (string, bool, error) {
	f.prompts = append(f.prompts, msg)
	f.styles = append(f.styles, style)
	if f.convErr != nil {
		return "", false, f.convErr
	}
	if f.answer == nil {
		return "", false, nil
	}
	return *f.answer, true, nil
}

// fakeVerifier answers every OTP with err and records the OTPs.
type fakeVerifier struct {
	err  error
	otps []string
	opts ServerOptions
}

func (v *fakeVerifier) Verify(_ context.Context, otp string) error {
	v.otps = append(v.otps, otp)
	return v.err
}

func ptr(s string) *string { return &s }

const (
	bobID  = "ccccccbchvth"
	bobOTP = bobID + "dteffujedcflbtfthbdfdtghhjcbchrl" // 12 + 32
)

func statusErr(s val.Status) error { return &valclient.StatusError{Status: s, URL: "http://val"} }

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const authfileContent = "# comment line\nalice:vvincredible\n#bob:vvvvvvvvvvvv\nbob:" + bobID + ":cccccccfhcbe\ncarol:\nshort:cccccc\n"

func TestAuthenticate(t *testing.T) {
	authfile := writeFile(t, "authfile", authfileContent)
	keyFile := writeFile(t, "key", "c2VjcmV0c2VjcmV0c2VjcmV0\n")
	base := []string{"id=1", "authfile=" + authfile, "urllist=http://127.0.0.1:1/wsapi/2.0/verify"}
	eleven := "urllist=" + strings.Repeat("http://h/wsapi/2.0/verify;", 11)

	tests := []struct {
		name      string
		args      []string
		tx        fakeTx
		verifyErr error
		newErr    error // from NewVerifier
		want      Code
		prompted  bool     // a prompt was shown
		verified  []string // OTPs sent to the verifier
		setTok    []string // PAM_AUTHTOK values set
	}{
		{name: "good OTP", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: Success, prompted: true, verified: []string{bobOTP}},
		{name: "token_id_length above 16", args: []string{"token_id_length=17"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "token_id_length negative", args: []string{"token_id_length=-1"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "pam_get_user fails", tx: fakeTx{userErr: ConvErr}, want: ConvErr},
		{name: "pam_get_user fails with a plain error", tx: fakeTx{userErr: errors.New("x")}, want: SystemErr},
		{name: "challenge-response", args: []string{"mode=challenge-response"}, tx: fakeTx{user: "bob"}, want: AuthinfoUnavail},
		{name: "mysql", args: []string{"mysql_server=db"}, tx: fakeTx{user: "bob"}, want: AuthinfoUnavail},
		{name: "use_first_pass without authtok", args: []string{"use_first_pass"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthErr},
		{name: "use_first_pass with OTP", args: []string{"use_first_pass"}, tx: fakeTx{user: "bob", authtok: ptr(bobOTP)}, want: Success, verified: []string{bobOTP}},
		{name: "use_first_pass with password+OTP", args: []string{"use_first_pass"}, tx: fakeTx{user: "bob", authtok: ptr("pw" + bobOTP)},
			want: Success, verified: []string{bobOTP}, setTok: []string{"pw"}},
		{name: "get authtok fails", args: []string{"try_first_pass"}, tx: fakeTx{user: "bob", authtokErr: BufErr}, want: BufErr},
		{name: "try_first_pass without authtok prompts", args: []string{"try_first_pass"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)},
			want: Success, prompted: true, verified: []string{bobOTP}},
		{name: "try_first_pass with a wrong authtok does not prompt", args: []string{"try_first_pass"}, tx: fakeTx{user: "bob", authtok: ptr("secret"), answer: ptr(bobOTP)},
			want: AuthErr},
		{name: "try_first_pass with an empty authtok", args: []string{"try_first_pass"}, tx: fakeTx{user: "bob", authtok: ptr(""), answer: ptr(bobOTP)}, want: AuthErr},
		{name: "11 URLs", args: []string{eleven}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "bad url template", args: []string{"urllist=", "url=http://h/v?otp=%s"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "url template", args: []string{"urllist=", "url=http://h/v?id=%d&otp=%s"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)},
			want: Success, prompted: true, verified: []string{bobOTP}},
		{name: "key_file missing", args: []string{"key_file=/nonexistent/key"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "key_file", args: []string{"key_file=" + keyFile}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: Success, prompted: true, verified: []string{bobOTP}},
		{name: "user without tokens", tx: fakeTx{user: "dave", answer: ptr(bobOTP)}, want: UserUnknown},
		{name: "user without tokens, nullok", args: []string{"nullok"}, tx: fakeTx{user: "dave", answer: ptr(bobOTP)}, want: Ignore},
		{name: "authfile missing", args: []string{"authfile=/nonexistent"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "authfile is a directory", args: []string{"authfile=/"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: AuthinfoUnavail},
		{name: "always_prompt, user without tokens", args: []string{"always_prompt"}, tx: fakeTx{user: "dave", answer: ptr(bobOTP)}, want: UserUnknown, prompted: true},
		{name: "always_prompt, nullok", args: []string{"always_prompt", "nullok"}, tx: fakeTx{user: "dave", answer: ptr(bobOTP)}, want: Ignore, prompted: true},
		{name: "always_prompt, good OTP", args: []string{"always_prompt"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: Success, prompted: true, verified: []string{bobOTP}},
		{name: "conversation error", tx: fakeTx{user: "bob", convErr: ConvErr}, want: ConvErr, prompted: true},
		{name: "NULL answer", tx: fakeTx{user: "bob"}, want: AuthErr, prompted: true},
		{name: "empty answer", tx: fakeTx{user: "bob", answer: ptr("")}, want: AuthErr, prompted: true},
		{name: "id not listed: no server asked", tx: fakeTx{user: "bob", answer: ptr("vvvvvvvvvvvv" + bobOTP[12:])}, want: AuthErr, prompted: true},
		{name: "password alone: not listed", tx: fakeTx{user: "bob", answer: ptr("hunter2")}, want: AuthErr, prompted: true},
		{name: "user line without ids", tx: fakeTx{user: "carol", answer: ptr(bobOTP)}, want: AuthErr, prompted: true},
		{name: "id alone is sent", tx: fakeTx{user: "bob", answer: ptr(bobID)}, verifyErr: valclient.ErrInvalidOTP, want: AuthErr, prompted: true, verified: []string{bobID}},
		{name: "BAD_OTP", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: statusErr(val.StatusBadOTP), want: AuthErr, prompted: true, verified: []string{bobOTP}},
		{name: "REPLAYED_OTP", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: statusErr(val.StatusReplayedOTP), want: AuthErr, prompted: true, verified: []string{bobOTP}},
		{name: "BAD_SIGNATURE", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: statusErr(val.StatusBadSignature), want: AuthinfoUnavail, prompted: true, verified: []string{bobOTP}},
		{name: "NO_SUCH_CLIENT", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: statusErr(val.StatusNoSuchClient), want: AuthinfoUnavail, prompted: true, verified: []string{bobOTP}},
		{name: "no server", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: fmt.Errorf("%w: down", ErrNoServer), want: AuthinfoUnavail, prompted: true, verified: []string{bobOTP}},
		{name: "bad server signature", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: valclient.ErrBadServerSignature, want: AuthinfoUnavail, prompted: true, verified: []string{bobOTP}},
		{name: "client cannot be built", tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, newErr: errors.New("bad id"), want: AuthinfoUnavail, prompted: true},
		{name: "password and OTP", tx: fakeTx{user: "bob", answer: ptr("hunter2" + bobOTP)}, want: Success, prompted: true,
			verified: []string{bobOTP}, setTok: []string{"hunter2"}},
		{name: "password and unlisted OTP still hands on the password", tx: fakeTx{user: "bob", answer: ptr("hunter2" + "vvvvvvvvvvvv" + bobOTP[12:])},
			want: AuthErr, prompted: true, setTok: []string{"hunter2"}},
		{name: "45 characters: one is the password", tx: fakeTx{user: "bob", answer: ptr("x" + bobOTP)}, want: Success, prompted: true,
			verified: []string{bobOTP}, setTok: []string{"x"}},
		{name: "set authtok fails", tx: fakeTx{user: "bob", answer: ptr("hunter2" + bobOTP), setErr: BufErr}, want: BufErr, prompted: true},
		{name: "token_id_length=6", args: []string{"token_id_length=6"}, tx: fakeTx{user: "short", answer: ptr("pw" + "cccccc" + bobOTP[12:])},
			want: Success, prompted: true, verified: []string{"cccccc" + bobOTP[12:]}, setTok: []string{"pw"}},
		{name: "alwaysok with BAD_OTP", args: []string{"alwaysok"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, verifyErr: statusErr(val.StatusBadOTP),
			want: Success, prompted: true, verified: []string{bobOTP}},
		{name: "alwaysok with user unknown", args: []string{"alwaysok"}, tx: fakeTx{user: "dave"}, want: Success},
		{name: "alwaysok with token_id_length 17", args: []string{"alwaysok", "token_id_length=17"}, tx: fakeTx{user: "dave"}, want: Success},
		{name: "unknown argument is not fatal", args: []string{"frobnicate=1"}, tx: fakeTx{user: "bob", answer: ptr(bobOTP)}, want: Success, prompted: true, verified: []string{bobOTP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &fakeVerifier{err: tt.verifyErr}
			env := Env{
				Log: slog.New(slog.NewTextHandler(tWriter{t}, nil)),
				NewVerifier: func(o ServerOptions) (Verifier, error) {
					v.opts = o
					if tt.newErr != nil {
						return nil, tt.newErr
					}
					return v, nil
				},
			}
			tx := tt.tx
			got := Authenticate(context.Background(), &tx, append(slices.Clone(base), tt.args...), env)
			if got != tt.want {
				t.Errorf("Authenticate = %v, want %v", got, tt.want)
			}
			if tt.prompted != (len(tx.prompts) > 0) {
				t.Errorf("prompts = %q, want prompted %v", tx.prompts, tt.prompted)
			}
			if len(tx.prompts) > 1 {
				t.Errorf("prompts = %q, want at most one", tx.prompts)
			}
			if !slices.Equal(v.otps, tt.verified) {
				t.Errorf("OTPs sent = %q, want %q", v.otps, tt.verified)
			}
			if !slices.Equal(tx.setTok, tt.setTok) {
				t.Errorf("PAM_AUTHTOK set to %q, want %q", tx.setTok, tt.setTok)
			}
		})
	}
}

func TestPrompt(t *testing.T) {
	authfile := writeFile(t, "authfile", authfileContent)
	for _, tt := range []struct {
		args  []string
		style Style
	}{{nil, PromptEchoOff}, {[]string{"verbose_otp"}, PromptEchoOn}} {
		tx := &fakeTx{user: "bob", answer: ptr(bobOTP)}
		env := Env{NewVerifier: func(ServerOptions) (Verifier, error) { return &fakeVerifier{}, nil }}
		Authenticate(context.Background(), tx, append([]string{"id=1", "authfile=" + authfile}, tt.args...), env)
		if len(tx.prompts) != 1 || tx.prompts[0] != "YubiKey for `bob': " || tx.styles[0] != tt.style {
			t.Errorf("Authenticate(%q) prompted %q with styles %v, want [\"YubiKey for `bob': \"] with %v", tt.args, tx.prompts, tx.styles, tt.style)
		}
	}
}

func TestServerOptionsFromArgs(t *testing.T) {
	authfile := writeFile(t, "authfile", authfileContent)
	keyFile := writeFile(t, "key", "  a2V5ZmlsZQ==  \nignored\n")
	var got ServerOptions
	env := Env{NewVerifier: func(o ServerOptions) (Verifier, error) { got = o; return &fakeVerifier{}, nil }}
	args := []string{"id=42", "key=aW5saW5l", "key_file=" + keyFile, "authfile=" + authfile, "capath=/etc/ssl/certs",
		"cainfo=/ca.pem", "proxy=socks5h://p:1", "timeout=3", "urllist=http://a/v;http://b/v"}
	if code := Authenticate(context.Background(), &fakeTx{user: "bob", answer: ptr(bobOTP)}, args, env); code != Success {
		t.Fatalf("Authenticate = %v, want PAM_SUCCESS", code)
	}
	if got.ClientID != 42 || got.Key != "a2V5ZmlsZQ==" || got.CAPath != "/etc/ssl/certs" || got.CAInfo != "/ca.pem" ||
		got.Proxy != "socks5h://p:1" || got.Timeout.Seconds() != 3 || !slices.Equal(got.URLs, []string{"http://a/v", "http://b/v"}) {
		t.Errorf("verifier options = %+v", got)
	}
}

func TestDebugOutput(t *testing.T) {
	authfile := writeFile(t, "authfile", authfileContent)
	dir := t.TempDir()
	debugFile := filepath.Join(dir, "debug.log")
	if err := os.WriteFile(debugFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(debugFile, link); err != nil {
		t.Fatal(err)
	}
	const key, bindPW, password = "c2VjcmV0S0VZ", "bindSECRET", "hunter2"
	run := func(extra ...string) (stdout, stderr, syslog string) {
		var o, e, l bytes.Buffer
		env := Env{
			Log: slog.New(slog.NewTextHandler(&l, nil)), Stdout: &o, Stderr: &e,
			NewVerifier: func(ServerOptions) (Verifier, error) { return &fakeVerifier{}, nil },
		}
		args := append([]string{"id=1", "key=" + key, "ldap_bind_password=" + bindPW, "authfile=" + authfile, "debug"}, extra...)
		if code := Authenticate(context.Background(), &fakeTx{user: "bob", answer: ptr(password + bobOTP)}, args, env); code != Success {
			t.Fatalf("Authenticate(%q) = %v, want PAM_SUCCESS", args, code)
		}
		return o.String(), e.String(), l.String()
	}
	noSecrets := func(where, s string) {
		t.Helper()
		for _, secret := range []string{key, bindPW, password, bobOTP, bobOTP[12:]} {
			if strings.Contains(s, secret) {
				t.Errorf("%s contains the secret %q:\n%s", where, secret, s)
			}
		}
	}

	out, _, _ := run()
	if !strings.Contains(out, "token listed") {
		t.Errorf("debug to stdout = %q, want debug lines", out)
	}
	noSecrets("stdout", out)

	_, errOut, _ := run("debug_file=stderr")
	if !strings.Contains(errOut, "token listed") {
		t.Errorf("debug to stderr = %q, want debug lines", errOut)
	}
	noSecrets("stderr", errOut)

	run("debug_file=" + debugFile)
	b, _ := os.ReadFile(debugFile)
	if !strings.Contains(string(b), "token listed") {
		t.Errorf("debug file = %q, want debug lines", b)
	}
	noSecrets("debug file", string(b))

	out, _, sys := run("debug_file=" + link) // symbolic link: refused
	if after, _ := os.ReadFile(debugFile); len(after) != len(b) || out != "" || !strings.Contains(sys, "debug_file cannot be used") {
		t.Errorf("debug_file=<symlink>: file grew from %d to %d bytes, stdout %q, syslog %q; want it refused", len(b), len(after), out, sys)
	}
	noSecrets("syslog", sys)
	if _, err := os.Stat(filepath.Join(dir, "new.log")); err == nil {
		t.Fatal("new.log exists before the test")
	}
	run("debug_file=" + filepath.Join(dir, "new.log")) // absent: never created
	if _, err := os.Stat(filepath.Join(dir, "new.log")); err == nil {
		t.Errorf("debug_file=<absent file> created it")
	}
}

// TestNoFDLeak runs many authentications on every path that opens a file
// and checks that the process holds no more descriptors afterwards
// (CVE-2018-9275 leaked the authfile on success).
func TestNoFDLeak(t *testing.T) {
	authfile := writeFile(t, "authfile", authfileContent)
	debugFile := writeFile(t, "debug", "")
	keyFile := writeFile(t, "key", "c2VjcmV0\n")
	env := Env{NewVerifier: func(ServerOptions) (Verifier, error) { return &fakeVerifier{}, nil }}
	args := []string{"id=1", "authfile=" + authfile, "debug", "debug_file=" + debugFile, "key_file=" + keyFile}
	before := countFDs(t)
	for range 200 {
		for _, answer := range []string{bobOTP, "vvvvvvvvvvvv" + bobOTP[12:]} {
			Authenticate(context.Background(), &fakeTx{user: "bob", answer: ptr(answer)}, args, env)
		}
		Authenticate(context.Background(), &fakeTx{user: "dave"}, args, env)
	}
	if after := countFDs(t); after > before {
		t.Errorf("open descriptors: %d before, %d after 600 authentications", before, after)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func TestSplit(t *testing.T) {
	c48 := strings.Repeat("c", 48)
	tests := []struct {
		in    string
		idLen int
		otp   string
		pw    string
		hasPW bool
	}{
		{bobOTP, 12, bobOTP, "", false},
		{"pw" + bobOTP, 12, bobOTP, "pw", true},
		{"", 12, "", "", false},
		{"abc", 12, "abc", "", false},
		{"p" + c48, 16, c48, "p", true},
		{c48, 16, c48, "", false},
		{"pw" + bobOTP[6:], 6, bobOTP[6:], "pw", true},
		{"a:b" + bobOTP, 12, bobOTP, "a:b", true},
	}
	for _, tt := range tests {
		otp, pw, hasPW := split(tt.in, tt.idLen)
		if otp != tt.otp || pw != tt.pw || hasPW != tt.hasPW {
			t.Errorf("split(%q, %d) = %q, %q, %v; want %q, %q, %v", tt.in, tt.idLen, otp, pw, hasPW, tt.otp, tt.pw, tt.hasPW)
		}
	}
}

func FuzzSplit(f *testing.F) {
	f.Add("pw"+bobOTP, 12)
	f.Add("", 0)
	f.Add(bobOTP, 16)
	f.Fuzz(func(t *testing.T, in string, idLen int) {
		if idLen < 0 || idLen > MaxTokenIDLength {
			return
		}
		otp, pw, hasPW := split(in, idLen)
		if len(otp) > 48 {
			t.Fatalf("split(%q, %d) OTP %q longer than 48", in, idLen, otp)
		}
		if hasPW && pw+otp != in {
			t.Fatalf("split(%q, %d) = %q + %q, want the input back", in, idLen, pw, otp)
		}
		if !hasPW && (pw != "" || !strings.HasPrefix(in, otp)) {
			t.Fatalf("split(%q, %d) = %q, %q without password", in, idLen, otp, pw)
		}
	})
}

// tWriter sends log output to the test log.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
