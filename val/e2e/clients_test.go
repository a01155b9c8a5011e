package e2e_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

// TestValclient verifies OTPs with the Go client library against the server
// and its KSM: signed requests, checked answers, a replay refused.
func TestValclient(t *testing.T) {
	ctx := context.Background()
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			c, err := valclient.New(valclient.Config{URLs: []string{s.url + "/wsapi/2.0/verify"}, ClientID: 1, APIKey: ciSecret, SyncLevel: "secure"})
			if err != nil {
				t.Fatal(err)
			}
			var src otpSource
			o := src.next()
			res, err := c.Verify(ctx, strings.ToUpper(o))
			if err != nil || res.Status != val.StatusOK {
				t.Fatalf("Verify(fresh OTP) = %s, %v; want OK", res.Status, err)
			}
			tok := ciToken(3, 0)
			if res.Timestamp != int64(tok.Timestamp()) || res.SessionCounter != 3 || res.SessionUse != 0 {
				t.Errorf("Verify: timestamp %d, session %d/%d; want %d, 3/0", res.Timestamp, res.SessionCounter, res.SessionUse, tok.Timestamp())
			}
			if _, err := c.Verify(ctx, o); !errors.Is(err, valclient.ErrReplayedOTP) {
				t.Errorf("Verify(same OTP) error = %v, want ErrReplayedOTP", err)
			}
			bad, err := valclient.New(valclient.Config{URLs: []string{s.url + "/wsapi/2.0/verify"}, ClientID: 1, APIKey: "AAAAAAAAAAAAAAAAAAAAAAAAAAA="})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bad.Verify(ctx, src.next()); !errors.Is(err, valclient.ErrBadServerSignature) && !errors.Is(err, valclient.ErrBadSignature) {
				t.Errorf("Verify with a wrong API key: error %v, want a signature error", err)
			}
		})
	}
}

// TestProcesses runs the stack as an operator would, from built binaries:
// ykksmd serving a key database, ykvald asking it, a client made by
// ykval-gen-clients, OTPs verified with curl and with valclient, and
// ykvald stopped with SIGTERM.
func TestProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries")
	}
	bin := buildBinaries(t, "./cmd/ykksmd", "./cmd/ykvald", "./cmd/ykval-gen-clients")
	curl, _ := exec.LookPath("curl")
	ctx := context.Background()

	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ksmDSN, valDSN := b.DSN(t), b.DSN(t)
			seedKSM(t, ksmDSN)
			env := append(os.Environ(), "YKKSM_DB=", "YKVAL_DB=", "YKVAL_KSM_URL=", "YKVAL_KSM_DB=", "YKVAL_LISTEN=", "YKKSM_LISTEN=", "YKVAL_REVOKE_IPS=")

			ksmAddr := daemon(t, env, filepath.Join(bin, "ykksmd"), "--listen", "127.0.0.1:0", "--db", ksmDSN)
			valCmd, valAddr := daemonCmd(t, env, filepath.Join(bin, "ykvald"), "--listen", "127.0.0.1:0", "--db", valDSN,
				"--ksm-url", "http://"+ksmAddr+"/wsapi/decrypt")

			gen := exec.Command(filepath.Join(bin, "ykval-gen-clients"), "--db", valDSN, "--urandom")
			gen.Env = env
			out, err := gen.Output()
			if err != nil {
				t.Fatalf("ykval-gen-clients: %v", err)
			}
			id, secret, ok := strings.Cut(strings.TrimSpace(string(out)), ",")
			if !ok || id != "1" || len(secret) != 28 {
				t.Fatalf("ykval-gen-clients printed %q, want 1,<28 characters>", out)
			}
			key := val.DecodeKey(secret)
			base := "http://" + valAddr + "/wsapi/2.0/verify"

			if curl != "" {
				get := func(q string) val.Reply {
					t.Helper()
					out, err := exec.Command(curl, "-sS", "--fail", base+"?"+q).Output()
					if err != nil {
						t.Fatalf("curl: %v", err)
					}
					r, err := val.ParseResponse(out)
					if err != nil {
						t.Fatalf("curl: answer %q: %v", out, err)
					}
					if !r.Verify(key) {
						t.Errorf("curl: answer %q not signed with the client's key", out)
					}
					return r
				}
				q := "id=" + id + "&otp=" + line1 + "&nonce=" + nonceKaka
				if r := get(q); r.Status() != val.StatusOK || r.Get("otp") != line1 || r.Get("nonce") != nonceKaka {
					t.Errorf("curl verify: %s, want OK echoing otp and nonce", r.Status())
				}
				if r := get(q); r.Status() != val.StatusReplayedRequest {
					t.Errorf("curl verify again: %s, want REPLAYED_REQUEST", r.Status())
				}
				if r := get("id=" + id + "&otp=" + line1 + "&nonce=" + nonceBaka); r.Status() != val.StatusReplayedOTP {
					t.Errorf("curl verify, new nonce: %s, want REPLAYED_OTP", r.Status())
				}
				h := val.Sign(key, []val.Field{{Key: "id", Value: id}, {Key: "nonce", Value: nonceKaka}, {Key: "otp", Value: line2}})
				if r := get("id=" + id + "&nonce=" + nonceKaka + "&otp=" + line2 + "&h=" + url.QueryEscape(h)); r.Status() != val.StatusOK {
					t.Errorf("curl verify, signed: %s, want OK", r.Status())
				}
			}

			c, err := valclient.New(valclient.Config{URLs: []string{base}, ClientID: 1, APIKey: secret})
			if err != nil {
				t.Fatal(err)
			}
			if res, err := c.Verify(ctx, line4); err != nil || res.Status != val.StatusOK {
				t.Errorf("valclient Verify(line4) = %s, %v; want OK", res.Status, err)
			}
			if _, err := c.Verify(ctx, line3); !errors.Is(err, valclient.ErrReplayedOTP) {
				t.Errorf("valclient Verify(line3 after line4) error = %v, want ErrReplayedOTP", err)
			}

			valCmd.Process.Signal(syscall.SIGTERM)
			if err := waitTimeout(valCmd, 20*time.Second); err != nil {
				t.Errorf("ykvald after SIGTERM: %v, want exit 0", err)
			}
		})
	}
}

var listening = regexp.MustCompile(`listening"? addr=(\S+)`)

// daemon starts a server binary and returns the address it reports.
func daemon(t *testing.T, env []string, path string, args ...string) string {
	_, addr := daemonCmd(t, env, path, args...)
	return addr
}

// daemonCmd starts a server binary, waits for its "listening addr=" log
// line and returns the process and the address; the process is killed when
// the test ends.
func daemonCmd(t *testing.T, env []string, path string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil && !sent {
				addrs <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	select {
	case a := <-addrs:
		return cmd, a
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report its address", filepath.Base(path))
	}
	return nil, ""
}

// waitTimeout waits for cmd to exit, at most d.
func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		return errors.New("did not exit in time")
	}
}
