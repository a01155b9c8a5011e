package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/pgp"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

const usage = `Usage: ykksm-import [--verbose] [--help] [--database DSN] [--db-user USER] [--db-passwd PASSWD]
                    [--kek-file FILE] [--creator CREATOR] (--keyring FILE... [--passphrase-file FILE] | --gpg)
                    [--dry-run] < keys.asc

Import a signed (and normally encrypted) OpenPGP key batch from standard input
into a YK-KSM database, all keys or none.

  -v, --verbose               show the verification output and each key's serial and public ID
      --database DSN          sqlite:PATH, mysql:GO-DSN or DBI:mysql:dbname=N;host=H
                              (env YKKSM_DB; default ` + defaultDSN + `)
      --db-user USER          database user (MySQL)
      --db-passwd PASSWD      database password (MySQL; visible in ps: prefer the next two)
      --db-passwd-file FILE   read the database password from FILE (or env YKKSM_DB_PASSWORD)
      --kek-file FILE         store the AES keys sealed under the key-encryption key in FILE
                              (or env YKKSM_KEK_FILE, YKKSM_KEK, systemd credential ykksm-kek)
      --old-kek-file FILE     the previous KEK, while a KEK rotation runs
      --creator CREATOR       creator to record (at most 8 characters; default: the last 8 hex
                              digits of the signing key's fingerprint)
      --keyring FILE          exported OpenPGP keys, armored or binary: the KSM's secret key and
                              the trusted signers' public keys (repeatable)
      --passphrase-file FILE  passphrase of a protected secret key, first line of FILE
                              (default: ask on the terminal)
      --gpg                   open the message with gpg and the keys of GNUPGHOME instead
      --dry-run               check the message and the keys, import nothing
  -h, --help                  print this help

Every key in the keyring files (or in GNUPGHOME with --gpg) is trusted to sign.
`

const (
	defaultDSN = "sqlite:/var/lib/ykstack/ykksm.db"
	// maxMessage bounds standard input.
	maxMessage = 2 * pgp.DefaultMaxPlaintext
	// createdLayout is how an empty created field is filled: local time.
	createdLayout = "2006-01-02T15:04:05"
	// progressEvery is how many lines pass between progress updates.
	progressEvery = 1000
	// maxCreator is the width of the yubikeys.creator column.
	maxCreator = 8
)

// ttyPath is the terminal a passphrase is asked on; tests change it.
var ttyPath = "/dev/tty"

type options struct {
	verbose, useGPG, dryRun bool
	creator, passFile       string
	keyrings                []string
	db                      cli.DBFlags
	kek                     cli.KEKFlags
}

