// Package logging builds the *slog.Logger of ykstack's servers from their
// log flags:
//
//	--log-level debug|info|warn|error   (-v, --verbose: debug)
//	--log-format text|json
//	--log-target stderr|journal|syslog
//	--syslog-addr NETWORK:ADDRESS        (with --log-target syslog)
//
// The targets:
//
//   - stderr: one line per record on standard error, with its time;
//   - journal: one line per record on standard error without the time, led
//     by the record's syslog priority as "<N>" (<7> debug, <6> info,
//     <4> warning, <3> error), which systemd-journald reads from a
//     service's standard output and error (SyslogLevelPrefix=, on by
//     default), so "journalctl -p warning" works;
//   - syslog: one message per record through log/syslog, facility daemon,
//     tagged with the program name, with the same priorities; to the local
//     syslog daemon (/dev/log) or to --syslog-addr, such as
//     "udp:loghost:514", "tcp:loghost:514" or "unixgram:/run/rsyslog.sock".
//
// The format applies to every target: key=value text or a JSON object.
//
// # Secrets
//
// ykstack's servers never log AES keys, API keys, passwords, full OTPs or
// decrypted token fields, at any level: a record names a token by its
// public ID. There is deliberately no switch to log them. An OTP that a
// log shows may still be unused (the KSM decrypts before the VAL has
// recorded the counter), so a log with OTPs would be a log of credentials;
// and the public ID with the result and, at debug, why an OTP was corrupt
// (private ID or CRC), is what a debugging session needs.
package logging

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"strings"
	"sync"

	"github.com/spf13/pflag"
)

// Formats and targets.
const (
	FormatText = "text"
	FormatJSON = "json"

	TargetStderr  = "stderr"
	TargetJournal = "journal"
	TargetSyslog  = "syslog"
)

// Config says how to log.
type Config struct {
	// Level is the least level logged.
	Level slog.Level
	// Format is FormatText or FormatJSON; empty means text.
	Format string
	// Target is TargetStderr, TargetJournal or TargetSyslog; empty means stderr.
	Target string
	// SyslogAddr is where TargetSyslog sends to, as "network:address"
	// ("udp:loghost:514", "unixgram:/dev/log"); empty means the local
	// syslog daemon.
	SyslogAddr string
	// Tag names the program in syslog messages. Required for TargetSyslog.
	Tag string
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Format {
	case "", FormatText, FormatJSON:
	default:
		errs = append(errs, fmt.Errorf("logging: format %q is not text or json", c.Format))
	}
	switch c.Target {
	case "", TargetStderr, TargetJournal:
		if c.SyslogAddr != "" {
			errs = append(errs, errors.New("logging: a syslog address goes with the syslog target"))
		}
	case TargetSyslog:
		if c.Tag == "" {
			errs = append(errs, errors.New("logging: no syslog tag"))
		}
		if c.SyslogAddr != "" {
			if _, _, err := splitAddr(c.SyslogAddr); err != nil {
				errs = append(errs, err)
			}
		}
	default:
		errs = append(errs, fmt.Errorf("logging: target %q is not stderr, journal or syslog", c.Target))
	}
	return errors.Join(errs...)
}

// splitAddr splits a syslog address "network:address".
func splitAddr(s string) (network, addr string, err error) {
	network, addr, ok := strings.Cut(s, ":")
	switch network {
	case "udp", "udp4", "udp6", "tcp", "tcp4", "tcp6", "unix", "unixgram":
	default:
		ok = false
	}
	if !ok || addr == "" {
		return "", "", fmt.Errorf("logging: syslog address %q is not NETWORK:ADDRESS with a network of udp, tcp, unix or unixgram", s)
	}
	return network, addr, nil
}

