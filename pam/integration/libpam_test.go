package integration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msteinert/pam/v2"

	"github.com/ykstack/ykstack/pam/internal/pamtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pamtest.Cleanup()
	os.Exit(code)
}

// answerer is a conversation that records prompts and answers with one
// string.
type answerer struct {
	mu      sync.Mutex
	answer  string
	fail    bool
	prompts []string
	styles  []pam.Style
}

func (a *answerer) RespondPAM(s pam.Style, msg string) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prompts = append(a.prompts, msg)
	a.styles = append(a.styles, s)
	if a.fail {
		return "", errors.New("no answer")
	}
	return a.answer, nil
}

// stack is a PAM service under test.
type stack struct {
	dir     string
	service string
}

func newStack(t *testing.T, lines ...string) stack {
	t.Helper()
	return stack{dir: newStackB(t, lines...), service: "ykpam"}
}

// newStackB writes the service "ykpam" and returns its directory.
func newStackB(t testing.TB, lines ...string) string {
	t.Helper()
	pamtest.Need(t, pam.CheckPamHasStartConfdir(), "libpam has no pam_start_confdir (Linux-PAM < 1.4)")
	return pamtest.ServiceDir(t, "ykpam", lines...)
}

// login runs authenticate (and acct_mgmt when it succeeded) for user,
// answering conv.
func (s stack) login(t *testing.T, user string, conv *answerer) (authErr, acctErr error) {
	t.Helper()
	tx, err := pam.StartConfDir(s.service, user, conv, s.dir)
	if err != nil {
		t.Fatalf("StartConfDir: %v", err)
	}
	defer tx.End()
	authErr = tx.Authenticate(0)
	acctErr = tx.AcctMgmt(0)
	return authErr, acctErr
}

// setup is a module built, a validation server and one enrolled token.
type setup struct {
	paths pamtest.Paths
	val   *pamtest.VAL
	tok   *pamtest.Token
	auth  string // authfile path
	key   string // key_file path
}

