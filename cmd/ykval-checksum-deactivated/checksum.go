package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"io"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valcsv"
)

// defaultDSN is the database used when neither --database nor $YKVAL_DB names one.
const defaultDSN = "sqlite:/var/lib/ykstack/ykval.db"

const usage = `Usage: ykval-checksum-deactivated [-h|--help] [-v|--verbose] [--database DSN]
                                  [--db-user USER] [--db-passwd-file FILE | --db-passwd PASSWD]

Print a checksum of the deactivated YubiKeys (public name and counters) of a
YK-VAL database, to compare the servers of a sync pool.

Options:
`

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykval-checksum-deactivated", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		help, verbose bool
		db            cli.DBFlags
	)
	fs.BoolVarP(&verbose, "verbose", "v", false, "print the checksummed lines first")
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
	data, err := checksumData(ctx, store)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if verbose {
		out.Write(data)
	}
	sum := sha1.Sum(data)
	out.WriteString(hex.EncodeToString(sum[:])[:10] + "\n")
	_, err = env.Stdout.Write(out.Bytes())
	return err
}

// checksumData returns the lines the checksum is taken over.
func checksumData(ctx context.Context, s val.Store) ([]byte, error) {
	var b bytes.Buffer
	err := s.EachKey(ctx, func(k val.KeyState) error {
		if !k.Active {
			b.WriteString(valcsv.KeyChecksumLine(k))
		}
		return nil
	})
	return b.Bytes(), err
}
