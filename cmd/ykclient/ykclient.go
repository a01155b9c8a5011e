package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

// defaultURL is the original's default server.
const defaultURL = "https://api.yubico.com/wsapi/2.0/verify"

const usage = `Usage: ykclient [OPTION]... CLIENT_ID OTP
Check the YubiKey one-time password OTP with validation servers, as API
client CLIENT_ID.

Exit status: 0 if the OTP is valid, 1 for a hard failure, 2 if the OTP was
replayed, 3 for any other failure to validate it.

`

// Exit codes.
const (
	exitOK       = 0
	exitFailure  = 1
	exitReplayed = 2
	exitRejected = 3
)

// verdict is the outcome of a check, numbered as in yubico-c-client.
type verdict struct {
	code int
	text string
}

var (
	verdictOK        = verdict{0, "Success"}
	verdictParse     = verdict{101, "Could not parse the server's response"}
	verdictServerSig = verdict{107, "The server's response signature is wrong (BAD_SERVER_SIGNATURE)"}
	verdictNoServer  = verdict{109, "Could not get an answer from any validation server"}
	verdictBadInput  = verdict{110, "The OTP is not 32 to 48 modhex characters"}
)

var statusVerdicts = map[val.Status]verdict{
	val.StatusBadOTP:              {1, "The OTP is invalid (BAD_OTP)"},
	val.StatusReplayedOTP:         {2, "The OTP was used before (REPLAYED_OTP)"},
	val.StatusBadSignature:        {3, "The request's signature is wrong (BAD_SIGNATURE)"},
	val.StatusMissingParameter:    {4, "The request lacks a parameter (MISSING_PARAMETER)"},
	val.StatusNoSuchClient:        {5, "The client id is unknown (NO_SUCH_CLIENT)"},
	val.StatusOperationNotAllowed: {6, "The client may not do this (OPERATION_NOT_ALLOWED)"},
	val.StatusBackendError:        {7, "The server failed internally (BACKEND_ERROR)"},
	val.StatusNotEnoughAnswers:    {8, "Too few servers of the sync pool answered (NOT_ENOUGH_ANSWERS)"},
	val.StatusReplayedRequest:     {9, "The request was seen before (REPLAYED_REQUEST)"},
}

// verdictOf maps Verify's outcome to a verdict.
func verdictOf(err error) verdict {
	var se *valclient.StatusError
	switch {
	case err == nil:
		return verdictOK
	case errors.As(err, &se):
		if v, ok := statusVerdicts[se.Status]; ok {
			return v
		}
	case errors.Is(err, valclient.ErrInvalidOTP):
		return verdictBadInput
	case errors.Is(err, valclient.ErrBadServerSignature):
		return verdictServerSig
	case errors.Is(err, val.ErrMalformedResponse), errors.Is(err, valclient.ErrEchoMismatch),
		errors.Is(err, valclient.ErrUnknownStatus):
		return verdictParse
	}
	return verdictNoServer
}

