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

const usage = `Usage: ykval-import-clients [--help] [--database DSN] [--db-user USER]
                            [--db-passwd-file FILE | --db-passwd PASSWD] [--kek-file FILE] < FILE

Read API clients, as ykval-export-clients writes them, from standard input
into a YK-VAL database:

  id,active,created,secret,email,notes,otp

Clients whose id exists already are left as they are. All lines are checked
first and imported in one transaction.

Options:
`

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykval-import-clients", pflag.ContinueOnError)
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
	clients, err := valcsv.ReadClients(env.Stdin)
	if err != nil {
		return fmt.Errorf("standard input, nothing imported: %w", err)
	}
	sealer, err := kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	store, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.ImportClients(ctx, clients); err != nil {
		return fmt.Errorf("nothing imported: %w", err)
	}
	_, err = io.WriteString(env.Stdout, "Successfully imported clients to database\n")
	return err
}
