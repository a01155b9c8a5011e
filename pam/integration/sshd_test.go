package integration

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/ykstack/ykstack/pam/internal/pamtest"
)

const (
	sshdPath = "/usr/sbin/sshd"
	sshUser  = "ykpamssh"
	// loginDeadline bounds one whole SSH login; a login that takes longer
	// is a hang (the module's own timeout is a few seconds).
	loginDeadline = 30 * time.Second
)

// sshdEnv is what every sshd test needs: the module, a validation server,
// a local user and a scratch PAM service directory.
type sshdEnv struct {
	s        setup
	home     string
	password string // a pam_exec program accepting "hunter2"
}

func newSSHDEnv(t *testing.T) *sshdEnv {
	t.Helper()
	pamtest.Need(t, os.Geteuid() == 0, "sshd tests need root")
	_, err := os.Stat(sshdPath)
	pamtest.Need(t, err == nil, "openssh-server is not installed")
	e := &sshdEnv{s: newSetup(t)}
	e.home, err = os.MkdirTemp("", "ykpam-ssh-home")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(e.home) })
	os.Chmod(e.home, 0o755)
	pamtest.User(t, sshUser, e.home)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // Debian's privilege separation directory
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	e.password = filepath.Join(dir, "check-password")
	if err := os.WriteFile(e.password, []byte("#!/bin/sh\npw=$(tr -d '\\000')\n[ \"$pw\" = hunter2 ]\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return e
}

// mapTokens writes the authfile so that the SSH user owns toks.
func (e *sshdEnv) mapTokens(t *testing.T, toks ...*pamtest.Token) {
	t.Helper()
	line := sshUser
	for _, tok := range toks {
		line += ":" + tok.PublicID
	}
	if err := os.WriteFile(e.s.auth, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sshd is a running sshd.
type sshd struct {
	addr    string
	hostKey ssh.PublicKey
	log     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startSSHD starts the distribution's sshd on a free loopback port with an
// empty configuration plus opts, its PAM service "sshd" being pamLines (a
// preloaded pam_start reads it from a scratch directory, so the system's
// /etc/pam.d is never used).
func startSSHD(t *testing.T, pamLines []string, opts ...string) *sshd {
	t.Helper()
	return startSSHDConfig(t, os.DevNull, pamLines, opts...)
}

// startSSHDConfig is startSSHD with a configuration file, read after the
// command line's options.
func startSSHDConfig(t *testing.T, config string, pamLines []string, opts ...string) *sshd {
	t.Helper()
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "host_key")
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey, _ := ssh.NewPublicKey(pub)
	svc := pamtest.ServiceDir(t, "sshd", pamLines...)
	preload := pamtest.Build(t).Preload

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)

	// sshd keeps the first value it reads for an option: the test's own
	// options come first.
	args := []string{"-D", "-e", "-f", config, "-p", port, "-h", keyFile}
	for _, o := range opts {
		args = append(args, "-o", o)
	}
	args = append(args, "-o", "ListenAddress=127.0.0.1", "-o", "UsePAM=yes", "-o", "PidFile=none",
		"-o", "AuthorizedKeysFile=none", "-o", "ForceCommand=echo forced-ok", "-o", "StrictModes=no",
		"-o", "UseDNS=no", "-o", "PermitRootLogin=no", "-o", "MaxStartups=200", "-o", "LoginGraceTime=60",
		"-o", "LogLevel=VERBOSE")
	cmd := exec.Command(sshdPath, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LD_PRELOAD=" + preload, "YKPAM_TEST_PAM_CONFDIR=" + svc}
	log := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("sshd log (routine lines left out):\n%s", tail(unusual(log.String()), 80))
		}
	})
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("sshd did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &sshd{addr: addr, hostKey: hostKey, log: log}
}

// unusual drops the lines every successful login writes.
func unusual(log string) string {
	var out []string
	for l := range strings.SplitSeq(log, "\n") {
		routine := false
		for _, p := range []string{"Connection from ", "Connection closed by 127.0.0.1", "Postponed keyboard-interactive", "Accepted ",
			"User child is on pid", "Starting session:", "Close session:", "Transferred:", "Closing connection to"} {
			routine = routine || strings.HasPrefix(strings.TrimSpace(l), p)
		}
		if !routine {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// kbdInt answers every keyboard-interactive question with answer and
// records the questions.
type kbdInt struct {
	answer    string
	questions []string
	echos     []bool
}

func (k *kbdInt) method() ssh.AuthMethod {
	return ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
		k.questions = append(k.questions, questions...)
		k.echos = append(k.echos, echos...)
		answers := make([]string, len(questions))
		for i := range answers {
			answers[i] = k.answer
		}
		return answers, nil
	})
}

// login connects as user with methods and runs the forced command; it
// returns the command's output. The whole login is bounded by
// loginDeadline: a hang is an error.
func (d *sshd) login(user string, methods ...ssh.AuthMethod) (string, error) {
	return d.connect(true, user, methods...)
}

// authenticate is login without the session: it ends once sshd accepted
// the user.
func (d *sshd) authenticate(user string, methods ...ssh.AuthMethod) error {
	_, err := d.connect(false, user, methods...)
	return err
}

func (d *sshd) connect(session bool, user string, methods ...ssh.AuthMethod) (string, error) {
	conn, err := net.DialTimeout("tcp", d.addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(loginDeadline))
	cc, chans, reqs, err := ssh.NewClientConn(conn, d.addr, &ssh.ClientConfig{
		User: user, Auth: methods, HostKeyCallback: ssh.FixedHostKey(d.hostKey),
	})
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "", fmt.Errorf("login hung for %v: %w", loginDeadline, err)
		}
		return "", err
	}
	client := ssh.NewClient(cc, chans, reqs)
	defer client.Close()
	if !session {
		return "", nil
	}
	sess, err := client.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.Output("")
	return string(out), err
}