func newSetup(t testing.TB) setup {
	t.Helper()
	s := setup{paths: pamtest.Build(t), val: pamtest.StartVAL(t)}
	s.tok = s.val.NewToken(t)
	dir := t.TempDir()
	s.auth = filepath.Join(dir, "authorized_yubikeys")
	content := "# test mapping\nalice:" + s.tok.PublicID + "\nbob:ccccccccccvv:" + s.tok.PublicID + "\ncarol:ccccccccccvv\n"
	if err := os.WriteFile(s.auth, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	s.key = filepath.Join(dir, "api.key")
	if err := os.WriteFile(s.key, []byte(s.val.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// line returns an auth line of the module with the usual arguments and extra.
func (s setup) line(control string, extra ...string) string {
	args := []string{"id=1", "key_file=" + s.key, "authfile=" + s.auth, "urllist=" + s.val.URL, "helper=" + s.paths.Helper, "timeout=3"}
	return "auth " + control + " " + s.paths.Module + " " + strings.Join(append(args, extra...), " ")
}

func (s setup) account() string { return "account required " + s.paths.Module }

func TestLibPAM(t *testing.T) {
	s := newSetup(t)
	plain := newStack(t, s.line("required"), s.account())

	t.Run("good OTP", func(t *testing.T) {
		conv := &answerer{answer: s.tok.Next()}
		auth, acct := plain.login(t, "alice", conv)
		if auth != nil || acct != nil {
			t.Fatalf("login = %v, %v; want success", auth, acct)
		}
		if len(conv.prompts) != 1 || conv.prompts[0] != "YubiKey for `alice': " || conv.styles[0] != pam.PromptEchoOff {
			t.Errorf("prompts = %q %v, want one echo-off \"YubiKey for `alice': \"", conv.prompts, conv.styles)
		}
	})
	t.Run("replayed OTP", func(t *testing.T) {
		o := s.tok.Next()
		if auth, _ := plain.login(t, "alice", &answerer{answer: o}); auth != nil {
			t.Fatalf("first login = %v, want success", auth)
		}
		auth, acct := plain.login(t, "alice", &answerer{answer: o})
		if !errors.Is(auth, pam.ErrAuth) || !errors.Is(acct, pam.ErrAuth) {
			t.Errorf("replay = %v, %v; want ErrAuth twice", auth, acct)
		}
	})
	t.Run("wrong AES key", func(t *testing.T) {
		if auth, _ := plain.login(t, "alice", &answerer{answer: s.tok.ForeignOTP()}); !errors.Is(auth, pam.ErrAuth) {
			t.Errorf("login = %v, want ErrAuth", auth)
		}
	})
	t.Run("unlisted id: no request", func(t *testing.T) {
		before := s.val.Requests()
		other := s.val.NewToken(t)
		if auth, _ := plain.login(t, "alice", &answerer{answer: other.Next()}); !errors.Is(auth, pam.ErrAuth) {
			t.Errorf("login = %v, want ErrAuth", auth)
		}
		if n := s.val.Requests() - before; n != 0 {
			t.Errorf("server got %d requests for an unlisted id, want 0", n)
		}
	})
	t.Run("second id of a user", func(t *testing.T) {
		if auth, acct := plain.login(t, "bob", &answerer{answer: s.tok.Next()}); auth != nil || acct != nil {
			t.Errorf("login = %v, %v; want success", auth, acct)
		}
	})
	t.Run("user not in authfile: no prompt", func(t *testing.T) {
		conv := &answerer{answer: s.tok.Next()}
		if auth, _ := plain.login(t, "dave", conv); !errors.Is(auth, pam.ErrUserUnknown) || len(conv.prompts) != 0 {
			t.Errorf("login = %v with prompts %q, want ErrUserUnknown and no prompt", auth, conv.prompts)
		}
	})
	t.Run("empty answer", func(t *testing.T) {
		if auth, _ := plain.login(t, "alice", &answerer{answer: ""}); !errors.Is(auth, pam.ErrAuth) {
			t.Errorf("login = %v, want ErrAuth", auth)
		}
	})
	t.Run("conversation error", func(t *testing.T) {
		if auth, _ := plain.login(t, "alice", &answerer{fail: true}); !errors.Is(auth, pam.ErrConv) {
			t.Errorf("login = %v, want ErrConv", auth)
		}
	})
	t.Run("setcred, sessions, chauthtok", func(t *testing.T) {
		st := newStack(t, s.line("required"), s.account(), "session required "+s.paths.Module, "password required "+s.paths.Module)
		tx, err := pam.StartConfDir(st.service, "alice", &answerer{answer: s.tok.Next()}, st.dir)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.End()
		if err := tx.Authenticate(0); err != nil {
			t.Fatalf("Authenticate = %v", err)
		}
		for name, err := range map[string]error{"setcred": tx.SetCred(pam.EstablishCred), "open_session": tx.OpenSession(0), "close_session": tx.CloseSession(0)} {
			if err != nil {
				t.Errorf("%s = %v, want success", name, err)
			}
		}
		if err := tx.ChangeAuthTok(0); !errors.Is(err, pam.ErrService) {
			t.Errorf("chauthtok = %v, want ErrService", err)
		}
	})
}

func TestLibPAMStacks(t *testing.T) {
	s := newSetup(t)
	script := filepath.Join(t.TempDir(), "check-password")
	// pam_exec expose_authtok writes PAM_AUTHTOK (NUL-terminated) on stdin.
	if err := os.WriteFile(script, []byte("#!/bin/sh\npw=$(tr -d '\\000')\n[ \"$pw\" = hunter2 ]\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(script), 0o755)
	password := "auth required pam_exec.so quiet expose_authtok " + script

	t.Run("password and OTP in one answer", func(t *testing.T) {
		st := newStack(t, s.line("required"), password, s.account())
		if auth, acct := st.login(t, "alice", &answerer{answer: "hunter2" + s.tok.Next()}); auth != nil || acct != nil {
			t.Errorf("login = %v, %v; want success", auth, acct)
		}
		// pam_exec answers a failing program with PAM_SYSTEM_ERR.
		if auth, _ := st.login(t, "alice", &answerer{answer: "wrong" + s.tok.Next()}); auth == nil {
			t.Errorf("login with a wrong password succeeded")
		}
	})
	t.Run("nullok lets users without tokens through to the next module", func(t *testing.T) {
		st := newStack(t, s.line("required", "nullok"), "auth required pam_permit.so", "account required pam_permit.so")
		conv := &answerer{}
		if auth, _ := st.login(t, "dave", conv); auth != nil || len(conv.prompts) != 0 {
			t.Errorf("login = %v with prompts %q, want success without prompt", auth, conv.prompts)
		}
		if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.ForeignOTP()}); !errors.Is(auth, pam.ErrAuth) {
			t.Errorf("login of a user with tokens and a bad OTP = %v, want ErrAuth", auth)
		}
	})
	t.Run("sufficient", func(t *testing.T) {
		st := newStack(t, s.line("sufficient"), "auth required pam_deny.so", s.account())
		if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()}); auth != nil {
			t.Errorf("login = %v, want success", auth)
		}
		if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.ForeignOTP()}); auth == nil {
			t.Errorf("login with a bad OTP succeeded")
		}
	})
	t.Run("use_first_pass takes PAM_AUTHTOK from an earlier module", func(t *testing.T) {
		conv := &answerer{answer: "unused"}
		st := newStack(t, "auth optional "+s.paths.SetTok+" "+s.tok.Next(), s.line("required", "use_first_pass"), s.account())
		if auth, acct := st.login(t, "alice", conv); auth != nil || acct != nil || len(conv.prompts) != 0 {
			t.Errorf("login = %v, %v with prompts %q; want success without prompt", auth, acct, conv.prompts)
		}
		st = newStack(t, "auth optional "+s.paths.SetTok, s.line("required", "use_first_pass"), s.account())
		if auth, _ := st.login(t, "alice", conv); !errors.Is(auth, pam.ErrAuth) || len(conv.prompts) != 0 {
			t.Errorf("login without PAM_AUTHTOK = %v with prompts %q, want ErrAuth without prompt", auth, conv.prompts)
		}
	})
	t.Run("try_first_pass with a password+OTP from an earlier module", func(t *testing.T) {
		conv := &answerer{answer: "unused"}
		st := newStack(t, "auth optional "+s.paths.SetTok+" hunter2"+s.tok.Next(), s.line("required", "try_first_pass"), password, s.account())
		if auth, _ := st.login(t, "alice", conv); auth != nil || len(conv.prompts) != 0 {
			t.Errorf("login = %v with prompts %q; want success without prompt", auth, conv.prompts)
		}
	})
}

