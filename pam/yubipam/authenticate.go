package yubipam

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// OTPTokenLength is the length of an OTP's encrypted part in modhex.
const OTPTokenLength = 32

// maxOTPLength caps the OTP part, as the original does.
const maxOTPLength = 48

// Env is what Authenticate needs besides the transaction. The zero Env works:
// logs are discarded, debug_file=stdout/stderr write to os.Stdout/os.Stderr
// and the real validation servers and mapping sources are used.
type Env struct {
	// Log receives operational messages (unknown arguments, failures), for
	// the system log. Never secrets. nil discards.
	Log *slog.Logger
	// Stdout and Stderr are the debug_file=stdout and debug_file=stderr
	// targets; nil means os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
	// NewVerifier builds the verifier; nil means NewServerVerifier.
	NewVerifier func(ServerOptions) (Verifier, error)
	// Mapping, when set, replaces the mapping the arguments choose.
	Mapping Mapping
}

// Authenticate runs pam_sm_authenticate's client mode for args and returns
// the code the module must return. The order of checks and the code of each
// case are those of the original (see the package documentation).
func Authenticate(ctx context.Context, tx Transaction, args []string, env Env) Code {
	if env.Log == nil {
		env.Log = slog.New(slog.DiscardHandler)
	}
	if env.Stdout == nil {
		env.Stdout = os.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = os.Stderr
	}
	cfg, unknown := ParseArgs(args)
	for _, a := range unknown {
		name, _, _ := strings.Cut(a, "=") // never the value: it may be a mistyped secret
		env.Log.Warn("ignoring unknown argument", "arg", name)
	}
	dbg, closeDebug := openDebug(cfg, env, env.Log)
	defer closeDebug()
	dbg.Debug("called", "args", strings.Join(Redact(args), " "))

	a := &auth{cfg: cfg, tx: tx, env: env, log: env.Log, dbg: dbg}
	code := a.run(ctx)
	if cfg.AlwaysOK && code != Success {
		dbg.Debug("alwaysok: turning the result into success", "result", code.String())
		env.Log.Warn("alwaysok is set: accepting a failed authentication", "result", code.String())
		code = Success
	}
	dbg.Debug("done", "result", code.String())
	return code
}

// auth is one run of Authenticate.
type auth struct {
	cfg Config
	tx  Transaction
	env Env
	log *slog.Logger // system log
	dbg *slog.Logger // debug output
}

func (a *auth) run(ctx context.Context) Code {
	cfg := a.cfg
	if cfg.TokenIDLength > MaxTokenIDLength {
		a.log.Error("token_id_length too large", "token_id_length", cfg.TokenIDLength, "max", MaxTokenIDLength)
		return AuthinfoUnavail
	}
	user, err := a.tx.User()
	if err != nil {
		a.dbg.Debug("cannot get the user name", "err", err)
		return codeOf(err)
	}
	a.dbg.Debug("user", "user", user)
	if cfg.Mode == "challenge-response" {
		a.log.Error("mode=challenge-response is not supported (offline USB keys); use client mode")
		return AuthinfoUnavail
	}
	if cfg.MySQLServer != "" {
		a.log.Error("mysql_server is not supported; use authfile or LDAP")
		return AuthinfoUnavail
	}

	input, haveInput := "", false
	if cfg.TryFirstPass || cfg.UseFirstPass {
		tok, ok, err := a.tx.Authtok()
		if err != nil {
			return codeOf(err)
		}
		if !ok && cfg.UseFirstPass {
			a.dbg.Debug("use_first_pass: no PAM_AUTHTOK from an earlier module")
			return AuthErr
		}
		input, haveInput = tok, ok
		a.dbg.Debug("first_pass", "have_authtok", ok)
	}

	opts, err := a.serverOptions()
	if err != nil {
		a.log.Error("validation server settings", "err", err)
		return AuthinfoUnavail
	}
	mapping, err := a.mapping()
	if err != nil {
		a.log.Error("token mapping settings", "err", err)
		return AuthinfoUnavail
	}

	if !cfg.AlwaysPrompt {
		pctx, cancel := context.WithTimeout(ctx, cfg.TotalTimeout())
		m, err := a.lookup(pctx, mapping, user, "", true)
		cancel()
		if err != nil {
			a.log.Error("token lookup failed", "user", user, "err", err)
			return AuthinfoUnavail
		}
		if m == NoTokens {
			a.dbg.Debug("user has no tokens", "user", user)
			return a.noTokens()
		}
	}

	if !haveInput {
		style := PromptEchoOff
		if cfg.VerboseOTP {
			style = PromptEchoOn
		}
		resp, ok, err := a.tx.Prompt(style, "YubiKey for `"+user+"': ")
		if err != nil {
			a.dbg.Debug("conversation failed", "err", err)
			return codeOf(err)
		}
		if !ok {
			a.dbg.Debug("conversation returned no answer")
			return AuthErr
		}
		input = resp
	}

	otp, password, hasPassword := split(input, int(cfg.TokenIDLength))
	if hasPassword {
		if err := a.tx.SetAuthtok(password); err != nil {
			a.dbg.Debug("cannot set PAM_AUTHTOK", "err", err)
			return codeOf(err)
		}
		a.dbg.Debug("password part handed on as PAM_AUTHTOK")
	}
	id := otp
	if len(id) > int(cfg.TokenIDLength) {
		id = id[:cfg.TokenIDLength]
	}

	// One deadline for the lookup and the validation: the module never
	// works longer than the timeout without news for the application.
	ctx, cancel := context.WithTimeout(ctx, cfg.TotalTimeout())
	defer cancel()
	m, err := a.lookup(ctx, mapping, user, id, false)
	switch {
	case err != nil:
		a.log.Error("token lookup failed", "user", user, "err", err)
		return AuthinfoUnavail
	case m == NoTokens:
		a.dbg.Debug("user has no tokens", "user", user)
		return a.noTokens()
	case m == NotListed:
		a.log.Info("token not listed for the user; validation server not asked", "user", user)
		return AuthErr
	}
	a.dbg.Debug("token listed for the user", "user", user, "public_id", id, "otp_length", len(otp))

	newVerifier := a.env.NewVerifier
	if newVerifier == nil {
		newVerifier = func(o ServerOptions) (Verifier, error) { return NewServerVerifier(o) }
	}
	v, err := newVerifier(opts)
	if err != nil {
		a.log.Error("validation client", "err", err)
		return AuthinfoUnavail
	}
	start := time.Now()
	err = v.Verify(ctx, otp)
	code := VerifyCode(err)
	a.dbg.Debug("validation", "result", code.String(), "err", err, "elapsed", time.Since(start))
	switch code {
	case Success:
		a.log.Info("OTP accepted", "user", user, "public_id", id)
	case AuthErr:
		a.log.Info("OTP refused", "user", user, "public_id", id, "err", err)
	default:
		a.log.Error("OTP could not be validated", "user", user, "public_id", id, "err", err)
	}
	return code
}

