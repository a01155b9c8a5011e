// Package pgptest runs the real gpg binary in a throw-away GNUPGHOME so tests
// can make OpenPGP keys and messages exactly as an operator would, and check
// ykstack against them. It needs gpg (GnuPG 2.2 or later) on PATH.
//
// Key generation is cheap with ed25519/cv25519 but each Home starts a
// gpg-agent: create one per test package (TestMain or sync.Once) and Close it.
package pgptest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Available reports whether a gpg binary is on PATH.
func Available() bool {
	_, err := exec.LookPath("gpg")
	return err == nil
}

// Home is a temporary GNUPGHOME.
type Home struct {
	Dir string
}

// NewHome creates an empty GNUPGHOME under os.TempDir. Its path is kept short
// because gpg-agent's socket lives in it.
func NewHome() (*Home, error) {
	dir, err := os.MkdirTemp("", "ykgpg")
	if err != nil {
		return nil, fmt.Errorf("pgptest: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgptest: %w", err)
	}
	// No passphrase caching: each test that needs a passphrase gives it.
	// The cheapest S2K count: the default calibration takes seconds.
	conf := "default-cache-ttl 0\nmax-cache-ttl 0\nallow-loopback-pinentry\ns2k-count 65536\n"
	if err := os.WriteFile(filepath.Join(dir, "gpg-agent.conf"), []byte(conf), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("pgptest: %w", err)
	}
	return &Home{Dir: dir}, nil
}

// Close stops the agent gpg started for this home and removes the directory.
func (h *Home) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpgconf", "--kill", "all")
	cmd.Env = h.Env()
	cmd.Run() // best effort: no agent may be running
	return os.RemoveAll(h.Dir)
}

// Env returns the process environment with GNUPGHOME pointing at h.
func (h *Home) Env() []string {
	env := []string{"GNUPGHOME=" + h.Dir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GNUPGHOME=") {
			env = append(env, kv)
		}
	}
	return env
}

