package pgp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GPG opens messages with the gpg binary, as the original ykksm-import did:
// gpg decrypts and verifies with the keys of its home directory (gpg-agent,
// smartcards), and its machine-readable status lines (--status-fd) are
// judged here. Every public key in that home is trusted to sign.
//
// The message goes to gpg on standard input and the plaintext comes back on
// a pipe: nothing is written to disk.
type GPG struct {
	Program        string   // the gpg binary; "gpg" (looked up in PATH) when empty
	Home           string   // GNUPGHOME; when empty, the environment's (or ~/.gnupg)
	PassphraseFile string   // passed to gpg with --pinentry-mode loopback when set
	Env            []string // base environment; os.Environ() when nil
	// MaxPlaintext bounds the plaintext; 0 means DefaultMaxPlaintext.
	MaxPlaintext int64
}

var _ Decrypter = (*GPG)(nil)

// Args returns the arguments GPG passes to gpg; the status lines go to file
// descriptor 3.
func (g *GPG) Args() []string {
	args := []string{"--batch", "--no-tty", "--status-fd", "3", "--no-auto-key-retrieve"}
	if g.PassphraseFile != "" {
		args = append(args, "--pinentry-mode", "loopback", "--passphrase-file", g.PassphraseFile)
	}
	return append(args, "--output", "-", "--decrypt")
}

// Decrypt implements Decrypter.
func (g *GPG) Decrypt(ctx context.Context, msg []byte) (*Result, error) {
	prog := g.Program
	if prog == "" {
		prog = "gpg"
	}
	max := g.MaxPlaintext
	if max <= 0 {
		max = DefaultMaxPlaintext
	}
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgp: gpg: %w", err)
	}
	defer statusR.Close()
	cmd := exec.CommandContext(ctx, prog, g.Args()...)
	cmd.Env = g.Env
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	if g.Home != "" {
		cmd.Env = append(cmd.Env, "GNUPGHOME="+g.Home)
	}
	cmd.Stdin = bytes.NewReader(msg)
	plain := &capWriter{max: max}
	var stderr capWriter
	stderr.max = 64 << 10
	cmd.Stdout, cmd.Stderr = plain, &stderr
	cmd.ExtraFiles = []*os.File{statusW}
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Start()
	statusW.Close()
	if err != nil {
		return nil, fmt.Errorf("pgp: gpg: %w", err)
	}
	statusC := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(statusR, 1<<20))
		statusC <- b
	}()
	waitErr := cmd.Wait()
	var status []byte
	select {
	case status = <-statusC:
	case <-time.After(5 * time.Second):
		// A process gpg started (an agent) kept the pipe open.
		statusR.Close()
		status = <-statusC
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if plain.over {
		return nil, fmt.Errorf("%w: plaintext over %d bytes", ErrTooLarge, max)
	}
	st := ParseStatus(status)
	if err := st.Check(waitErr); err != nil {
		if msg := gpgMessages(stderr.buf.String()); msg != "" {
			err = fmt.Errorf("%w\ngpg said:\n%s", err, msg)
		}
		return nil, err
	}
	return &Result{
		Plaintext:     plain.buf.Bytes(),
		Encrypted:     st.DecryptionOkay,
		EncryptedTo:   st.EncTo,
		Signer:        st.ValidSig,
		SignerPrimary: st.ValidSigPrimary,
		SignerName:    st.GoodSigName,
		Status:        st.Lines,
	}, nil
}

// gpgMessages returns gpg's "gpg: …" diagnostic lines.
func gpgMessages(stderr string) string {
	var out []string
	for line := range strings.SplitSeq(stderr, "\n") {
		if strings.HasPrefix(line, "gpg: ") {
			out = append(out, "  "+line)
		}
	}
	return strings.Join(out, "\n")
}

// capWriter buffers up to max bytes and then fails.
type capWriter struct {
	buf  bytes.Buffer
	max  int64
	over bool
}

func (w *capWriter) Write(p []byte) (int, error) {
	if int64(w.buf.Len())+int64(len(p)) > w.max {
		w.over = true
		return 0, ErrTooLarge
	}
	return w.buf.Write(p)
}

// Status is what gpg's status lines ("[GNUPG:] KEYWORD args…") said about a
// message.
type Status struct {
	Lines           []string        // every status line, prefix removed
	EncTo           []string        // ENC_TO key IDs
	NoSecKey        int             // NO_SECKEY lines
	BeginDecryption bool            // BEGIN_DECRYPTION: the message is encrypted
	DecryptionOkay  bool            // DECRYPTION_OKAY
	NewSig          int             // NEWSIG lines: signatures met
	GoodSig         int             // GOODSIG lines
	GoodSigName     string          // the user ID of the first GOODSIG
	ValidSig        string          // fingerprint of the first VALIDSIG
	ValidSigPrimary string          // its primary key fingerprint, when given
	ValidSigs       int             // VALIDSIG lines
	Failures        map[string]bool // keywords that refuse the message (BADSIG, ERRSIG, …)
	// Errors holds the ERROR lines' location and error code, e.g.
	// {"pkdecrypt_failed", 11}; the low 16 bits of the code are a
	// libgpg-error code (11 is a bad passphrase).
	Errors      []StatusError
	badValidSig bool
}

// StatusError is one ERROR status line.
type StatusError struct {
	Location string
	Code     uint32
}

// gpgErrBadPassphrase is libgpg-error's GPG_ERR_BAD_PASSPHRASE.
const gpgErrBadPassphrase = 11

