package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
)

// loadFlags are the flags every load subcommand takes.
type loadFlags struct {
	url         string
	client      string
	label       string
	out         string
	timeout     time.Duration
	cfg         loadConfig
	keys        keySource
	keysDB      cli.DBFlags
	counterBase int
	dbPrefix    string // environment prefix of the key database flags
	tls         tlsClientFlags
}

func (f *loadFlags) register(fs *pflag.FlagSet, dbPrefix string) {
	f.dbPrefix = dbPrefix
	fs.StringVar(&f.url, "url", "", "base `URL` of the server, http://127.0.0.1:PORT or https://127.0.0.1:PORT (loopback only)")
	fs.StringVar(&f.client, "client", clientRaw, "HTTP client: raw (lean HTTP/1.1, one connection per worker) or std (net/http)")
	fs.StringVar(&f.label, "label", "", "scenario name to record with the result")
	fs.StringVar(&f.out, "out", "", "append the JSON result line to `file`")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.IntVarP(&f.cfg.Concurrency, "concurrency", "c", 1, "concurrent workers, each with its own keep-alive connection")
	fs.DurationVarP(&f.cfg.Duration, "duration", "d", 10*time.Second, "measured time")
	fs.DurationVar(&f.cfg.Warmup, "warmup", 2*time.Second, "unmeasured time before measuring")
	fs.Int64Var(&f.cfg.MaxRequests, "max-requests", 5_000_000, "stop after this many requests (warmup included)")
	fs.StringVar(&f.keys.file, "keys", "", "key `file` in ykksm-gen-keys' format (plain text)")
	fs.IntVar(&f.keys.maxKeys, "max-keys", 0, "use at most this many keys (0: all)")
	f.keysDB.Register(fs, dbPrefix, "")
	fs.IntVar(&f.counterBase, "counter", 1, "session counter of each key's first OTP")
	f.tls.register(fs)
}

// validate reports every problem of the flags at once.
func (f *loadFlags) validate() error {
	errs := []error{f.cfg.validate()}
	if f.client != clientRaw && f.client != clientStd {
		errs = append(errs, fmt.Errorf("--client must be %q or %q", clientRaw, clientStd))
	}
	if f.counterBase < 0 || f.counterBase > maxCounter {
		errs = append(errs, fmt.Errorf("--counter must be 0 to %d", maxCounter))
	}
	if f.timeout <= 0 {
		errs = append(errs, errors.New("--timeout must be positive"))
	}
	errs = append(errs, f.tls.validate())
	if f.tls.http2 && f.client != clientStd {
		errs = append(errs, errors.New("--http2 needs --client std"))
	}
	return errors.Join(errs...)
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name string, stderr io.Writer) *pflag.FlagSet {
	fs := pflag.NewFlagSet("ykbench "+name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	return fs
}

// parseFlags parses args, marking errors as usage errors (--help stays
// pflag.ErrHelp, which exits 0).
func parseFlags(fs *pflag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, pflag.ErrHelp) {
		return err
	}
	return cli.Usagef("%v", err)
}