// stack returns the PAM service lines: our module (with extra arguments),
// then more auth lines, and the account, session and password stacks.
func (e *sshdEnv) stack(extra []string, more ...string) []string {
	return e.stackWith("required", extra, more...)
}

// stackWith is stack with another control value for our module.
func (e *sshdEnv) stackWith(control string, extra []string, more ...string) []string {
	lines := []string{e.s.line(control, extra...)}
	lines = append(lines, more...)
	return append(lines, e.s.account(), "session required pam_permit.so", "password required pam_deny.so")
}

var kbdOnly = []string{"KbdInteractiveAuthentication=yes", "PasswordAuthentication=no", "AuthenticationMethods=keyboard-interactive"}

func TestSSHDKeyboardInteractive(t *testing.T) {
	e := newSSHDEnv(t)
	tok := e.s.tok
	e.mapTokens(t, tok)
	d := startSSHD(t, e.stack(nil), kbdOnly...)

	k := &kbdInt{answer: tok.Next()}
	out, err := d.login(sshUser, k.method())
	if err != nil || out != "forced-ok\n" {
		t.Fatalf("login with a good OTP = %q, %v; want forced-ok", out, err)
	}
	if len(k.questions) == 0 || k.questions[0] != "YubiKey for `"+sshUser+"': " || k.echos[0] {
		t.Errorf("questions = %q (echo %v), want \"YubiKey for `%s': \" without echo", k.questions, k.echos, sshUser)
	}

	replayed := k.answer
	before := e.s.val.Requests()
	unlisted := e.s.val.NewToken(t)
	refused := []struct{ name, answer string }{
		{"replayed OTP", replayed},
		{"OTP of another AES key", tok.ForeignOTP()},
		{"unlisted public ID", unlisted.Next()},
		{"empty answer", ""},
	}
	for _, r := range refused {
		if out, err := d.login(sshUser, (&kbdInt{answer: r.answer}).method()); err == nil || strings.Contains(err.Error(), "hung") {
			t.Errorf("login with %s = %q, %v; want refused", r.name, out, err)
		}
	}
	if n := e.s.val.Requests() - before; n != 2 {
		t.Errorf("server got %d requests for replayed, foreign, unlisted and empty answers, want 2 (unlisted ids are never sent)", n)
	}
	// Another good one still works afterwards.
	if out, err := d.login(sshUser, (&kbdInt{answer: tok.Next()}).method()); err != nil || out != "forced-ok\n" {
		t.Errorf("login after the refusals = %q, %v; want forced-ok", out, err)
	}
	// A user sshd does not know: refused (sshd feeds the module junk).
	if _, err := d.login("nosuchuser", (&kbdInt{answer: tok.Next()}).method()); err == nil {
		t.Errorf("login as an unknown user succeeded")
	}
}

