package main

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valcsv"
)

// defaultDSN is the database used when neither --database nor $YKVAL_DB names one.
const defaultDSN = "sqlite:/var/lib/ykstack/ykval.db"

const usage = `Usage: ykval-import [--help] [--database DSN] [--db-user USER]
                    [--db-passwd-file FILE | --db-passwd PASSWD] < FILE

Read YubiKey counter data, as ykval-export writes it, from standard input
into a YK-VAL database:

  active,created,modified,yk_publicname,yk_counter,yk_use,yk_low,yk_high,nonce,notes

Known keys are updated only when the line's counters are ahead of the
stored ones. All lines are checked first and imported in one transaction.

Options:
`

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykval-import", pflag.ContinueOnError)
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
	keys, err := valcsv.ReadKeys(env.Stdin)
	if err != nil {
		return fmt.Errorf("standard input, nothing imported: %w", err)
	}
	store, err := sqlstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.ImportKeys(ctx, keys); err != nil {
		return fmt.Errorf("nothing imported: %w", err)
	}
	_, err = io.WriteString(env.Stdout, "Successfully imported yubikeys to database\n")
	return err
}