func TestLibPAMServers(t *testing.T) {
	s := newSetup(t)
	tests := []struct {
		name string
		args []string
		want error // nil: success
	}{
		{"dead server, then the live one", []string{"urllist=" + pamtest.DeadURL(t) + ";" + s.val.URL}, nil},
		{"old url template", []string{"urllist=", "url=" + s.val.URL + "?id=%d&otp=%s"}, nil},
		{"server down", []string{"urllist=" + pamtest.DeadURL(t)}, pam.ErrAuthinfoUnavail},
		{"server never answers", []string{"urllist=" + pamtest.BlackHole(t), "timeout=1"}, pam.ErrAuthinfoUnavail},
		{"wrong API key", []string{"key_file=", "key=Zm9vYmFyYmF6cXV4cXV1eGZvb2Jhcg=="}, pam.ErrAuthinfoUnavail},
		{"no such client", []string{"id=99"}, pam.ErrAuthinfoUnavail},
		{"unknown argument", []string{"frobnicate=1"}, nil},
		{"helper missing", []string{"helper=/nonexistent/helper"}, pam.ErrAuthinfoUnavail},
		{"alwaysok", []string{"urllist=" + pamtest.DeadURL(t), "alwaysok"}, nil},
		{"token_id_length 17", []string{"token_id_length=17"}, pam.ErrAuthinfoUnavail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStack(t, s.line("required", tt.args...))
			start := time.Now()
			auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()})
			if tt.want == nil && auth != nil || tt.want != nil && !errors.Is(auth, tt.want) {
				t.Errorf("login = %v, want %v", auth, tt.want)
			}
			t.Logf("took %v", time.Since(start))
		})
	}
}

func TestLibPAMUnsafeHelper(t *testing.T) {
	s := newSetup(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	unsafe := filepath.Join(dir, "helper")
	b, err := os.ReadFile(s.paths.Helper)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unsafe, b, 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(unsafe, 0o777) // world-writable: refused
	st := newStack(t, s.line("required", "helper="+unsafe))
	if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()}); !errors.Is(auth, pam.ErrAuthinfoUnavail) {
		t.Errorf("login with a world-writable helper = %v, want ErrAuthinfoUnavail", auth)
	}
	os.Chmod(unsafe, 0o755)
	if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()}); auth != nil {
		t.Errorf("login with the helper made safe = %v, want success", auth)
	}
	os.Chmod(dir, 0o777) // a directory anyone may write to (not sticky): refused
	if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()}); !errors.Is(auth, pam.ErrAuthinfoUnavail) {
		t.Errorf("login with a helper in a world-writable directory = %v, want ErrAuthinfoUnavail", auth)
	}
	os.Chmod(dir, 0o777|os.ModeSticky) // like /tmp: others cannot replace the file
	if auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()}); auth != nil {
		t.Errorf("login with a helper in a sticky directory = %v, want success", auth)
	}
}

