// Package pamtest is the test harness of the PAM module: it builds the real
// module (gcc), helper and ykvald (go build), starts ykvald (SQLite, with
// its embedded KSM over a KSM key database the harness fills) on a loopback
// port, mints OTPs for the keys it enrols, and
// writes PAM service directories. Tests that need a missing tool skip, or
// fail when CI=true.
package pamtest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	ksmsql "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	valsql "github.com/ykstack/ykstack/val/sqlstore"
)

// Need skips the test with reason, or fails it when CI=true (CI must run
// every test).
func Need(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s", reason)
	}
	t.Skip(reason)
}

// Paths are the built module and helper.
type Paths struct {
	Module string // pam_yubico.so
	Helper string // pam_yubico_helper
	YKVALD string // the validation server
	// Preload, preloaded into sshd, makes pam_start read the service from
	// $YKPAM_TEST_PAM_CONFDIR (csrc/confdir_preload.c).
	Preload string
	// SetTok is a PAM module setting PAM_AUTHTOK to its argument
	// (csrc/settok.c).
	SetTok string
	Dir    string // the directory holding them
}

var (
	buildOnce sync.Once
	built     Paths
	buildErr  error
)

// RepoRoot returns the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// Build builds the module and the helper once per test process, into a
// directory removed by Cleanup.
func Build(t testing.TB) Paths {
	t.Helper()
	_, errGCC := exec.LookPath("gcc")
	Need(t, errGCC == nil, "gcc is not installed")
	_, errHdr := os.Stat("/usr/include/security/pam_modules.h")
	Need(t, errHdr == nil, "libpam0g-dev is not installed")
	buildOnce.Do(func() { built, buildErr = build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return built
}

func build() (Paths, error) {
	dir, err := os.MkdirTemp("", "ykpam-build")
	if err != nil {
		return Paths{}, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return Paths{}, err
	}
	root := RepoRoot()
	p := Paths{Module: filepath.Join(dir, "pam_yubico.so"), Helper: filepath.Join(dir, "pam_yubico_helper"),
		YKVALD: filepath.Join(dir, "ykvald"), Preload: filepath.Join(dir, "confdir_preload.so"),
		SetTok: filepath.Join(dir, "pam_ykpam_settok.so"), Dir: dir}
	csrc := filepath.Join(root, "pam", "internal", "pamtest", "csrc")
	for _, c := range []struct{ out, src, define string }{
		{p.Module, filepath.Join(root, "pam", "module", "pam_yubico.c"), `-DYKPAM_HELPER="` + p.Helper + `"`},
		{p.Preload, filepath.Join(csrc, "confdir_preload.c"), "-DUNUSED"},
		{p.SetTok, filepath.Join(csrc, "settok.c"), "-DUNUSED"},
	} {
		cc := exec.Command("gcc", "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", c.define, "-o", c.out, c.src, "-lpam")
		if out, err := cc.CombinedOutput(); err != nil {
			return Paths{}, fmt.Errorf("pamtest: gcc %s: %v\n%s", c.src, err, out)
		}
	}
	for out, pkg := range map[string]string{p.Helper: "./cmd/pam_yubico_helper", p.YKVALD: "./cmd/ykvald"} {
		gb := exec.Command("go", "build", "-o", out, pkg)
		gb.Dir = root
		if msg, err := gb.CombinedOutput(); err != nil {
			return Paths{}, fmt.Errorf("pamtest: go build %s: %v\n%s", pkg, err, msg)
		}
	}
	return p, nil
}

// Cleanup removes what Build built; call it from TestMain.
func Cleanup() {
	if built.Dir != "" {
		os.RemoveAll(built.Dir)
	}
}

// ServiceDir writes a PAM service file named service with lines into a new
// directory and returns the directory (for pam_start_confdir or
// PAM_WRAPPER_SERVICE_DIR). An "other" service denying everything is added.
func ServiceDir(t testing.TB, service string, lines ...string) string {
	t.Helper()
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(service, strings.Join(lines, "\n")+"\n")
	if service != "other" {
		write("other", "auth required pam_deny.so\naccount required pam_deny.so\n")
	}
	return dir
}

// VAL is a running validation server.
type VAL struct {
	URL      string // the verify URL
	ClientID int
	Secret   string // the client's base64 API key
	srv      *httptest.Server
	keys     *ksmsql.Store
	hits     atomic.Int64
}

// Requests returns how many verify requests the server got so far.
func (v *VAL) Requests() int64 { return v.hits.Load() }

// StartVAL starts ykstack's validation server, the ykvald program built by
// Build, with an embedded KSM (--ksm-db), both on SQLite, with API client 1,
// on a loopback port; it stops with the test. Requests reach it through a
// counting proxy in the test (see Requests).
func StartVAL(t testing.TB) *VAL {
	t.Helper()
	paths := Build(t)
	ctx := context.Background()
	dir := t.TempDir()
	ksmDSN, valDSN := "sqlite:"+filepath.Join(dir, "ksm.db"), "sqlite:"+filepath.Join(dir, "val.db")
	keys, err := ksmsql.Open(ctx, sqldb.Config{DSN: ksmDSN})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	store, err := valsql.Open(ctx, sqldb.Config{DSN: valDSN})
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 20)
	rand.Read(secret)
	v := &VAL{ClientID: 1, Secret: base64.StdEncoding.EncodeToString(secret), keys: keys}
	_, err = store.ImportClients(ctx, []val.Client{{ID: 1, Active: true, Created: 1, Secret: v.Secret}})
	store.Close()
	if err != nil {
		t.Fatal(err)
	}

	addr := "127.0.0.1:" + freePort(t)
	cmd := exec.Command(paths.YKVALD, "--listen", addr, "--db", valDSN, "--ksm-db", ksmDSN)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var log syncBuf
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("ykvald output:\n%s", log.String())
		}
	})
	backend := "http://" + addr
	for i := 0; ; i++ {
		resp, err := http.Get(backend + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if i > 200 {
			t.Fatalf("ykvald did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	target, _ := url.Parse(backend)
	proxy := httputil.NewSingleHostReverseProxy(target)
	v.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v.hits.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(v.srv.Close)
	v.URL = v.srv.URL + "/wsapi/2.0/verify"
	return v
}

// Stop stops the server (the "VAL down" case).
func (v *VAL) Stop() { v.srv.Close() }

// Token is a YubiKey enrolled in the KSM: it mints OTPs with increasing
// counters.
type Token struct {
	PublicID string
	key      otp.Key
	uid      otp.UID
	mu       sync.Mutex
	counter  uint16
	use      uint8
}

// NewToken enrols a new random key in the server's KSM.
func (v *VAL) NewToken(t testing.TB) *Token {
	t.Helper()
	tok := NewUnenrolledToken()
	err := v.keys.Import(context.Background(), []ksm.Key{{
		SerialNr: 1, PublicName: tok.PublicID, Created: "2026-01-01T00:00:00",
		InternalName: hex.EncodeToString(tok.uid[:]), AESKey: hex.EncodeToString(tok.key[:]),
		Active: true,
	}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// NewUnenrolledToken returns a key the server does not know (its OTPs are
// well formed but BAD_OTP).
func NewUnenrolledToken() *Token {
	var id [6]byte
	rand.Read(id[:])
	tok := &Token{PublicID: modhex.EncodeToString(id[:]), counter: 1}
	rand.Read(tok.key[:])
	rand.Read(tok.uid[:])
	return tok
}

// Next returns a fresh OTP (safe for concurrent use).
func (k *Token) Next() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.use == 255 {
		k.counter++
		k.use = 0
	}
	k.use++
	var r [2]byte
	rand.Read(r[:])
	return otp.Generate(k.PublicID, k.key, otp.Token{
		UID: k.uid, Counter: k.counter, Use: k.use, TimestampLow: uint16(k.use) << 4, TimestampHigh: 1,
		Random: uint16(r[0])<<8 | uint16(r[1]),
	})
}

// ForeignOTP returns an OTP with k's public ID encrypted under another AES
// key (the "wrong key" case).
func (k *Token) ForeignOTP() string {
	other := NewUnenrolledToken()
	other.PublicID = k.PublicID
	return other.Next()
}

// BlackHole returns a verify URL whose server accepts connections and never
// answers; it closes with the test.
func BlackHole(t testing.TB) string {
	t.Helper()
	hold := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hold:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hold); srv.Close() })
	return srv.URL + "/wsapi/2.0/verify"
}

// DeadURL returns a verify URL on a loopback port nothing listens on.
func DeadURL(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/wsapi/2.0/verify"
}

// userComment marks the accounts User creates.
const userComment = "ykstack PAM test user"

// User creates a local system user named name with home directory home
// (useradd; root only) and removes it with the test. A leftover account of
// an earlier, interrupted run (recognised by its comment) is replaced; any
// other existing user of that name is a failure, so that a test never takes
// over a real account.
func User(t testing.TB, name, home string) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "creating a test user needs root")
	_, err := exec.LookPath("useradd")
	Need(t, err == nil, "useradd is not installed")
	if u, err := user.Lookup(name); err == nil {
		if u.Name != userComment {
			t.Fatalf("pamtest: user %s already exists and is not a test user; remove it (userdel %s)", name, name)
		}
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Fatalf("pamtest: userdel %s (leftover): %v\n%s", name, err, out)
		}
	}
	cmd := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", home, "--shell", "/bin/sh",
		"--comment", userComment, name)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pamtest: useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("pamtest: userdel %s: %v\n%s", name, err, out)
		}
	})
}