func TestSSHDPasswordAndOTP(t *testing.T) {
	e := newSSHDEnv(t)
	e.mapTokens(t, e.s.tok)
	d := startSSHD(t, e.stack(nil, "auth required pam_exec.so quiet expose_authtok "+e.password), kbdOnly...)
	if out, err := d.login(sshUser, (&kbdInt{answer: "hunter2" + e.s.tok.Next()}).method()); err != nil || out != "forced-ok\n" {
		t.Errorf("login with password+OTP = %q, %v; want forced-ok", out, err)
	}
	if _, err := d.login(sshUser, (&kbdInt{answer: "wrong" + e.s.tok.Next()}).method()); err == nil {
		t.Errorf("login with a wrong password and a good OTP succeeded")
	}
	if _, err := d.login(sshUser, (&kbdInt{answer: "hunter2" + e.s.tok.ForeignOTP()}).method()); err == nil {
		t.Errorf("login with a good password and a bad OTP succeeded")
	}
}

func TestSSHDServerDown(t *testing.T) {
	e := newSSHDEnv(t)
	e.mapTokens(t, e.s.tok)
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"nothing listens", []string{"urllist=" + pamtest.DeadURL(t)}},
		{"server never answers", []string{"urllist=" + pamtest.BlackHole(t), "timeout=2"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			d := startSSHD(t, e.stack(tt.args), kbdOnly...)
			start := time.Now()
			_, err := d.login(sshUser, (&kbdInt{answer: e.s.tok.Next()}).method())
			if err == nil || strings.Contains(err.Error(), "hung") {
				t.Errorf("login with the server down = %v, want refused", err)
			}
			t.Logf("refused after %v", time.Since(start))
		})
	}
}

// bothControl is the control value docs/PAM.md prescribes when sshd allows
// password and keyboard-interactive authentication in one connection. With
// "required", a failed password attempt (run by sshd's monitor) freezes
// Linux-PAM's auth chain as failed; a later keyboard-interactive success
// (run in a forked child) does not change the monitor's chain, so the
// monitor's pam_setcred fails and sshd drops the connection. That happens
// with any module, pam_unix or pam_exec alike. "default=ok" records a failure
// as the stack's result without marking the chain bad, so authentication
// still fails exactly as with "required", but pam_setcred succeeds.
const bothControl = "[success=ok ignore=ignore default=ok]"

// TestSSHDPassword covers sshd's password authentication (PAM runs in the
// privileged monitor), and keyboard-interactive after a failed password
// attempt in the same connection (the monitor ran the module, then forks the
// PAM child that runs it again).
func TestSSHDPassword(t *testing.T) {
	e := newSSHDEnv(t)
	e.mapTokens(t, e.s.tok)
	both := []string{"KbdInteractiveAuthentication=yes", "PasswordAuthentication=yes", "MaxAuthTries=6"}
	d := startSSHD(t, e.stackWith(bothControl, nil), both...)

	if out, err := d.login(sshUser, ssh.Password(e.s.tok.Next())); err != nil || out != "forced-ok\n" {
		t.Errorf("password login with a good OTP = %q, %v; want forced-ok", out, err)
	}
	if _, err := d.login(sshUser, ssh.Password(e.s.tok.ForeignOTP())); err == nil {
		t.Errorf("password login with a bad OTP succeeded")
	}
	for i := range 3 {
		k := &kbdInt{answer: e.s.tok.Next()}
		out, err := d.login(sshUser, ssh.Password(e.s.tok.ForeignOTP()), k.method())
		if err != nil || out != "forced-ok\n" {
			t.Fatalf("attempt %d: failed password then keyboard-interactive = %q, %v; want forced-ok", i, out, err)
		}
		if len(k.questions) == 0 {
			t.Errorf("keyboard-interactive was not used")
		}
	}
	// Password first, then the same OTP again over keyboard-interactive: a
	// replay, refused.
	o := e.s.tok.Next()
	if _, err := d.login(sshUser, ssh.Password(o)); err != nil {
		t.Fatalf("password login = %v", err)
	}
	if _, err := d.login(sshUser, (&kbdInt{answer: o}).method()); err == nil {
		t.Errorf("replaying a password-mode OTP over keyboard-interactive succeeded")
	}
}

