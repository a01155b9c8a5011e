package integration

import (
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/ykstack/ykstack/pam/internal/pamtest"
)

// TestSetupAsDocumented follows the steps of docs/PAM.md ("Set it up") as a
// new user would, with the files of contrib/ as shipped: make install, the
// mapping file, the key file, the pam.d lines, the sshd_config.d file, sshd
// -t, then SSH logins. Only what cannot happen in a test differs: the
// install goes to a scratch PREFIX and PAMDIR (so the module is named by
// its path), /etc/yubico is a scratch directory, pam.d is a scratch
// service directory and the configuration is handed to a private sshd.
func TestSetupAsDocumented(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	e := newSSHDEnv(t)
	_, err := exec.LookPath("make")
	pamtest.Need(t, err == nil, "make is not installed")
	root := pamtest.RepoRoot()
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	// (pam/ is also a directory: "make pam" without the target says "up to date".)
	pamtest.Need(t, regexp.MustCompile(`(?m)^pam:`).Match(makefile), "the Makefile has no pam target")

	// Step 1: make pam; make install.
	scratch, err := os.MkdirTemp("", "ykpam-setup")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(scratch) })
	os.Chmod(scratch, 0o755)
	prefix, pamDir := filepath.Join(scratch, "usr"), filepath.Join(scratch, "pam")
	vars := []string{"BIN=" + filepath.Join(scratch, "bin"), "PREFIX=" + prefix, "PAMDIR=" + pamDir}
	for _, target := range []string{"pam", "install"} {
		cmd := exec.Command("make", append([]string{"-C", root, target}, vars...)...)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("make %s: %v\n%s", target, err, out)
		}
	}
	module := filepath.Join(pamDir, "pam_yubico.so")
	helper := filepath.Join(prefix, "libexec", "ykstack", "pam_yubico_helper")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{module, 0o644}, {helper, 0o755}} {
		st, err := os.Stat(f.path)
		if err != nil {
			t.Fatalf("make install: %v", err)
		}
		if st.Mode().Perm() != f.mode {
			t.Errorf("make install: %s has mode %v, want %v", f.path, st.Mode().Perm(), f.mode)
		}
	}

	// Step 2: the mapping file; step 3: the API key.
	etc := filepath.Join(scratch, "etc", "yubico")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "authorized_yubikeys"), []byte(sshUser+":"+e.s.tok.PublicID+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "pam_yubico.key"), []byte(e.s.val.Secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// Step 4: the pam.d lines of contrib/pam/sshd, with id= and urllist=
	// set. Variant 1 is the active line; variants 2 and 3 are uncommented
	// for their cases.
	snippet, err := os.ReadFile(filepath.Join(root, "contrib", "pam", "sshd"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(line string) string {
		line = strings.TrimPrefix(line, "#")
		f := strings.Fields(line)
		for i, w := range f {
			switch {
			case strings.HasPrefix(w, "urllist="):
				f[i] = "urllist=" + e.s.val.URL
			case w == "pam_yubico.so":
				f[i] = module // installed outside the system's module directory
			}
		}
		return strings.ReplaceAll(strings.Join(f, " "), "/etc/yubico/", etc+"/")
	}
	var variants [][]string // the auth lines of each variant
	var current []string
	for _, l := range strings.Split(string(snippet), "\n") {
		switch {
		case strings.HasPrefix(l, "# Variant"):
			if current != nil {
				variants = append(variants, current)
			}
			current = []string{}
		case current != nil && (strings.HasPrefix(l, "auth ") || strings.HasPrefix(l, "#auth ")):
			current = append(current, edit(l))
		}
	}
	variants = append(variants, current)
	if len(variants) != 3 || len(variants[0]) != 1 || len(variants[1]) != 2 || len(variants[2]) != 1 {
		t.Fatalf("contrib/pam/sshd: variants %q, want 3 with 1, 2 and 1 auth lines", variants)
	}
	rest := []string{"account required pam_permit.so", "session required pam_permit.so", "password required pam_deny.so"}

	// Step 5: the sshd_config.d files, checked with sshd -t.
	conf := func(name string) string {
		t.Helper()
		p := filepath.Join(root, "contrib", "sshd", name)
		key := filepath.Join(t.TempDir(), "host_key")
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
		if out, err := exec.Command(sshdPath, "-t", "-f", p, "-h", key).CombinedOutput(); err != nil {
			t.Fatalf("sshd -t -f %s: %v\n%s", name, err, out)
		}
		return p
	}
	otpConf, pubConf := conf("otp.conf"), conf("publickey-otp.conf")
	test := []string{"ForceCommand=echo forced-ok"}

	// Step 6: log in.
	t.Run("OTP only", func(t *testing.T) {
		d := startSSHDConfig(t, otpConf, append(variants[0], rest...), test...)
		k := &kbdInt{answer: e.s.tok.Next()}
		if out, err := d.login(sshUser, k.method()); err != nil || out != "forced-ok\n" {
			t.Errorf("login = %q, %v; want forced-ok", out, err)
		}
		if len(k.questions) != 1 || k.questions[0] != "YubiKey for `"+sshUser+"': " {
			t.Errorf("questions = %q", k.questions)
		}
		if _, err := d.login(sshUser, (&kbdInt{answer: e.s.tok.ForeignOTP()}).method()); err == nil {
			t.Errorf("login with a bad OTP succeeded")
		}
	})
	t.Run("password and OTP with pam_unix", func(t *testing.T) {
		chpasswd := exec.Command("chpasswd")
		chpasswd.Stdin = strings.NewReader(sshUser + ":hunter2\n")
		if out, err := chpasswd.CombinedOutput(); err != nil {
			t.Fatalf("chpasswd: %v\n%s", err, out)
		}
		d := startSSHDConfig(t, otpConf, append(variants[1], rest...), test...)
		if out, err := d.login(sshUser, (&kbdInt{answer: "hunter2" + e.s.tok.Next()}).method()); err != nil || out != "forced-ok\n" {
			t.Errorf("login = %q, %v; want forced-ok", out, err)
		}
		if _, err := d.login(sshUser, (&kbdInt{answer: "hunter3" + e.s.tok.Next()}).method()); err == nil {
			t.Errorf("login with a wrong password succeeded")
		}
	})
	t.Run("password and keyboard-interactive in one connection", func(t *testing.T) {
		d := startSSHDConfig(t, otpConf, append(variants[2], rest...), append(test, "PasswordAuthentication=yes",
			"AuthenticationMethods=any", "MaxAuthTries=6")...)
		if out, err := d.login(sshUser, ssh.Password(e.s.tok.ForeignOTP()), (&kbdInt{answer: e.s.tok.Next()}).method()); err != nil || out != "forced-ok\n" {
			t.Errorf("failed password, then OTP = %q, %v; want forced-ok", out, err)
		}
		if _, err := d.login(sshUser, ssh.Password(e.s.tok.ForeignOTP())); err == nil {
			t.Errorf("login with a bad OTP as password succeeded")
		}
	})
	t.Run("public key then OTP", func(t *testing.T) {
		pub, priv, _ := ed25519.GenerateKey(rand.Reader)
		signer, _ := ssh.NewSignerFromKey(priv)
		sshPub, _ := ssh.NewPublicKey(pub)
		keys := filepath.Join(e.home, "authorized_keys")
		if err := os.WriteFile(keys, ssh.MarshalAuthorizedKey(sshPub), 0o644); err != nil {
			t.Fatal(err)
		}
		d := startSSHDConfig(t, pubConf, append(variants[0], rest...), append(test, "AuthorizedKeysFile="+keys)...)
		if out, err := d.login(sshUser, ssh.PublicKeys(signer), (&kbdInt{answer: e.s.tok.Next()}).method()); err != nil || out != "forced-ok\n" {
			t.Errorf("login = %q, %v; want forced-ok", out, err)
		}
		if _, err := d.login(sshUser, ssh.PublicKeys(signer)); err == nil {
			t.Errorf("public key alone succeeded")
		}
	})
}
