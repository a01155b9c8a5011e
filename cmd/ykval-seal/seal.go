package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sealcli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

const defaultDSN = "sqlite:/var/lib/ykstack/ykval.db"

const usage = `Usage: ykval-seal status  [DB flags] [--kek-file FILE [--old-kek-file FILE]]
       ykval-seal seal    [DB flags] --kek-file FILE [--batch N] [--verbose]
       ykval-seal rotate  [DB flags] --kek-file NEW --old-kek-file OLD [--batch N] [--verbose]
       ykval-seal unseal  [DB flags] --kek-file FILE [--old-kek-file FILE] [--batch N] [--verbose]
       ykval-seal gen-kek FILE|-

Keep the API secrets of a YK-VAL database sealed at rest under a
key-encryption key (KEK), in place, while validation servers keep serving:

  status    how the secrets are stored: plaintext, sealed, or mixed, with counts per KEK
  seal      seal every plaintext secret under the KEK (widens a MySQL secret column first)
  rotate    re-seal every secret sealed under the old KEK under the new one
  unseal    store every secret as plaintext again (to share the database with the PHP YK-VAL)
  gen-kek   write a new random KEK to FILE (mode 0600, never overwritten) or to standard output

DB flags: --database DSN (env YKVAL_DB), --db-user USER, --db-passwd-file FILE (env YKVAL_DB_PASSWORD).
The KEK may also come from env YKVAL_KEK_FILE or YKVAL_KEK, or the systemd credential ykval-kek.

`

type options struct {
	db             cli.DBFlags
	kek            cli.ValKEKFlags
	batch          int
	verbose, help  bool
	command, param string
}

