// Package sealcli is what the commands ykksm-seal and ykval-seal share: the
// status report, the seal / rotate / unseal conversion with its result lines
// and its list of problems, and the writing of a new KEK. Each command
// describes its database with a [Tool] (the words it prints) and reaches its
// store through a small adapter that implements [Store].
package sealcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
)

// MaxListed bounds how many rows an error names.
const MaxListed = 10

// Op is what a conversion does to the sealed values, named as the commands
// name it.
type Op string

// The conversions.
const (
	// Seal seals the plaintext values under the current KEK.
	Seal Op = "seal"
	// Rotate re-seals the values sealed under an old KEK under the current one.
	Rotate Op = "rotate"
	// Unseal stores every sealed value as plaintext again.
	Unseal Op = "unseal"
)

// Status counts how a database keeps its values.
type Status struct {
	Mode        string         // "empty", "plaintext", "sealed" or "mixed", as the store names it
	Plaintext   int            // plaintext values
	Sealed      map[string]int // sealed values, by the key ID of the KEK that sealed them
	SealedTotal int            // sealed values under any KEK
	Malformed   int            // values that start like a sealed value but are not one
	Empty       int            // rows with an empty value
}

// Result is what a conversion did.
type Result struct {
	Scanned int      // rows read
	Changed int      // rows rewritten
	Raced   int      // rows changed by someone else meanwhile, left for the next run
	Failed  []string // the rows whose value did not open, each as the error names it
}

// Store is a database opened for one command, as the commands see it.
type Store interface {
	// Database names the database and its dialect, as the status report
	// prints them: "/var/lib/ykstack/ykksm.db (sqlite)".
	Database() string
	// Status counts the database's values.
	Status(ctx context.Context) (Status, error)
	// ColumnWidth is the width of the value column, 0 where it has none.
	ColumnWidth(ctx context.Context) (int, error)
	// Widen widens the value column for sealed values; it says whether it did.
	Widen(ctx context.Context) (bool, error)
	// Convert converts every row, batch rows a transaction, calling
	// progress (never nil) after every batch with the totals so far.
	Convert(ctx context.Context, op Op, batch int, progress func(scanned, changed int)) (Result, error)
	// Close closes the store.
	Close() error
}

// Opener opens the [Store] a command works on. With an error the Store
// is not used, so an adapter may wrap a nil store.
type Opener func(ctx context.Context) (Store, error)

// KEKs are the configured KEKs: a command's Sealer. A command without a
// KEK passes a nil KEKs, not a nil pointer in one.
type KEKs interface {
	// KeyID is the key ID of the current KEK (that of --kek-file).
	KeyID() string
	// Has says whether kid is the key ID of a configured KEK.
	Has(kid string) bool
}

// KEKsOf is sealer, a command's *Sealer, as KEKs: nil when sealer is nil.
func KEKsOf[S interface {
	*T
	KEKs
}, T any](sealer S) KEKs {
	if sealer == nil {
		return nil
	}
	return sealer
}

// Names formats each of ids with name, for [Result.Failed].
func Names[T any](ids []T, name func(T) string) []string {
	names := make([]string, 0, len(ids))
	for _, id := range ids {
		names = append(names, name(id))
	}
	return names
}

// Tool holds the words one command prints about its database.
type Tool struct {
	Things      string // the values sealed, plural: "keys"
	Column      string // the column that holds them: "aeskey"
	Empty       string // the status label of rows without a value: "empty aeskey"
	ColumnWidth int    // the column width sealed values need
	Moved       string // the other cause of a value that does not open: "rows moved or edited"
	Named       string // what precedes the rows named in that error: "" or "clients "
	Servers     string // the servers that read the database: "KSMs"
	Daemon      string // their command: "ykksmd"
	PHP         string // the PHP server that shares the database: "KSM"
	WrongKEK    error  // the store's error for values sealed under another KEK
}

