package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

const defaultDSN = "sqlite:/var/lib/ykstack/ykksm.db"

const usage = `Usage: ykksm-seal status  [DB flags] [--kek-file FILE [--old-kek-file FILE]]
       ykksm-seal seal    [DB flags] --kek-file FILE [--batch N] [--verbose]
       ykksm-seal rotate  [DB flags] --kek-file NEW --old-kek-file OLD [--batch N] [--verbose]
       ykksm-seal unseal  [DB flags] --kek-file FILE [--old-kek-file FILE] [--batch N] [--verbose]
       ykksm-seal gen-kek FILE|-

Keep the AES keys of a YK-KSM database sealed at rest under a key-encryption
key (KEK), in place, while KSMs keep serving:

  status    how the keys are stored: plaintext, sealed, or mixed, with counts per KEK
  seal      seal every plaintext key under the KEK (widens a MySQL aeskey column first)
  rotate    re-seal every key sealed under the old KEK under the new one
  unseal    store every key as plaintext again (to share the database with the PHP KSM)
  gen-kek   write a new random KEK to FILE (mode 0600, never overwritten) or to standard output

DB flags: --database DSN (env YKKSM_DB), --db-user USER, --db-passwd-file FILE (env YKKSM_DB_PASSWORD).
The KEK may also come from env YKKSM_KEK_FILE or YKKSM_KEK, or the systemd credential ykksm-kek.

`

// maxListed bounds how many public IDs an error lists.
const maxListed = 10

type options struct {
	db             cli.DBFlags
	kek            cli.KEKFlags
	batch          int
	verbose, help  bool
	command, param string
}

