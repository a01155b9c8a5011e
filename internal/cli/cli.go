// Package cli holds what ykstack's command-line mains share: the database
// flags every tool takes (named like the original Perl and PHP tools), secrets
// read from files or the environment rather than argv, the logger, and the
// exit-code convention (0 ok, 1 runtime failure, 2 usage).
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/sqldb"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// ErrUsage marks an error in how a command was called; Run maps it to ExitUsage.
var ErrUsage = errors.New("usage error")

// Usagef returns an error wrapping ErrUsage.
func Usagef(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrUsage, fmt.Sprintf(format, a...))
}

// Env is what a command's run function gets instead of globals, so tests can call it.
type Env struct {
	Args   []string // without the program name
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// OSEnv returns the process's own Env.
func OSEnv() Env {
	return Env{Args: os.Args[1:], Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
}

// Main runs run with the process's Env and a context cancelled by SIGINT or
// SIGTERM, prints its error, and exits with its code.
func Main(name string, run func(ctx context.Context, env Env) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, OSEnv())
	stop()
	os.Exit(Report(name, os.Stderr, err))
}

// Report prints err (if any) as "name: err" and returns the exit code for it.
// pflag.ErrHelp exits 0 after the usage text the flag set already printed.
func Report(name string, stderr io.Writer, err error) int {
	switch {
	case err == nil, errors.Is(err, pflag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return ExitFailure
	}
}

// DBFlags are the database flags every tool takes:
//
//	--database DSN (alias --db)   any form sqldb.ParseDSN takes
//	--db-user USER                MySQL user (overrides the DSN's)
//	--db-passwd PASSWD            MySQL password; visible in ps, prefer the next two
//	--db-passwd-file FILE         MySQL password from the first line of FILE
//
// and the environment variables PREFIX_DB and PREFIX_DB_PASSWORD (e.g.
// YKKSM_DB, YKKSM_DB_PASSWORD), used when the flags are not given.
type DBFlags struct {
	DSN, User, Password, PasswordFile string
	prefix, def                       string
}

// Register adds the flags to fs. prefix names the environment variables and
// def is the DSN used when neither flag nor environment gives one.
func (f *DBFlags) Register(fs *pflag.FlagSet, prefix, def string) {
	f.prefix, f.def = prefix, def
	fs.StringVar(&f.DSN, "database", "", "database `DSN`: sqlite:PATH, mysql:GO-DSN or DBI:mysql:dbname=N;host=H (env "+prefix+"_DB; default "+def+")")
	fs.StringVar(&f.DSN, "db", "", "same as --database")
	fs.StringVar(&f.User, "db-user", "", "database `user` (MySQL)")
	fs.StringVar(&f.Password, "db-passwd", "", "database `password` (MySQL; shown in ps: prefer --db-passwd-file or "+prefix+"_DB_PASSWORD)")
	fs.StringVar(&f.PasswordFile, "db-passwd-file", "", "read the database password from `file`")
}

// Config resolves the flags and environment into a sqldb.Config.
func (f *DBFlags) Config(getenv func(string) string) (sqldb.Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	cfg := sqldb.Config{DSN: f.DSN, User: f.User, Password: f.Password}
	if cfg.DSN == "" {
		cfg.DSN = getenv(f.prefix + "_DB")
	}
	if cfg.DSN == "" {
		cfg.DSN = f.def
	}
	if cfg.Password == "" && f.PasswordFile != "" {
		b, err := os.ReadFile(f.PasswordFile)
		if err != nil {
			return cfg, fmt.Errorf("read password file: %w", err)
		}
		cfg.Password, _, _ = strings.Cut(strings.TrimRight(string(b), "\r\n"), "\n")
		cfg.Password = strings.TrimRight(cfg.Password, "\r")
	}
	if cfg.Password == "" {
		cfg.Password = getenv(f.prefix + "_DB_PASSWORD")
	}
	if _, err := sqldb.ParseDSN(cfg.DSN); err != nil {
		return cfg, Usagef("%v", err)
	}
	return cfg, nil
}

// NewLogger returns a text logger on w at Info level, or Debug when verbose.
func NewLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// Lookup returns the environment variable key through e.Getenv, or os.Getenv when that is nil.
func (e Env) Lookup(key string) string {
	if e.Getenv == nil {
		return os.Getenv(key)
	}
	return e.Getenv(key)
}