func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := pflag.NewFlagSet("ykval-seal", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	o.db.Register(fs, "YKVAL", defaultDSN)
	o.kek.Register(fs, "YKVAL")
	fs.IntVar(&o.batch, "batch", 100, "rows per transaction")
	fs.BoolVarP(&o.verbose, "verbose", "v", false, "report progress after every batch")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help")
	if err := fs.Parse(args); err != nil {
		return o, cli.Usagef("%v (see --help)", err)
	}
	if o.help {
		io.WriteString(stdout, usage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return o, pflag.ErrHelp
	}
	if fs.NArg() == 0 {
		return o, cli.Usagef("give a command: status, seal, rotate, unseal or gen-kek (see --help)")
	}
	o.command = fs.Arg(0)
	want := 1
	switch o.command {
	case "status", "seal", "rotate", "unseal":
	case "gen-kek":
		want = 2
		if fs.NArg() < 2 {
			return o, cli.Usagef("gen-kek needs a FILE to write (or - for standard output)")
		}
		o.param = fs.Arg(1)
	default:
		return o, cli.Usagef("unknown command %q: want status, seal, rotate, unseal or gen-kek", o.command)
	}
	if fs.NArg() > want {
		return o, cli.Usagef("unexpected argument %q", fs.Arg(want))
	}
	if o.batch < 1 {
		return o, cli.Usagef("--batch %d: must be at least 1", o.batch)
	}
	return o, nil
}

func run(ctx context.Context, env cli.Env) error {
	o, err := parseArgs(env.Args, env.Stdout)
	if err != nil {
		return err
	}
	if o.command == "gen-kek" {
		return genKEK(env, o.param)
	}
	cfg, err := o.db.Config(env.Lookup)
	if err != nil {
		return err
	}
	sealer, err := o.kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	if err := sqldb.RequireExisting(cfg.DSN); err != nil {
		return err
	}
	if o.command == "status" {
		return status(ctx, env, cfg, sealer)
	}
	if sealer == nil {
		return cli.Usagef("%s needs the KEK: give --kek-file (or env YKVAL_KEK_FILE, YKVAL_KEK)", o.command)
	}
	var op sealcli.Op
	switch o.command {
	case "seal":
		op = sealcli.Seal
	case "rotate":
		if len(sealer.KeyIDs()) < 2 {
			return cli.Usagef("rotate needs the new KEK (--kek-file) and a different old one (--old-kek-file)")
		}
		op = sealcli.Rotate
	case "unseal":
		op = sealcli.Unseal
	}
	return convert(ctx, env, o, cfg, sealer, op)
}

// genKEK writes a new KEK to name, or to standard output for "-".
func genKEK(env cli.Env, name string) error {
	raw := valseal.GenerateKEK()
	k, err := valseal.NewKEK(raw)
	if err != nil {
		return err
	}
	return sealcli.WriteKEK(env.Stdout, name, valseal.FormatKEK(raw), k.ID())
}

// tool is what ykval-seal says about the API clients' secrets.
var tool = sealcli.Tool{
	Things:      "secrets",
	Column:      "secret",
	Empty:       "empty secrets",
	ColumnWidth: valseal.ColumnWidth,
	Moved:       "rows moved to another client id",
	Named:       "clients ",
	Servers:     "validation servers",
	Daemon:      "ykvald",
	PHP:         "YK-VAL",
	WrongKEK:    sqlstore.ErrWrongKEK,
}

// status prints how the database keeps its secrets. It needs no KEK; with
// one it says which KEKs are configured.
func status(ctx context.Context, env cli.Env, cfg sqldb.Config, sealer *valseal.Sealer) error {
	return tool.PrintStatus(ctx, env.Stdout, func(ctx context.Context) (sealcli.Store, error) {
		st, err := sqlstore.OpenExisting(ctx, cfg)
		return store{st}, err
	}, sealcli.KEKsOf(sealer))
}

// convert seals, rotates or unseals in place and reports the result.
func convert(ctx context.Context, env cli.Env, o options, cfg sqldb.Config, sealer *valseal.Sealer, op sealcli.Op) error {
	return tool.Convert(ctx, env.Stdout, env.Stderr, func(ctx context.Context) (sealcli.Store, error) {
		st, err := sqlstore.OpenExistingOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
		return store{st}, err
	}, sealcli.Conversion{Op: op, KEKs: sealcli.KEKsOf(sealer), Batch: o.batch, Verbose: o.verbose})
}

// store is a VAL store as package sealcli sees it: its client secrets.
type store struct{ *sqlstore.Store }

// ops maps the conversions onto the store's.
var ops = map[sealcli.Op]sqlstore.ConvertOp{sealcli.Seal: sqlstore.Seal, sealcli.Rotate: sqlstore.Rotate, sealcli.Unseal: sqlstore.Unseal}

func (s store) Database() string { return fmt.Sprintf("%s (%s)", s.DB().Name, s.DB().Dialect) }

func (s store) Status(ctx context.Context) (sealcli.Status, error) {
	st, err := s.SecretStatus(ctx)
	return sealcli.Status{Mode: st.Mode(), Plaintext: st.Plaintext, Sealed: st.Sealed, SealedTotal: st.SealedTotal(),
		Malformed: st.Malformed, Empty: st.Empty}, err
}

func (s store) ColumnWidth(ctx context.Context) (int, error) { return s.SecretColumnWidth(ctx) }

func (s store) Widen(ctx context.Context) (bool, error) { return s.WidenSecrets(ctx) }

func (s store) Convert(ctx context.Context, op sealcli.Op, batch int, progress func(scanned, changed int)) (sealcli.Result, error) {
	opts := sqlstore.ConvertOptions{BatchSize: batch, Progress: func(r sqlstore.ConvertResult) { progress(r.Scanned, r.Changed) }}
	r, err := s.ConvertSecrets(ctx, ops[op], opts)
	return sealcli.Result{Scanned: r.Scanned, Changed: r.Changed, Raced: r.Raced, Failed: sealcli.Names(r.Failed, clientID)}, err
}

// clientID names a client in an error.
func clientID(id int64) string { return strconv.FormatInt(id, 10) }