func parseArgs(args []string, stdout io.Writer) (options, error) {
	var o options
	fs := pflag.NewFlagSet("ykksm-seal", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	o.db.Register(fs, "YKKSM", defaultDSN)
	o.kek.Register(fs, "YKKSM")
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
	if o.command == "status" {
		if err := sqldb.RequireExisting(cfg.DSN); err != nil {
			return err
		}
		return status(ctx, env, cfg, sealer)
	}
	if sealer == nil {
		return cli.Usagef("%s needs the KEK: give --kek-file (or env YKKSM_KEK_FILE, YKKSM_KEK)", o.command)
	}
	var op sqlstore.ConvertOp
	switch o.command {
	case "seal":
		op = sqlstore.Seal
	case "rotate":
		if len(sealer.KeyIDs()) < 2 {
			return cli.Usagef("rotate needs the new KEK (--kek-file) and a different old one (--old-kek-file)")
		}
		op = sqlstore.Rotate
	case "unseal":
		op = sqlstore.Unseal
	}
	if err := sqldb.RequireExisting(cfg.DSN); err != nil {
		return err
	}
	return convert(ctx, env, o, cfg, sealer, op)
}

// genKEK writes a new KEK to name, or to standard output for "-".
func genKEK(env cli.Env, name string) error {
	raw := seal.GenerateKEK()
	k, err := seal.NewKEK(raw)
	if err != nil {
		return err
	}
	if name == "-" {
		_, err := io.WriteString(env.Stdout, seal.FormatKEK(raw))
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("gen-kek: %w", err)
	}
	if _, err := io.WriteString(f, seal.FormatKEK(raw)); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("gen-kek: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(name)
		return fmt.Errorf("gen-kek: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(name)
		return fmt.Errorf("gen-kek: %w", err)
	}
	fmt.Fprintf(env.Stdout, "wrote a new KEK with key ID %s to %s\n", k.ID(), name)
	return nil
}

// status prints how the database keeps its keys. It needs no KEK; with
// one it says which KEKs are configured.
func status(ctx context.Context, env cli.Env, cfg sqldb.Config, sealer *seal.Sealer) error {
	st, err := sqlstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.Status(ctx)
	if err != nil {
		return err
	}
	w := &strings.Builder{}
	fmt.Fprintf(w, "database: %s (%s)\n", st.DB().Name, st.DB().Dialect)
	fmt.Fprintf(w, "mode: %s\n", s.Mode())
	fmt.Fprintf(w, "plaintext keys: %d\n", s.Plaintext)
	fmt.Fprintf(w, "sealed keys: %d\n", s.SealedTotal())
	for _, kid := range slices.Sorted(maps.Keys(s.Sealed)) {
		note := ""
		switch {
		case sealer == nil:
		case kid == sealer.KeyID():
			note = " (the KEK of --kek-file)"
		case sealer.Has(kid):
			note = " (the KEK of --old-kek-file)"
		default:
			note = " (not a configured KEK)"
		}
		fmt.Fprintf(w, "  KEK %s: %d%s\n", kid, s.Sealed[kid], note)
	}
	if s.Malformed > 0 {
		fmt.Fprintf(w, "malformed sealed values: %d\n", s.Malformed)
	}
	fmt.Fprintf(w, "empty aeskey: %d\n", s.Empty)
	if sealer != nil && s.Sealed[sealer.KeyID()] == 0 {
		fmt.Fprintf(w, "configured KEK: %s (seals none of the keys)\n", sealer.KeyID())
	}
	width, err := st.ColumnWidth(ctx)
	if err != nil {
		return err
	}
	if width > 0 {
		note := ""
		if width < seal.ColumnWidth {
			note = ": too narrow for sealed keys (seal widens it)"
		}
		fmt.Fprintf(w, "aeskey column: varchar(%d)%s\n", width, note)
	}
	_, err = io.WriteString(env.Stdout, w.String())
	return err
}

// convert seals, rotates or unseals in place and reports the result.
func convert(ctx context.Context, env cli.Env, o options, cfg sqldb.Config, sealer *seal.Sealer, op sqlstore.ConvertOp) error {
	st, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		if errors.Is(err, sqlstore.ErrWrongKEK) && op == sqlstore.Seal {
			err = fmt.Errorf("%w (to move keys to a new KEK use rotate with --old-kek-file)", err)
		}
		return err
	}
	defer st.Close()
	if op != sqlstore.Unseal {
		widened, err := st.Widen(ctx)
		if err != nil {
			return err
		}
		if widened {
			fmt.Fprintf(env.Stdout, "widened the aeskey column to varchar(%d)\n", seal.ColumnWidth)
		}
	}
	copts := sqlstore.ConvertOptions{BatchSize: o.batch}
	if o.verbose {
		copts.Progress = func(r sqlstore.ConvertResult) {
			fmt.Fprintf(env.Stderr, "%s: %d rows read, %d changed\n", op, r.Scanned, r.Changed)
		}
	}
	res, err := st.Convert(ctx, op, copts)
	if err != nil {
		return err
	}
	switch op {
	case sqlstore.Seal:
		fmt.Fprintf(env.Stdout, "sealed %d keys under KEK %s (%d rows read)\n", res.Changed, sealer.KeyID(), res.Scanned)
	case sqlstore.Rotate:
		fmt.Fprintf(env.Stdout, "re-sealed %d keys under KEK %s (%d rows read)\n", res.Changed, sealer.KeyID(), res.Scanned)
	case sqlstore.Unseal:
		fmt.Fprintf(env.Stdout, "unsealed %d keys (%d rows read)\n", res.Changed, res.Scanned)
	}
	s, err := st.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "mode: %s (plaintext %d, sealed %d)\n", s.Mode(), s.Plaintext, s.SealedTotal())

	var problems []string
	if n := len(res.Failed); n > 0 {
		problems = append(problems, fmt.Sprintf("%d keys did not open (wrong KEK, or rows moved or edited), left as they are: %s",
			n, list(res.Failed)))
	}
	if res.Raced > 0 {
		problems = append(problems, fmt.Sprintf("%d rows changed while being converted; run %s again", res.Raced, op))
	}
	switch op {
	case sqlstore.Seal:
		if s.Plaintext > 0 && len(res.Failed) == 0 {
			problems = append(problems, fmt.Sprintf("%d plaintext keys remain (written during the run?); run seal again", s.Plaintext))
		}
		if len(problems) == 0 {
			fmt.Fprintln(env.Stdout, "restart the KSMs (ykksmd) now: from then on they refuse plaintext keys")
		}
	case sqlstore.Rotate:
		var left []string
		for kid, n := range s.Sealed {
			if kid != sealer.KeyID() {
				left = append(left, fmt.Sprintf("%d under KEK %s", n, kid))
			}
		}
		if len(left) > 0 && len(res.Failed) == 0 {
			slices.Sort(left)
			problems = append(problems, fmt.Sprintf("keys remain sealed %s; run rotate again", strings.Join(left, ", ")))
		}
		if len(problems) == 0 {
			fmt.Fprintf(env.Stdout, "restart the KSMs with --kek-file NEW alone; the old KEK seals nothing now\n")
		}
	case sqlstore.Unseal:
		if len(problems) == 0 {
			fmt.Fprintln(env.Stdout, "restart the KSMs without --kek-file; the aeskey column stays wide, which the PHP KSM reads as well")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s: %s", op, strings.Join(problems, "; "))
	}
	return nil
}

// list joins up to maxListed public IDs.
func list(ids []string) string {
	quoted := make([]string, 0, min(len(ids), maxListed))
	for _, id := range ids[:min(len(ids), maxListed)] {
		quoted = append(quoted, fmt.Sprintf("%q", id))
	}
	s := strings.Join(quoted, ", ")
	if len(ids) > maxListed {
		s += fmt.Sprintf(" and %d more", len(ids)-maxListed)
	}
	return s
}
