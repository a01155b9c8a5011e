package main

import (
	"bufio"
	"context"
	"io"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valcsv"
)

// defaultDSN is the database used when neither --database nor $YKVAL_DB names one.
const defaultDSN = "sqlite:/var/lib/ykstack/ykval.db"

const usage = `Usage: ykval-export-clients [--help] [--database DSN] [--db-user USER]
                            [--db-passwd-file FILE | --db-passwd PASSWD] [--kek-file FILE]

Write every API client of a YK-VAL database, secrets included, to standard
output, one line per client ordered by id:

  id,active,created,secret,email,notes,otp

Options:
`

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykval-export-clients", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		help bool
		db   cli.DBFlags
	)
	fs.BoolVarP(&help, "help", "h", false, "print this help")
	db.Register(fs, "YKVAL", defaultDSN)
	var kek cli.ValKEKFlags
	kek.Register(fs, "YKVAL")
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if help {
		io.WriteString(env.Stdout, usage)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		return pflag.ErrHelp
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (see --help)", fs.Arg(0))
	}
	cfg, err := db.Config(env.Lookup)
	if err != nil {
		return err
	}
	sealer, err := kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	store, err := sqlstore.OpenExistingOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return err
	}
	defer store.Close()
	return export(ctx, store, env.Stdout)
}

// export writes every client of s to w as client info lines.
func export(ctx context.Context, s val.Store, w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := s.EachClient(ctx, func(c val.Client) error {
		_, err := io.WriteString(bw, valcsv.FormatClient(c)+"\n")
		return err
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}
