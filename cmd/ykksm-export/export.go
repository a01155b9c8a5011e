package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

const usage = `Usage: ykksm-export [--verbose] [--help] [--database DSN] [--db-user USER] [--db-passwd PASSWD]
                    [--kek-file FILE] [--encrypt-to KEYFILE... --sign-with KEYFILE [--passphrase-file FILE]]

Print every key of a YK-KSM database, one YKKSM-KEYPROV line each, ordered by
serial number and public name. The output holds the AES keys in the clear:
pipe it into gpg --sign --encrypt, or use --encrypt-to and --sign-with.

  -v, --verbose               put a "# serialnr=… publicname=… …" comment before each key
      --database DSN          sqlite:PATH, mysql:GO-DSN or DBI:mysql:dbname=N;host=H
                              (env YKKSM_DB; default ` + defaultDSN + `)
      --db-user USER          database user (MySQL)
      --db-passwd PASSWD      database password (MySQL; visible in ps: prefer the next two)
      --db-passwd-file FILE   read the database password from FILE (or env YKKSM_DB_PASSWORD)
      --kek-file FILE         open sealed AES keys with the key-encryption key in FILE
                              (or env YKKSM_KEK_FILE, YKKSM_KEK, systemd credential ykksm-kek)
      --old-kek-file FILE     the previous KEK, while a KEK rotation runs
      --encrypt-to KEYFILE    encrypt to the public keys in KEYFILE (gpg --export; repeatable)
      --sign-with KEYFILE     sign with the secret key in KEYFILE (gpg --export-secret-keys)
      --passphrase-file FILE  passphrase of a protected signing key, first line of FILE
                              (default: ask on the terminal)
  -h, --help                  print this help
`

const defaultDSN = "sqlite:/var/lib/ykstack/ykksm.db"

type options struct {
	verbose            bool
	encryptTo          []string
	signWith, passFile string
	db                 cli.DBFlags
	kek                cli.KEKFlags
}

func parseArgs(args []string) (options, error) {
	var opts options
	var help bool
	fs := pflag.NewFlagSet("ykksm-export", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVarP(&opts.verbose, "verbose", "v", false, "")
	fs.BoolVarP(&help, "help", "h", false, "")
	opts.db.Register(fs, "YKKSM", defaultDSN)
	opts.kek.Register(fs, "YKKSM")
	fs.StringArrayVar(&opts.encryptTo, "encrypt-to", nil, "")
	fs.StringVar(&opts.signWith, "sign-with", "", "")
	fs.StringVar(&opts.passFile, "passphrase-file", "", "")
	if err := fs.Parse(args); err != nil {
		return opts, cli.Usagef("%v (see --help)", err)
	}
	switch {
	case help:
		return opts, pflag.ErrHelp
	case fs.NArg() > 0:
		return opts, cli.Usagef("unexpected argument %q", fs.Arg(0))
	case len(opts.encryptTo) > 0 && opts.signWith == "":
		return opts, cli.Usagef("--encrypt-to needs --sign-with: ykksm-import accepts only signed batches")
	case len(opts.encryptTo) == 0 && opts.signWith != "":
		return opts, cli.Usagef("--sign-with needs --encrypt-to")
	case len(opts.encryptTo) == 0 && opts.passFile != "":
		return opts, cli.Usagef("--passphrase-file needs --sign-with")
	}
	return opts, nil
}

func run(ctx context.Context, env cli.Env) error {
	opts, err := parseArgs(env.Args)
	if errors.Is(err, pflag.ErrHelp) {
		if _, werr := io.WriteString(env.Stdout, usage); werr != nil {
			return werr
		}
		return err
	}
	if err != nil {
		return err
	}
	cfg, err := opts.db.Config(env.Lookup)
	if err != nil {
		return err
	}
	sealer, err := opts.kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	// Load the keys first: a wrong key file fails before the database is read.
	var to, signer *pgp.Keyring
	if len(opts.encryptTo) > 0 {
		if to, err = pgp.LoadKeyring(opts.encryptTo...); err != nil {
			return err
		}
		if signer, err = pgp.LoadKeyring(opts.signWith); err != nil {
			return err
		}
	}
	if err := sqldb.RequireExisting(cfg.DSN); err != nil {
		return err
	}
	s, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return err
	}
	defer s.Close()
	var out bytes.Buffer
	n := 0
	err = s.Each(ctx, func(k ksm.Key) error {
		n++
		if opts.verbose {
			fmt.Fprintf(&out, "# serialnr=%d publicname=%s internalname=%s aeskey=%s lockcode=%s created=%s\n",
				k.SerialNr, k.PublicName, k.InternalName, k.AESKey, k.LockCode, k.Created)
		}
		out.WriteString(keyprov.FormatLine(k, "", nil))
		out.WriteByte('\n')
		return nil
	})
	if err != nil {
		return err
	}
	if to == nil {
		if n == 0 {
			out.WriteString("No data?!\n\n")
		}
		_, err = env.Stdout.Write(out.Bytes())
		return err
	}
	if n == 0 {
		return errors.New("no keys to export")
	}
	pass := pgp.TerminalPassphrase("/dev/tty")
	if opts.passFile != "" {
		pass = pgp.PassphraseFile(opts.passFile)
	}
	var msg bytes.Buffer
	if err := pgp.Encrypt(&msg, out.Bytes(), to, signer, pass); err != nil {
		if errors.Is(err, pgp.ErrNoPassphrase) {
			err = fmt.Errorf("%w; give --passphrase-file", err)
		}
		return err
	}
	_, err = env.Stdout.Write(msg.Bytes())
	return err
}
