package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// defaultDSN is the database used when neither --database nor $YKKSM_DB names one.
const defaultDSN = "sqlite:/var/lib/ykstack/ykksm.db"

const usage = `Usage: ykksm-checksum [--verbose] [--help] [--database DSN] [--db-user USER]
                      [--db-passwd-file FILE | --db-passwd PASSWD] [--kek-file FILE]

Print a checksum of the important fields of a YK-KSM key database, to tell
quickly whether several KSMs hold the same keys. Sealed keys are opened with
the KEK and hashed as plaintext, so a sealed database and its plaintext
copy have the same checksum.

`

// errNoData is returned, after "No data?!" on standard output, for an empty database.
var errNoData = errors.New("the yubikeys table is empty")

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykksm-checksum", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		verbose, help bool
		db            cli.DBFlags
		kek           cli.KEKFlags
	)
	fs.BoolVarP(&verbose, "verbose", "v", false, "print each key's serial number and public name first")
	fs.BoolVarP(&help, "help", "h", false, "print this help")
	db.Register(fs, "YKKSM", defaultDSN)
	kek.Register(fs, "YKKSM")
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if help {
		fs.SetOutput(env.Stdout)
		io.WriteString(env.Stdout, usage)
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
	if err := sqldb.RequireExisting(cfg.DSN); err != nil {
		return err
	}
	store, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return err
	}
	defer store.Close()

	w := bufio.NewWriter(env.Stdout)
	var progress io.Writer
	if verbose {
		progress = w
	}
	sum, n, err := checksum(ctx, store, progress)
	if err != nil {
		w.Flush()
		return err
	}
	if n == 0 {
		io.WriteString(w, "No data?!\n\n")
		if err := w.Flush(); err != nil {
			return err
		}
		return errNoData
	}
	fmt.Fprintln(w, sum)
	return w.Flush()
}

// checksum returns the ykksm-checksum of every key in ks and how many keys
// there are. When progress is not nil it writes "# serialnr=N publicname=P"
// to it for each key, in hashing order.
func checksum(ctx context.Context, ks ksm.KeyStore, progress io.Writer) (string, int, error) {
	h := sha1.New()
	n := 0
	err := ks.Each(ctx, func(k ksm.Key) error {
		n++
		if progress != nil {
			if _, err := fmt.Fprintf(progress, "# serialnr=%d publicname=%s\n", k.SerialNr, k.PublicName); err != nil {
				return err
			}
		}
		add(h, strconv.FormatInt(k.SerialNr, 10), k.PublicName, k.InternalName, k.AESKey)
		return nil
	})
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil))[:10], n, nil
}

func add(h hash.Hash, fields ...string) {
	for _, f := range fields {
		io.WriteString(h, f)
	}
}