// PrintStatus prints to w how the database keeps its values. It needs no
// KEK; with keks it says which KEKs are configured.
func (t *Tool) PrintStatus(ctx context.Context, w io.Writer, open Opener, keks KEKs) error {
	st, err := open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := st.Status(ctx)
	if err != nil {
		return err
	}
	b := &strings.Builder{}
	fmt.Fprintf(b, "database: %s\n", st.Database())
	fmt.Fprintf(b, "mode: %s\n", s.Mode)
	fmt.Fprintf(b, "plaintext %s: %d\n", t.Things, s.Plaintext)
	fmt.Fprintf(b, "sealed %s: %d\n", t.Things, s.SealedTotal)
	for _, kid := range slices.Sorted(maps.Keys(s.Sealed)) {
		note := ""
		switch {
		case keks == nil:
		case kid == keks.KeyID():
			note = " (the KEK of --kek-file)"
		case keks.Has(kid):
			note = " (the KEK of --old-kek-file)"
		default:
			note = " (not a configured KEK)"
		}
		fmt.Fprintf(b, "  KEK %s: %d%s\n", kid, s.Sealed[kid], note)
	}
	if s.Malformed > 0 {
		fmt.Fprintf(b, "malformed sealed values: %d\n", s.Malformed)
	}
	fmt.Fprintf(b, "%s: %d\n", t.Empty, s.Empty)
	if keks != nil && s.Sealed[keks.KeyID()] == 0 {
		fmt.Fprintf(b, "configured KEK: %s (seals none of the %s)\n", keks.KeyID(), t.Things)
	}
	width, err := st.ColumnWidth(ctx)
	if err != nil {
		return err
	}
	if width > 0 {
		note := ""
		if width < t.ColumnWidth {
			note = fmt.Sprintf(": too narrow for sealed %s (seal widens it)", t.Things)
		}
		fmt.Fprintf(b, "%s column: varchar(%d)%s\n", t.Column, width, note)
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// Conversion is one run of seal, rotate or unseal.
type Conversion struct {
	Op      Op
	KEKs    KEKs // the configured KEKs, not nil; values are sealed under KEKs.KeyID()
	Batch   int  // rows per transaction
	Verbose bool // report progress on standard error after every batch
}

// Convert seals, rotates or unseals the database in place and reports the
// result on stdout (progress on stderr). Rows left unconverted make an error
// that names them.
func (t *Tool) Convert(ctx context.Context, stdout, stderr io.Writer, open Opener, c Conversion) error {
	op := c.Op
	st, err := open(ctx)
	if err != nil {
		if t.WrongKEK != nil && errors.Is(err, t.WrongKEK) && op == Seal {
			err = fmt.Errorf("%w (to move %s to a new KEK use rotate with --old-kek-file)", err, t.Things)
		}
		return err
	}
	defer st.Close()
	if op != Unseal {
		widened, err := st.Widen(ctx)
		if err != nil {
			return err
		}
		if widened {
			fmt.Fprintf(stdout, "widened the %s column to varchar(%d)\n", t.Column, t.ColumnWidth)
		}
	}
	progress := func(scanned, changed int) {
		if c.Verbose {
			fmt.Fprintf(stderr, "%s: %d rows read, %d changed\n", op, scanned, changed)
		}
	}
	res, err := st.Convert(ctx, op, c.Batch, progress)
	if err != nil {
		return err
	}
	switch op {
	case Seal:
		fmt.Fprintf(stdout, "sealed %d %s under KEK %s (%d rows read)\n", res.Changed, t.Things, c.KEKs.KeyID(), res.Scanned)
	case Rotate:
		fmt.Fprintf(stdout, "re-sealed %d %s under KEK %s (%d rows read)\n", res.Changed, t.Things, c.KEKs.KeyID(), res.Scanned)
	case Unseal:
		fmt.Fprintf(stdout, "unsealed %d %s (%d rows read)\n", res.Changed, t.Things, res.Scanned)
	}
	s, err := st.Status(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "mode: %s (plaintext %d, sealed %d)\n", s.Mode, s.Plaintext, s.SealedTotal)
	if msg := t.problems(c, res, s); msg != "" {
		return errors.New(msg)
	}
	switch op {
	case Seal:
		fmt.Fprintf(stdout, "restart the %s (%s) now: from then on they refuse plaintext %s\n", t.Servers, t.Daemon, t.Things)
	case Rotate:
		fmt.Fprintf(stdout, "restart the %s with --kek-file NEW alone; the old KEK seals nothing now\n", t.Servers)
	case Unseal:
		fmt.Fprintf(stdout, "restart the %s without --kek-file; the %s column stays wide, which the PHP %s reads as well\n", t.Servers, t.Column, t.PHP)
	}
	return nil
}

// problems says what a conversion left undone, after res and with the
// database in state s: "" when nothing, else the error text, which starts
// with the operation.
func (t *Tool) problems(c Conversion, res Result, s Status) string {
	op := c.Op
	var problems []string
	if n := len(res.Failed); n > 0 {
		problems = append(problems, fmt.Sprintf("%d %s did not open (wrong KEK, or %s), left as they are: %s%s",
			n, t.Things, t.Moved, t.Named, List(res.Failed)))
	}
	if res.Raced > 0 {
		problems = append(problems, fmt.Sprintf("%d rows changed while being converted; run %s again", res.Raced, op))
	}
	switch op {
	case Seal:
		if s.Plaintext > 0 && len(res.Failed) == 0 {
			problems = append(problems, fmt.Sprintf("%d plaintext %s remain (written during the run?); run seal again", s.Plaintext, t.Things))
		}
	case Rotate:
		var left []string
		for kid, n := range s.Sealed {
			if kid != c.KEKs.KeyID() {
				left = append(left, fmt.Sprintf("%d under KEK %s", n, kid))
			}
		}
		if len(left) > 0 && len(res.Failed) == 0 {
			slices.Sort(left)
			problems = append(problems, fmt.Sprintf("%s remain sealed %s; run rotate again", t.Things, strings.Join(left, ", ")))
		}
	}
	if len(problems) == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %s", op, strings.Join(problems, "; "))
}

// List joins up to [MaxListed] of names with ", ", and says how many more
// there are.
func List(names []string) string {
	s := strings.Join(names[:min(len(names), MaxListed)], ", ")
	if len(names) > MaxListed {
		s += fmt.Sprintf(" and %d more", len(names)-MaxListed)
	}
	return s
}

// WriteKEK writes kek, the text of a new KEK with key ID id, to the file
// name, created with mode 0600 and never overwriting a file, and says so
// on stdout; for name "-" it writes the KEK itself to stdout.
func WriteKEK(stdout io.Writer, name, kek, id string) error {
	if name == "-" {
		_, err := io.WriteString(stdout, kek)
		return err
	}
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("gen-kek: %w", err)
	}
	_, err = io.WriteString(f, kek)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("gen-kek: %w", err)
	}
	fmt.Fprintf(stdout, "wrote a new KEK with key ID %s to %s\n", id, name)
	return nil
}