func TestLibPAMDebugFile(t *testing.T) {
	s := newSetup(t)
	debug := filepath.Join(t.TempDir(), "debug.log")
	if err := os.WriteFile(debug, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st := newStack(t, s.line("required", "debug", "debug_file="+debug, "key_file=", "key="+s.val.Secret), "auth required pam_permit.so")
	o := s.tok.Next()
	if auth, _ := st.login(t, "alice", &answerer{answer: "hunter2" + o}); auth != nil {
		t.Fatalf("login = %v, want success", auth)
	}
	b, _ := os.ReadFile(debug)
	log := string(b)
	if !strings.Contains(log, "token listed") || !strings.Contains(log, "status=OK") {
		t.Errorf("debug file misses the expected lines:\n%s", log)
	}
	for _, secret := range []string{s.val.Secret, "hunter2", o[12:]} {
		if strings.Contains(log, secret) {
			t.Errorf("debug file contains the secret %q:\n%s", secret, log)
		}
	}
}

func TestLibPAMUserFile(t *testing.T) {
	s := newSetup(t)
	home, err := os.MkdirTemp("", "ykpam-home")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chmod(home, 0o755)
	const user = "ykpamtest1"
	pamtest.User(t, user, home)
	st := newStack(t, "auth required "+s.paths.Module+" id=1 key_file="+s.key+" urllist="+s.val.URL+" helper="+s.paths.Helper)
	if auth, _ := st.login(t, user, &answerer{answer: s.tok.Next()}); !errors.Is(auth, pam.ErrUserUnknown) {
		t.Errorf("login without ~/.yubico/authorized_yubikeys = %v, want ErrUserUnknown", auth)
	}
	os.Mkdir(filepath.Join(home, ".yubico"), 0o700)
	file := filepath.Join(home, ".yubico", "authorized_yubikeys")
	if err := os.WriteFile(file, []byte(user+":"+s.tok.PublicID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Root-owned 0600 file in the user's home: the user could not read it,
	// so neither does the module.
	if auth, _ := st.login(t, user, &answerer{answer: s.tok.Next()}); !errors.Is(auth, pam.ErrAuthinfoUnavail) {
		t.Errorf("login with an unreadable file = %v, want ErrAuthinfoUnavail", auth)
	}
	out, err := runCmd("chown", "-R", user, filepath.Join(home, ".yubico"))
	if err != nil {
		t.Fatalf("chown: %v %s", err, out)
	}
	if auth, _ := st.login(t, user, &answerer{answer: s.tok.Next()}); auth != nil {
		t.Errorf("login with the user's file = %v, want success", auth)
	}
}

// TestLibPAMConcurrent runs 50 logins at once in one process, each with its
// own YubiKey (one key's OTPs are typed one after another).
func TestLibPAMConcurrent(t *testing.T) {
	s := newSetup(t)
	toks := make([]*pamtest.Token, 50)
	line := "alice"
	for i := range toks {
		toks[i] = s.val.NewToken(t)
		line += ":" + toks[i].PublicID
	}
	if err := os.WriteFile(s.auth, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := newStack(t, s.line("required", "timeout=15"), s.account()) // a loaded CI machine runs 50 helpers at once
	var wg sync.WaitGroup
	errs := make(chan error, len(toks))
	for i, tok := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx, err := pam.StartConfDir(st.service, "alice", &answerer{answer: tok.Next()}, st.dir)
			if err != nil {
				errs <- err
				return
			}
			defer tx.End()
			if err := tx.Authenticate(0); err != nil {
				errs <- fmt.Errorf("login %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestLibPAMBrokenHelper checks the C module's own guards: a helper that
// dies, or one that never answers, fails the login with
// PAM_AUTHINFO_UNAVAIL; the silent one is killed after timeout + 5 s.
func TestLibPAMBrokenHelper(t *testing.T) {
	s := newSetup(t)
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tt := range []struct {
		name, helper string
	}{
		{"exits at once", script("dies", "exit 3")},
		{"writes garbage", script("garbage", "printf 'garbage garbage garbage' >&3; sleep 30")},
		{"never answers", script("silent", "exec sleep 60")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			st := newStack(t, s.line("required", "helper="+tt.helper, "timeout=1"))
			start := time.Now()
			auth, _ := st.login(t, "alice", &answerer{answer: s.tok.Next()})
			if !errors.Is(auth, pam.ErrAuthinfoUnavail) {
				t.Errorf("login = %v, want ErrAuthinfoUnavail", auth)
			}
			t.Logf("returned after %v", time.Since(start))
		})
	}
}