// Run runs gpg --batch with args and stdin, and returns its standard output.
// A non-zero exit is an error that carries gpg's standard error.
func (h *Home) Run(stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gpg", append([]string{"--batch", "--no-tty"}, args...)...)
	cmd.Env = h.Env()
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("pgptest: gpg %s: %w\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}

// Key is a key pair made by gpg in a Home.
type Key struct {
	Email       string // the user ID's address; select the key with "<"+Email+">"
	Fingerprint string // primary key fingerprint, upper-case hex
	// SigningFingerprint is the fingerprint of the key gpg signs with: a
	// signing subkey's when the primary key may only certify.
	SigningFingerprint string
	// EncryptionFingerprint is the fingerprint of its encryption subkey;
	// its last 16 digits are the key ID a message encrypted to k names.
	EncryptionFingerprint string
	Passphrase            string // empty for an unprotected key
}

// ID returns the exact gpg selector for k ("<email>"); bare addresses match
// as substrings in gpg.
func (k Key) ID() string { return "<" + k.Email + ">" }

// Creator returns the last 8 hex digits of the signing key's fingerprint,
// what ykksm-import records as the creator.
func (k Key) Creator() string { return k.SigningFingerprint[len(k.SigningFingerprint)-8:] }

func (h *Home) passArgs(passphrase string) []string {
	return []string{"--pinentry-mode", "loopback", "--passphrase", passphrase}
}

// GenKey makes a key for name <email>. algo is "ed25519" (ed25519 primary
// key for signing and certifying plus a cv25519 encryption subkey), "rsa"
// (rsa2048 primary key plus an rsa2048 encryption subkey), or "subkey"
// (an ed25519 primary key that only certifies, with ed25519 signing and
// cv25519 encryption subkeys). passphrase may be empty.
func (h *Home) GenKey(name, email, algo, passphrase string) (Key, error) {
	k := Key{Email: email, Passphrase: passphrase}
	uid := name + " <" + email + ">"
	pass := h.passArgs(passphrase)
	var primary, primaryUse string
	var subs [][2]string
	switch algo {
	case "ed25519":
		primary, primaryUse, subs = "ed25519", "sign", [][2]string{{"cv25519", "encr"}}
	case "rsa":
		primary, primaryUse, subs = "rsa2048", "sign", [][2]string{{"rsa2048", "encr"}}
	case "subkey":
		primary, primaryUse, subs = "ed25519", "cert", [][2]string{{"ed25519", "sign"}, {"cv25519", "encr"}}
	default:
		return k, fmt.Errorf("pgptest: unknown algorithm %q", algo)
	}
	if _, err := h.Run(nil, append(pass, "--quick-generate-key", uid, primary, primaryUse, "never")...); err != nil {
		return k, err
	}
	fpr, err := h.fingerprints(k.ID())
	if err != nil {
		return k, err
	}
	k.Fingerprint = fpr[0]
	for _, s := range subs {
		if _, err := h.Run(nil, append(pass, "--quick-add-key", k.Fingerprint, s[0], s[1], "never")...); err != nil {
			return k, err
		}
	}
	fpr, err = h.fingerprints(k.ID())
	if err != nil {
		return k, err
	}
	if len(fpr) != 1+len(subs) {
		return k, fmt.Errorf("pgptest: %s has %d keys, want %d", k.Email, len(fpr), 1+len(subs))
	}
	k.SigningFingerprint = fpr[0]
	if algo == "subkey" {
		k.SigningFingerprint = fpr[1]
	}
	k.EncryptionFingerprint = fpr[len(fpr)-1]
	return k, nil
}

// fingerprints lists the primary key's and the subkeys' fingerprints, in order.
func (h *Home) fingerprints(id string) ([]string, error) {
	out, err := h.Run(nil, "--with-colons", "--list-keys", id)
	if err != nil {
		return nil, err
	}
	var fprs []string
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Split(line, ":")
		if f[0] == "fpr" && len(f) > 9 {
			fprs = append(fprs, f[9])
		}
	}
	if len(fprs) == 0 {
		return nil, errors.New("pgptest: no fingerprint for " + id)
	}
	return fprs, nil
}

// ExportPublic returns k's public key, armored or binary, as gpg --export does.
func (h *Home) ExportPublic(k Key, armor bool) ([]byte, error) {
	args := []string{"--export", k.Fingerprint}
	if armor {
		args = append([]string{"--armor"}, args...)
	}
	return h.Run(nil, args...)
}

// ExportSecret returns k's secret key, armored or binary, as gpg
// --export-secret-keys does; it keeps k's passphrase.
func (h *Home) ExportSecret(k Key, armor bool) ([]byte, error) {
	args := append(h.passArgs(k.Passphrase), "--export-secret-keys", k.Fingerprint)
	if armor {
		args = append([]string{"--armor"}, args...)
	}
	return h.Run(nil, args...)
}

// Message makes an OpenPGP message of plaintext with gpg: signed by signer
// when it is non-nil, encrypted to the recipients when there are any, armored
// when armor is set. Keys are trusted (--trust-model always).
func (h *Home) Message(plaintext []byte, signer *Key, armor bool, recipients ...Key) ([]byte, error) {
	args := []string{"--trust-model", "always"}
	if armor {
		args = append(args, "--armor")
	}
	if signer != nil {
		args = append(args, h.passArgs(signer.Passphrase)...)
		args = append(args, "--local-user", signer.Fingerprint, "--sign")
	}
	for _, r := range recipients {
		args = append(args, "--recipient", r.Fingerprint)
	}
	if len(recipients) > 0 {
		args = append(args, "--encrypt")
	}
	return h.Run(plaintext, args...)
}

// EncryptionKeyID returns the key ID of k's encryption subkey, as
// pgp.Result.EncryptedTo and gpg's ENC_TO show it.
func (k Key) EncryptionKeyID() string {
	return k.EncryptionFingerprint[len(k.EncryptionFingerprint)-16:]
}

// Import adds keys (an export, armored or binary) to the home's keyring.
func (h *Home) Import(keys []byte) error {
	_, err := h.Run(keys, "--import")
	return err
}