// rejectedError is a check that did not end in OK; run has printed its verdict.
type rejectedError struct {
	v   verdict
	err error
}

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// exitCode prints err unless it is a verdict already printed, and returns
// the exit status for it.
func exitCode(stderr io.Writer, err error) int {
	var rej *rejectedError
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &rej):
		if _, isStatus := errors.AsType[*valclient.StatusError](err); !isStatus {
			fmt.Fprintf(stderr, "ykclient: %v\n", err) // the details behind 101/107/109/110
		}
		if rej.v.code == statusVerdicts[val.StatusReplayedOTP].code {
			return exitReplayed
		}
		return exitRejected
	default:
		fmt.Fprintf(stderr, "ykclient: %v\n", err)
		return exitFailure
	}
}

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykclient", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		urls                  []string
		ca, cai, key, keyFile string
		sl                    string
		timeout               time.Duration
		debug, help           bool
	)
	fs.StringArrayVar(&urls, "url", nil, "validation service `URL` (repeatable: all are asked at once; default "+defaultURL+")")
	fs.StringVar(&ca, "ca", "", "trust the CA certificates in `PATH`, a PEM file or a directory of them, instead of the system's")
	fs.StringVar(&cai, "cai", "", "same as --ca, for a `FILE`")
	fs.StringVar(&key, "apikey", "", "base64 API `KEY` to sign requests and check responses (visible in ps: prefer --apikey-file or $YKCLIENT_APIKEY)")
	fs.StringVar(&keyFile, "apikey-file", "", "read the API key from `FILE`")
	fs.StringVar(&sl, "sl", "", "sync `LEVEL` to ask for: fast, secure or 1-100 (default: the server's)")
	fs.DurationVar(&timeout, "timeout", valclient.DefaultTimeout, "give up after `D`")
	fs.BoolVar(&debug, "debug", false, "print the inputs, requests, raw responses and response fields")
	fs.BoolVarP(&help, "help", "h", false, "print this help")
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if help {
		fs.SetOutput(env.Stdout)
		io.WriteString(env.Stdout, usage)
		fs.PrintDefaults()
		return pflag.ErrHelp
	}
	if fs.NArg() != 2 {
		return cli.Usagef("want CLIENT_ID and OTP, have %d arguments (see --help)", fs.NArg())
	}
	id, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || id < 1 {
		return cli.Usagef("client id %q: must be a positive integer", fs.Arg(0))
	}
	otp := fs.Arg(1)
	if len(urls) == 0 {
		urls = []string{defaultURL}
	}
	if key == "" && keyFile != "" {
		b, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("API key file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" {
		key = env.Lookup("YKCLIENT_APIKEY")
	}
	if timeout <= 0 {
		return cli.Usagef("--timeout %v: must be positive", timeout)
	}
	hc := &http.Client{}
	if ca != "" || cai != "" {
		pool := x509.NewCertPool()
		for _, p := range []string{ca, cai} {
			if p != "" {
				if err := addCAs(pool, p); err != nil {
					return err
				}
			}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
	logger := slog.New(slog.DiscardHandler)
	if debug {
		logger = cli.NewLogger(env.Stderr, true)
		fmt.Fprintln(env.Stderr, "Input:")
		for i, u := range urls {
			fmt.Fprintf(env.Stderr, "  validation URL %d: %s\n", i+1, u)
		}
		for _, p := range []string{ca, cai} {
			if p != "" {
				fmt.Fprintf(env.Stderr, "  CA: %s\n", p)
			}
		}
		fmt.Fprintf(env.Stderr, "  client id: %d\n", id)
		if pub, err := valclient.PublicID(otp); err == nil {
			fmt.Fprintf(env.Stderr, "  token: %s… (token part hidden)\n", pub)
		}
		fmt.Fprintf(env.Stderr, "  api key: %s\n", map[bool]string{true: "set", false: "none (unsigned)"}[key != ""])
	}
	c, err := valclient.New(valclient.Config{
		URLs: urls, ClientID: id, APIKey: key, Timeout: timeout, SyncLevel: sl, HTTPClient: hc, Logger: logger,
	})
	if err != nil {
		return cli.Usagef("%v", err)
	}

	res, err := c.Verify(ctx, otp)
	v := verdictOf(err)
	if debug && res.URL != "" {
		fmt.Fprintf(env.Stdout, "Response from: %s\n", res.URL)
	}
	fmt.Fprintf(env.Stdout, "Verification output (%d): %s\n", v.code, v.text)
	if debug && res.URL != "" {
		for _, k := range []string{"otp", "nonce", "t", "timestamp", "sessioncounter", "sessionuse", "sl", "status"} {
			if v, ok := res.Reply.Lookup(k); ok {
				fmt.Fprintf(env.Stdout, "  %s: %s\n", k, v)
			}
		}
	}
	if err != nil {
		return &rejectedError{v, err}
	}
	return nil
}

// addCAs adds the PEM certificates of a file, or of every regular file in a
// directory, to pool, and fails when it finds none.
func addCAs(pool *x509.CertPool, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	files := []string{path}
	if fi.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return fmt.Errorf("CA: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if e.Type().IsRegular() || e.Type()&os.ModeSymlink != 0 {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	found := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			if fi.IsDir() {
				continue // a dangling link or unreadable file among many
			}
			return fmt.Errorf("CA: %w", err)
		}
		if pool.AppendCertsFromPEM(b) {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("CA: no PEM certificate in %s", path)
	}
	return nil
}