// noTokens is the code for a user without tokens.
func (a *auth) noTokens() Code {
	if a.cfg.NullOK {
		return Ignore
	}
	return UserUnknown
}

// lookup asks the mapping and logs the answer.
func (a *auth) lookup(ctx context.Context, m Mapping, user, id string, anyID bool) (Match, error) {
	match, err := m.Lookup(ctx, user, id, anyID)
	a.dbg.Debug("token lookup", "user", user, "any", anyID, "match", match.String(), "err", err)
	return match, err
}

// split separates input into the OTP (its last idLen+32 characters) and,
// when input is longer than that, the password typed before it. The OTP is
// capped at 48 characters.
func split(input string, idLen int) (otp, password string, hasPassword bool) {
	n := idLen + OTPTokenLength
	otp = input
	if len(input) > n {
		password, otp, hasPassword = input[:len(input)-n], input[len(input)-n:], true
	}
	if len(otp) > maxOTPLength {
		otp = otp[:maxOTPLength]
	}
	return otp, password, hasPassword
}

// serverOptions checks the validation-server arguments (libykclient's init
// step) and returns the verifier settings.
func (a *auth) serverOptions() (ServerOptions, error) {
	cfg := a.cfg
	urls, err := cfg.urls()
	if err != nil {
		return ServerOptions{}, err
	}
	key := cfg.Key
	if cfg.KeyFile != "" {
		key, err = readSecretFile(cfg.KeyFile)
		if err != nil {
			return ServerOptions{}, fmt.Errorf("key_file: %w", err)
		}
	}
	return ServerOptions{
		URLs:     urls,
		ClientID: int64(cfg.ClientID),
		Key:      key,
		CAPath:   cfg.CAPath,
		CAInfo:   cfg.CAInfo,
		Proxy:    cfg.Proxy,
		Timeout:  cfg.TotalTimeout(),
		Log:      a.dbg,
	}, nil
}

// mapping returns the token mapping the arguments choose: LDAP when
// ldap_uri or ldapserver is set, else authfile, else the per-user file.
func (a *auth) mapping() (Mapping, error) {
	switch {
	case a.env.Mapping != nil:
		return a.env.Mapping, nil
	case a.cfg.usesLDAP():
		m, err := newLDAPMapping(a.cfg, a.tx, a.dbg)
		if err != nil {
			return nil, err
		}
		return m, nil
	case a.cfg.AuthFile != "":
		return FileMapping{Path: a.cfg.AuthFile}, nil
	}
	return UserFileMapping{}, nil
}

// readSecretFile returns the first line of a file holding a secret, without
// surrounding blanks. The file must be a regular file.
func readSecretFile(path string) (string, error) {
	f, err := openRegular(path, 0) // O_RDONLY
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", errors.New("yubipam: empty secret file")
	}
	return line, nil
}