func parseArgs(args []string) (options, error) {
	var opts options
	var help bool
	fs := pflag.NewFlagSet("ykksm-import", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVarP(&opts.verbose, "verbose", "v", false, "")
	fs.BoolVarP(&help, "help", "h", false, "")
	opts.db.Register(fs, "YKKSM", defaultDSN)
	opts.kek.Register(fs, "YKKSM")
	fs.StringVar(&opts.creator, "creator", "", "")
	fs.StringArrayVar(&opts.keyrings, "keyring", nil, "")
	fs.StringVar(&opts.passFile, "passphrase-file", "", "")
	fs.BoolVar(&opts.useGPG, "gpg", false, "")
	fs.BoolVar(&opts.dryRun, "dry-run", false, "")
	if err := fs.Parse(args); err != nil {
		return opts, cli.Usagef("%v (see --help)", err)
	}
	switch {
	case help:
		return opts, pflag.ErrHelp
	case fs.NArg() > 0:
		return opts, cli.Usagef("unexpected argument %q: the key batch is read from standard input", fs.Arg(0))
	case opts.useGPG && len(opts.keyrings) > 0:
		return opts, cli.Usagef("--gpg and --keyring exclude each other")
	case !opts.useGPG && len(opts.keyrings) == 0:
		return opts, cli.Usagef("give --keyring FILE (the KSM's secret key and the signers' public keys) or --gpg")
	case fs.Changed("creator") && (opts.creator == "" || len(opts.creator) > maxCreator):
		return opts, cli.Usagef("--creator: want 1 to %d characters, have %q", maxCreator, opts.creator)
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
	dbcfg, err := opts.db.Config(env.Lookup)
	if err != nil {
		return err
	}
	sealer, err := opts.kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	dec, err := decrypter(opts, env)
	if err != nil {
		return err
	}
	msg, err := io.ReadAll(io.LimitReader(env.Stdin, maxMessage+1))
	switch {
	case err != nil:
		return fmt.Errorf("read standard input: %w", err)
	case len(msg) == 0:
		return errors.New("no input: pipe the OpenPGP message with the keys to standard input")
	case len(msg) > maxMessage:
		return fmt.Errorf("input over %d bytes", maxMessage)
	}
	res, err := dec.Decrypt(ctx, msg)
	if err != nil {
		if errors.Is(err, pgp.ErrNoPassphrase) && !opts.useGPG {
			err = fmt.Errorf("%w; give --passphrase-file", err)
		}
		return fmt.Errorf("input refused, nothing imported: %w", err)
	}
	report(env, opts, res)
	keys, err := parse(env, opts, res.Plaintext)
	if err != nil {
		return fmt.Errorf("key file refused, nothing imported: %w", err)
	}
	creator := opts.creator
	if creator == "" {
		creator = res.Creator()
	}
	now := time.Now().Format(createdLayout)
	for i := range keys {
		keys[i].Creator = creator
		if keys[i].Created == "" {
			keys[i].Created = now
		}
	}
	if len(keys) == 0 {
		return errors.New("key file refused, nothing imported: it holds no keys")
	}
	if opts.dryRun {
		fmt.Fprintf(env.Stdout, "dry run: %d keys checked, nothing imported\n", len(keys))
		return nil
	}
	if err := store(ctx, env, dbcfg, sealer, keys); err != nil {
		return err
	}
	if sealer != nil {
		fmt.Fprintf(env.Stdout, "imported %d keys, sealed under KEK %s\n", len(keys), sealer.KeyID())
		return nil
	}
	fmt.Fprintf(env.Stdout, "imported %d keys\n", len(keys))
	return nil
}

// decrypter returns how the message is opened.
func decrypter(opts options, env cli.Env) (pgp.Decrypter, error) {
	if opts.useGPG {
		return &pgp.GPG{PassphraseFile: opts.passFile, Home: env.Lookup("GNUPGHOME")}, nil
	}
	kr, err := pgp.LoadKeyring(opts.keyrings...)
	if err != nil {
		return nil, err
	}
	if opts.verbose {
		for _, k := range kr.Describe() {
			fmt.Fprintf(env.Stdout, "keyring: %s\n", k)
		}
	}
	pass := pgp.TerminalPassphrase(ttyPath)
	if opts.passFile != "" {
		pass = pgp.PassphraseFile(opts.passFile)
	}
	return &pgp.Native{Keyring: kr, Passphrase: pass}, nil
}

// report prints who signed the message and for whom it was encrypted.
func report(env cli.Env, opts options, res *pgp.Result) {
	if opts.verbose {
		fmt.Fprintln(env.Stdout, "Verification output:")
		if res.Status != nil {
			for _, l := range res.Status {
				fmt.Fprintf(env.Stdout, "[GNUPG:] %s\n", l)
			}
		} else {
			for _, id := range res.EncryptedTo {
				fmt.Fprintf(env.Stdout, "ENC_TO %s\n", id)
			}
			if res.Encrypted {
				fmt.Fprintln(env.Stdout, "DECRYPTION_OKAY")
			}
			fmt.Fprintf(env.Stdout, "VALIDSIG %s (primary key %s)\n", res.Signer, res.SignerPrimary)
		}
	}
	if res.Encrypted {
		fmt.Fprintf(env.Stdout, "encrypted to: %s\n", strings.Join(res.EncryptedTo, " "))
	} else {
		fmt.Fprintln(env.Stderr, "warning: the input was signed but not encrypted")
	}
	who := "fingerprint " + res.Signer
	if res.SignerName != "" {
		who += ", " + res.SignerName
	}
	fmt.Fprintf(env.Stdout, "signed by: %s (%s)\n", res.Creator(), who)
}

// parse checks the key file, showing progress on a terminal and, with
// --verbose, each key.
func parse(env cli.Env, opts options, plain []byte) ([]ksm.Key, error) {
	var r io.Reader = bytes.NewReader(plain)
	var prog *progress
	if lines := bytes.Count(plain, []byte("\n")); lines >= progressEvery && isTerminal(env.Stderr) {
		prog = &progress{w: env.Stderr, total: lines}
		r = io.TeeReader(r, prog)
	}
	recs, err := keyprov.Parse(r)
	prog.done()
	if err != nil {
		return nil, err
	}
	if opts.verbose {
		for _, rec := range recs {
			fmt.Fprintf(env.Stdout, "line %d: serialnr %d publicname %s\n", rec.Line, rec.Key.SerialNr, rec.Key.PublicName)
		}
	}
	return keyprov.Keys(recs), nil
}

// store imports keys in one transaction, sealed when sealer is not nil.
func store(ctx context.Context, env cli.Env, cfg sqldb.Config, sealer *seal.Sealer, keys []ksm.Key) error {
	s, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return err
	}
	defer s.Close()
	tty := len(keys) >= progressEvery && isTerminal(env.Stderr)
	if tty {
		fmt.Fprintf(env.Stderr, "importing %d keys in one transaction…", len(keys))
	}
	err = s.Import(ctx, keys)
	if tty {
		fmt.Fprint(env.Stderr, "\r\033[K")
	}
	if err != nil {
		return fmt.Errorf("nothing imported: %w", err)
	}
	return nil
}

// progress counts lines as a TeeReader passes them and shows a "\r" line.
type progress struct {
	w            io.Writer
	total, lines int
	next         int
}

func (p *progress) Write(b []byte) (int, error) {
	p.lines += bytes.Count(b, []byte("\n"))
	if p.lines >= p.next {
		fmt.Fprintf(p.w, "\rreading keys: line %d of %d", p.lines, p.total)
		p.next = p.lines + progressEvery
	}
	return len(b), nil
}

func (p *progress) done() {
	if p != nil && p.next > 0 {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