// failureKeywords are the status keywords after which a message is refused.
var failureKeywords = map[string]bool{
	"BADSIG": true, "ERRSIG": true, "EXPSIG": true, "EXPKEYSIG": true, "REVKEYSIG": true,
	"NO_PUBKEY": true, "DECRYPTION_FAILED": true, "BADMDC": true, "NODATA": true,
	"BAD_PASSPHRASE": true, "MISSING_PASSPHRASE": true, "FAILURE": true, "BADARMOR": true,
	"UNEXPECTED": true, "ERROR": true,
}

// ParseStatus reads gpg status output. Lines without the "[GNUPG:] " prefix
// are ignored.
func ParseStatus(out []byte) Status {
	var st Status
	for line := range strings.SplitSeq(string(out), "\n") {
		rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), "[GNUPG:] ")
		if !ok {
			continue
		}
		st.Lines = append(st.Lines, rest)
		keyword, args, _ := strings.Cut(rest, " ")
		fields := strings.Fields(args)
		if failureKeywords[keyword] {
			if st.Failures == nil {
				st.Failures = map[string]bool{}
			}
			st.Failures[keyword] = true
		}
		switch keyword {
		case "ENC_TO":
			if len(fields) > 0 && isHexString(fields[0]) {
				st.EncTo = append(st.EncTo, strings.ToUpper(fields[0]))
			}
		case "ERROR":
			if len(fields) >= 2 {
				code, _ := strconv.ParseUint(fields[1], 10, 32)
				st.Errors = append(st.Errors, StatusError{fields[0], uint32(code)})
			}
		case "NO_SECKEY":
			st.NoSecKey++
		case "BEGIN_DECRYPTION":
			st.BeginDecryption = true
		case "DECRYPTION_OKAY":
			st.DecryptionOkay = true
		case "NEWSIG":
			st.NewSig++
		case "GOODSIG":
			if st.GoodSig == 0 {
				if _, name, ok := strings.Cut(args, " "); ok {
					st.GoodSigName = unescapeStatus(name)
				}
			}
			st.GoodSig++
		case "VALIDSIG":
			st.ValidSigs++
			if len(fields) == 0 || !isFingerprint(fields[0]) || len(fields) >= 10 && !isFingerprint(fields[9]) {
				st.badValidSig = true
				continue
			}
			if st.ValidSig == "" {
				st.ValidSig = strings.ToUpper(fields[0])
				st.ValidSigPrimary = st.ValidSig
				if len(fields) >= 10 {
					st.ValidSigPrimary = strings.ToUpper(fields[9])
				}
			}
		}
	}
	return st
}

// Check decides, from the status lines and gpg's exit (waitErr), whether the
// message is accepted: gpg succeeded, every signature is good and valid
// (at least one), and an encrypted message was decrypted with its integrity
// checked.
func (st *Status) Check(waitErr error) error {
	f := st.Failures
	pkFailed := uint32(0)
	for _, e := range st.Errors {
		if e.Location == "pkdecrypt_failed" && pkFailed == 0 {
			pkFailed = e.Code & 0xffff
		}
	}
	switch {
	case f["BAD_PASSPHRASE"], pkFailed == gpgErrBadPassphrase:
		return ErrPassphrase
	case f["MISSING_PASSPHRASE"]:
		return ErrNoPassphrase
	case f["DECRYPTION_FAILED"] && pkFailed != 0:
		return fmt.Errorf("%w: gpg could not use the secret key (error code %d)", ErrNoSecretKey, pkFailed)
	case f["DECRYPTION_FAILED"] && len(st.EncTo) > 0 && st.NoSecKey >= len(st.EncTo):
		return ErrNoSecretKey
	case f["DECRYPTION_FAILED"], f["BADMDC"], f["NODATA"], f["BADARMOR"], f["UNEXPECTED"]:
		return fmt.Errorf("%w (gpg: %s)", ErrMalformed, keywords(f))
	case f["NO_PUBKEY"] && !f["BADSIG"]:
		return ErrUnknownSigner
	case f["BADSIG"], f["ERRSIG"], f["EXPSIG"], f["EXPKEYSIG"], f["REVKEYSIG"]:
		return fmt.Errorf("%w (gpg: %s)", ErrBadSignature, keywords(f))
	case waitErr != nil:
		var exit *exec.ExitError
		if errors.As(waitErr, &exit) {
			return fmt.Errorf("%w (gpg exited with status %d)", ErrMalformed, exit.ExitCode())
		}
		return fmt.Errorf("pgp: gpg: %w", waitErr)
	case len(f) > 0:
		return fmt.Errorf("%w (gpg: %s)", ErrMalformed, keywords(f))
	case st.NewSig == 0 && st.GoodSig == 0 && st.ValidSigs == 0:
		return ErrNotSigned
	case st.badValidSig:
		return fmt.Errorf("%w: malformed VALIDSIG status line", ErrBadSignature)
	case st.ValidSigs == 0 || st.GoodSig != st.ValidSigs || st.NewSig > st.ValidSigs:
		return fmt.Errorf("%w: not every signature is good and valid", ErrBadSignature)
	case (st.BeginDecryption || len(st.EncTo) > 0) && !st.DecryptionOkay:
		return fmt.Errorf("%w: decryption not confirmed", ErrMalformed)
	}
	return nil
}

// keywords lists the failure keywords met, sorted.
func keywords(f map[string]bool) string {
	return strings.Join(slices.Sorted(maps.Keys(f)), " ")
}

func isHexString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isHexDigit(s[i]) {
			return false
		}
	}
	return true
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// isFingerprint accepts v4 (40 hex digits) and v5/v6 (64) fingerprints.
func isFingerprint(s string) bool {
	return (len(s) == 40 || len(s) == 64) && isHexString(s)
}

// unescapeStatus undoes gpg's %XX escaping of status line text.
func unescapeStatus(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
