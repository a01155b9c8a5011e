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

const usage = `Usage: ykval-export [--help] [--database DSN] [--db-user USER]
                    [--db-passwd-file FILE | --db-passwd PASSWD]

Write every YubiKey's counters from a YK-VAL database to standard output,
one line per key ordered by public name:

  active,created,modified,yk_publicname,yk_counter,yk_use,yk_low,yk_high,nonce,notes

Options:
`

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykval-export", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		help bool
		db   cli.DBFlags
	)
	fs.BoolVarP(&help, "help", "h", false, "print this help")
	db.Register(fs, "YKVAL", defaultDSN)
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
	store, err := sqlstore.OpenExisting(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	return export(ctx, store, env.Stdout)
}

// export writes every key state of s to w as YubiKey info lines.
func export(ctx context.Context, s val.Store, w io.Writer) error {
	bw := bufio.NewWriter(w)
	err := s.EachKey(ctx, func(k val.KeyState) error {
		_, err := io.WriteString(bw, valcsv.FormatKey(k)+"\n")
		return err
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}