// TestSSHDPublicKeyThenOTP covers AuthenticationMethods
// publickey,keyboard-interactive (contrib/sshd).
func TestSSHDPublicKeyThenOTP(t *testing.T) {
	e := newSSHDEnv(t)
	e.mapTokens(t, e.s.tok)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(priv)
	sshPub, _ := ssh.NewPublicKey(pub)
	keys := filepath.Join(e.home, "authorized_keys") // sshd reads it as the user
	if err := os.WriteFile(keys, ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startSSHD(t, e.stack(nil), "KbdInteractiveAuthentication=yes", "PasswordAuthentication=no", "PubkeyAuthentication=yes",
		"AuthorizedKeysFile="+keys, "AuthenticationMethods=publickey,keyboard-interactive")
	if out, err := d.login(sshUser, ssh.PublicKeys(signer), (&kbdInt{answer: e.s.tok.Next()}).method()); err != nil || out != "forced-ok\n" {
		t.Errorf("publickey + OTP = %q, %v; want forced-ok", out, err)
	}
	if _, err := d.login(sshUser, ssh.PublicKeys(signer)); err == nil {
		t.Errorf("publickey alone succeeded")
	}
	if _, err := d.login(sshUser, (&kbdInt{answer: e.s.tok.Next()}).method()); err == nil {
		t.Errorf("OTP alone succeeded")
	}
	if _, err := d.login(sshUser, ssh.PublicKeys(signer), (&kbdInt{answer: e.s.tok.ForeignOTP()}).method()); err == nil {
		t.Errorf("publickey + bad OTP succeeded")
	}
}

// TestSSHDManyLogins runs 1,000 sequential and 50 concurrent
// keyboard-interactive logins; none may hang or fail. Every tenth
// sequential login and every concurrent one also opens a session and runs
// the forced command (a session costs sshd about as much as the
// authentication, and the suite must stay short). It reports the login
// round-trip percentiles (TCP connect to accepted authentication, or to the
// command's output).
func TestSSHDManyLogins(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newSSHDEnv(t)
	toks := []*pamtest.Token{e.s.tok}
	for range 50 {
		toks = append(toks, e.s.val.NewToken(t))
	}
	e.mapTokens(t, toks...)
	// A loaded CI machine with 50 sshd children at once needs more than the
	// suite's short timeout; the default (10 s) is what real setups use.
	d := startSSHD(t, e.stack([]string{"timeout=10"}), kbdOnly...)

	n := 1000
	if s := os.Getenv("YKPAM_SEQUENTIAL_LOGINS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	var auths, sessions []time.Duration
	for i := range n {
		start := time.Now()
		if i%10 == 0 {
			out, err := d.login(sshUser, (&kbdInt{answer: e.s.tok.Next()}).method())
			if err != nil || out != "forced-ok\n" {
				t.Fatalf("sequential login %d = %q, %v", i, out, err)
			}
			sessions = append(sessions, time.Since(start))
			continue
		}
		if err := d.authenticate(sshUser, (&kbdInt{answer: e.s.tok.Next()}).method()); err != nil {
			t.Fatalf("sequential login %d = %v", i, err)
		}
		auths = append(auths, time.Since(start))
	}
	report(t, "sequential (authentication)", auths)
	report(t, "sequential (with session)", sessions)

	// The same sshd work with pam_permit in place of our module: what an
	// SSH keyboard-interactive authentication costs without any OTP check,
	// so that the report shows the module's share.
	base := startSSHD(t, []string{"auth required pam_permit.so", "account required pam_permit.so",
		"session required pam_permit.so", "password required pam_deny.so"}, kbdOnly...)
	baseline := make([]time.Duration, 0, n/5)
	for i := range cap(baseline) {
		start := time.Now()
		if err := base.authenticate(sshUser, (&kbdInt{answer: "unused"}).method()); err != nil {
			t.Fatalf("baseline login %d = %v", i, err)
		}
		baseline = append(baseline, time.Since(start))
	}
	report(t, "sequential (authentication, pam_permit baseline)", baseline)

	var wg sync.WaitGroup
	var mu sync.Mutex
	ctimes := make([]time.Duration, 0, 50)
	for i, tok := range toks[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			out, err := d.login(sshUser, (&kbdInt{answer: tok.Next()}).method())
			if err != nil || out != "forced-ok\n" {
				t.Errorf("concurrent login %d = %q, %v", i, out, err)
				return
			}
			mu.Lock()
			ctimes = append(ctimes, time.Since(start))
			mu.Unlock()
		}()
	}
	wg.Wait()
	report(t, "50 concurrent", ctimes)
}

func report(t *testing.T, name string, d []time.Duration) {
	t.Helper()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) time.Duration { return d[min(len(d)-1, int(float64(len(d))*p))] }
	t.Logf("%s logins: n=%d p50=%v p90=%v p99=%v max=%v", name, len(d), pct(0.50).Round(100*time.Microsecond),
		pct(0.90).Round(100*time.Microsecond), pct(0.99).Round(100*time.Microsecond), d[len(d)-1].Round(100*time.Microsecond))
}