// New returns the logger cfg describes, writing to stderr for the stderr
// and journal targets, and a function that closes its syslog connection
// (a no-op for the other targets). Connecting to syslog is the only thing
// that can fail besides a bad cfg.
func New(cfg Config, stderr io.Writer) (*slog.Logger, func() error, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	noop := func() error { return nil }
	opts := &slog.HandlerOptions{Level: cfg.Level}
	switch cfg.Target {
	case "", TargetStderr:
		return slog.New(newFormat(cfg.Format, stderr, opts)), noop, nil
	case TargetJournal:
		s := &sink{out: func(l slog.Level, line []byte) error {
			b := make([]byte, 0, len(line)+3)
			b = fmt.Appendf(b, "<%d>", priority(l))
			_, err := stderr.Write(append(b, line...))
			return err
		}}
		return slog.New(newPrioHandler(cfg.Format, opts, s)), noop, nil
	}
	var network, addr string
	if cfg.SyslogAddr != "" {
		network, addr, _ = splitAddr(cfg.SyslogAddr)
	}
	w, err := syslog.Dial(network, addr, syslog.LOG_DAEMON|syslog.LOG_INFO, cfg.Tag)
	if err != nil {
		return nil, nil, fmt.Errorf("logging: connect to syslog: %w", err)
	}
	s := &sink{out: func(l slog.Level, line []byte) error {
		msg := strings.TrimSuffix(string(line), "\n")
		switch priority(l) {
		case syslog.LOG_DEBUG:
			return w.Debug(msg)
		case syslog.LOG_INFO:
			return w.Info(msg)
		case syslog.LOG_WARNING:
			return w.Warning(msg)
		default:
			return w.Err(msg)
		}
	}}
	return slog.New(newPrioHandler(cfg.Format, opts, s)), w.Close, nil
}

// priority maps a slog level to a syslog severity.
func priority(l slog.Level) syslog.Priority {
	switch {
	case l < slog.LevelInfo:
		return syslog.LOG_DEBUG
	case l < slog.LevelWarn:
		return syslog.LOG_INFO
	case l < slog.LevelError:
		return syslog.LOG_WARNING
	default:
		return syslog.LOG_ERR
	}
}

func newFormat(format string, w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	if format == FormatJSON {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// sink receives each formatted record with its level. Its mutex is held
// from prioHandler.Handle through the inner handler's single Write.
type sink struct {
	mu    sync.Mutex
	level slog.Level
	out   func(slog.Level, []byte) error
}

func (s *sink) Write(p []byte) (int, error) {
	if err := s.out(s.level, p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// prioHandler formats records with a text or JSON handler, without the
// time (the journal and syslog stamp their own), and passes each line to
// its sink with the record's level.
type prioHandler struct {
	inner slog.Handler
	s     *sink
}

func newPrioHandler(format string, opts *slog.HandlerOptions, s *sink) *prioHandler {
	o := *opts
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	return &prioHandler{inner: newFormat(format, s, &o), s: s}
}

func (h *prioHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *prioHandler) Handle(ctx context.Context, r slog.Record) error {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	h.s.level = r.Level
	return h.inner.Handle(ctx, r)
}

func (h *prioHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &prioHandler{inner: h.inner.WithAttrs(as), s: h.s}
}

func (h *prioHandler) WithGroup(name string) slog.Handler {
	return &prioHandler{inner: h.inner.WithGroup(name), s: h.s}
}

// ParseLevel parses a level name: debug, info, warn (or warning), error,
// in any case.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("logging: level %q is not debug, info, warn or error", s)
}

// Flags are the log flags of a server (see the package documentation).
type Flags struct {
	Level, Format, Target, SyslogAddr string
	Verbose                           bool
}

// Register adds the flags to fs, -v/--verbose included.
func (f *Flags) Register(fs *pflag.FlagSet) {
	fs.StringVar(&f.Level, "log-level", "info", "log records of `LEVEL` and above: debug, info, warn, error")
	fs.StringVar(&f.Format, "log-format", FormatText, "log `FORMAT`: text (key=value) or json")
	fs.StringVar(&f.Target, "log-target", TargetStderr, "log to `TARGET`: stderr, journal (stderr with <N> priorities, no time) or syslog")
	fs.StringVar(&f.SyslogAddr, "syslog-addr", "", "with --log-target syslog, send to `NETWORK:ADDR` (udp:host:514, unixgram:/dev/log; default: the local syslog)")
	fs.BoolVarP(&f.Verbose, "verbose", "v", false, "log at debug level (same as --log-level debug)")
}

// Config returns the Config the flags describe, tagged tag for syslog, or
// an error naming every problem.
func (f *Flags) Config(tag string) (Config, error) {
	cfg := Config{Format: f.Format, Target: f.Target, SyslogAddr: f.SyslogAddr, Tag: tag}
	var errs []error
	l, err := ParseLevel(f.Level)
	if err != nil {
		errs = append(errs, err)
	}
	cfg.Level = l
	if f.Verbose {
		cfg.Level = slog.LevelDebug
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	return cfg, errors.Join(errs...)
}
