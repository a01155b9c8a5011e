package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
)

// Errors of sealed stores. Lookup and Each wrap them together with
// ksm.ErrDatabase.
var (
	ErrNoKEK     = errors.New("sqlstore: keys are sealed and no KEK is configured")
	ErrWrongKEK  = errors.New("sqlstore: keys are sealed under a KEK that is not configured")
	ErrPlaintext = errors.New("sqlstore: plaintext key refused: the store is sealed")
)

// Options are a store's optional settings. The zero value is a plaintext store.
type Options struct {
	// Sealer, when set, seals the keys Import writes and opens the sealed
	// keys Lookup and Each read.
	Sealer *seal.Sealer
	// Plaintext says whether a store with a Sealer reads plaintext keys.
	Plaintext PlaintextPolicy
}

// PlaintextPolicy says whether a store with a Sealer reads plaintext keys.
type PlaintextPolicy int

// The plaintext policies.
const (
	// PlaintextAuto reads plaintext keys if the database held any when the
	// store opened: a seal-in-place in progress. A database that was fully
	// sealed (or empty) gets no plaintext keys read.
	PlaintextAuto PlaintextPolicy = iota
	// PlaintextAllow always reads plaintext keys (administration tools,
	// an unseal in progress).
	PlaintextAllow
	// PlaintextRefuse never reads plaintext keys.
	PlaintextRefuse
)

func (s *Store) applyOptions(ctx context.Context, opts Options) error {
	if s.sealer == nil {
		return nil
	}
	st, err := s.Status(ctx)
	if err != nil {
		return err
	}
	var unknown []string
	for kid, n := range st.Sealed {
		if !s.sealer.Has(kid) {
			unknown = append(unknown, fmt.Sprintf("%d under key ID %s", n, kid))
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return fmt.Errorf("%w: the database holds keys sealed %s, the configured KEKs have key IDs %s",
			ErrWrongKEK, strings.Join(unknown, ", "), strings.Join(s.sealer.KeyIDs(), ", "))
	}
	switch opts.Plaintext {
	case PlaintextAllow:
		s.readsPlain = true
	case PlaintextAuto:
		s.readsPlain = st.Plaintext > 0
	}
	return nil
}

// ReadsPlaintext reports whether the store takes plaintext keys for keys:
// always without a Sealer; with one, as Options.Plaintext decided.
func (s *Store) ReadsPlaintext() bool { return s.sealer == nil || s.readsPlain }

// open replaces a sealed k.AESKey by its plaintext, or refuses k.
func (s *Store) open(k *ksm.Key) error {
	switch {
	case k.AESKey == "":
		return nil
	case seal.IsSealed(k.AESKey):
		if s.sealer == nil {
			return fmt.Errorf("%w: %w (public ID %q, key ID %q)", ksm.ErrDatabase, ErrNoKEK, k.PublicName, seal.KeyIDOf(k.AESKey))
		}
		pt, err := s.sealer.Open(k.PublicName, k.InternalName, k.AESKey)
		if err != nil {
			return fmt.Errorf("%w: aeskey of public ID %q: %w", ksm.ErrDatabase, k.PublicName, err)
		}
		k.AESKey = pt
	case s.sealer != nil && !s.readsPlain:
		return fmt.Errorf("%w: %w (public ID %q)", ksm.ErrDatabase, ErrPlaintext, k.PublicName)
	}
	return nil
}

// sealAll returns a copy of keys with every non-empty AESKey sealed, after
// making sure the column can hold them.
func (s *Store) sealAll(ctx context.Context, keys []ksm.Key) ([]ksm.Key, error) {
	if err := s.ensureWide(ctx); err != nil {
		return nil, err
	}
	out := slices.Clone(keys)
	for i := range out {
		if out[i].AESKey == "" {
			continue
		}
		v, err := s.sealer.Seal(out[i].PublicName, out[i].InternalName, out[i].AESKey)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %w", ksm.ErrDatabase, out[i].PublicName, err)
		}
		out[i].AESKey = v
	}
	return out, nil
}

// refuseIntoSealed fails when the database holds sealed keys: a store
// without the KEK must not add plaintext keys to it.
func refuseIntoSealed(ctx context.Context, tx *sql.Tx) error {
	var sealed bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM yubikeys WHERE aeskey LIKE '$%')").Scan(&sealed); err != nil {
		return fmt.Errorf("%w: check for sealed keys: %w", ksm.ErrDatabase, err)
	}
	if sealed {
		return fmt.Errorf("%w: %w: importing plaintext keys into this database needs the KEK", ksm.ErrDatabase, ErrNoKEK)
	}
	return nil
}

// Status counts the keys of a database by how they are stored.
type Status struct {
	Empty     int            // rows with an empty aeskey (no key)
	Plaintext int            // plaintext keys
	Sealed    map[string]int // sealed keys, by the key ID of the KEK that sealed them
	Malformed int            // values that start like a sealed value but are not one
}

// SealedTotal returns how many keys are sealed, under any KEK.
func (st Status) SealedTotal() int {
	n := 0
	for _, c := range st.Sealed {
		n += c
	}
	return n
}

// Mode names the database's state: "empty" (no keys), "plaintext",
// "sealed", or "mixed" (both: a seal-in-place or unseal not finished).
// Malformed values count as sealed.
func (st Status) Mode() string {
	sealed := st.SealedTotal() + st.Malformed
	switch {
	case st.Plaintext > 0 && sealed > 0:
		return "mixed"
	case st.Plaintext > 0:
		return "plaintext"
	case sealed > 0:
		return "sealed"
	default:
		return "empty"
	}
}

// Status counts the database's keys: one aggregate query.
func (s *Store) Status(ctx context.Context) (Status, error) {
	st := Status{Sealed: map[string]int{}}
	prefixLen := len(seal.Prefix) + seal.KeyIDLen + 1
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT kind, COUNT(*) FROM (SELECT CASE
		WHEN aeskey = '' THEN 'e' WHEN aeskey LIKE '$%%' THEN SUBSTR(aeskey, 1, %d) ELSE 'p' END AS kind
		FROM yubikeys) AS k GROUP BY kind`, prefixLen))
	if err != nil {
		return st, fmt.Errorf("%w: status: %w", ksm.ErrDatabase, err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return st, fmt.Errorf("%w: status: %w", ksm.ErrDatabase, err)
		}
		switch kind {
		case "e":
			st.Empty += n
		case "p":
			st.Plaintext += n
		default:
			if kid := seal.KeyIDOf(kind); kid != "" {
				st.Sealed[kid] += n
			} else {
				st.Malformed += n
			}
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("%w: status: %w", ksm.ErrDatabase, err)
	}
	return st, nil
}

// ColumnWidth returns the width of the aeskey column in characters, or 0
// when the database does not enforce one (SQLite).
func (s *Store) ColumnWidth(ctx context.Context) (int, error) {
	if s.db.Dialect != sqldb.MySQL {
		return 0, nil
	}
	var w sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'yubikeys' AND COLUMN_NAME = 'aeskey'`).Scan(&w)
	if err != nil {
		return 0, fmt.Errorf("%w: aeskey column width: %w", ksm.ErrDatabase, err)
	}
	return int(w.Int64), nil
}

// Widen makes the aeskey column hold sealed values: on MySQL it becomes
// varchar(128) unless it is that wide already (an ALTER TABLE, for which the
// database user needs the ALTER privilege; MariaDB keeps serving reads while
// it runs). It reports whether it changed the column.
func (s *Store) Widen(ctx context.Context) (bool, error) {
	w, err := s.ColumnWidth(ctx)
	if err != nil || w == 0 || w >= seal.ColumnWidth {
		return false, err
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf("ALTER TABLE yubikeys MODIFY aeskey varchar(%d) NOT NULL", seal.ColumnWidth)); err != nil {
		return false, fmt.Errorf("%w: widen the aeskey column from varchar(%d) to varchar(%d) for sealed keys: %w",
			ksm.ErrDatabase, w, seal.ColumnWidth, err)
	}
	s.wide.Store(true)
	return true, nil
}

// ensureWide widens the column once per store if needed.
func (s *Store) ensureWide(ctx context.Context) error {
	if s.wide.Load() {
		return nil
	}
	if _, err := s.Widen(ctx); err != nil {
		return err
	}
	s.wide.Store(true)
	return nil
}

// ConvertOp is what Convert does to the keys.
type ConvertOp int

// The conversions.
const (
	// Seal seals plaintext keys under the Sealer's current KEK; sealed keys
	// are left as they are.
	Seal ConvertOp = iota
	// Rotate re-seals keys sealed under another KEK the Sealer holds under
	// its current KEK; plaintext keys are left as they are.
	Rotate
	// Unseal replaces sealed keys by their plaintext.
	Unseal
)

func (op ConvertOp) String() string {
	switch op {
	case Seal:
		return "seal"
	case Rotate:
		return "rotate"
	case Unseal:
		return "unseal"
	}
	return fmt.Sprintf("ConvertOp(%d)", int(op))
}

// ConvertOptions tune Convert.
type ConvertOptions struct {
	// BatchSize is how many rows are read, then updated in one transaction; 0 means 100.
	BatchSize int
	// Progress, when set, is called after each batch with the totals so far.
	Progress func(ConvertResult)
}

// ConvertResult counts what Convert did.
type ConvertResult struct {
	Scanned int      // rows read
	Changed int      // rows rewritten
	Raced   int      // rows changed by someone else between read and update; left for the next run
	Failed  []string // public IDs whose key did not open (wrong KEK, moved or edited row, malformed value)
}

const defaultBatch = 100

// Convert seals, re-seals or unseals every key in place, as op says, while
// other clients keep reading and writing: rows are read in public-ID order,
// a batch at a time, and each changed row is written by a single-row UPDATE
// that applies only if the row still holds the value read, in one short
// transaction per batch. A reader sees each key either before or after,
// never half-written. A row that does not open is counted in Failed and
// left alone. Running Convert again resumes (rows already converted are
// skipped), so it is idempotent. It needs a Sealer; for Seal and Rotate it
// first widens the column (see Widen).
func (s *Store) Convert(ctx context.Context, op ConvertOp, opts ConvertOptions) (ConvertResult, error) {
	var res ConvertResult
	if s.sealer == nil {
		return res, fmt.Errorf("sqlstore: %s needs a KEK", op)
	}
	if op != Unseal {
		if err := s.ensureWide(ctx); err != nil {
			return res, err
		}
	}
	batch := opts.BatchSize
	if batch <= 0 {
		batch = defaultBatch
	}
	type row struct{ pub, uid, old, new string }
	var after *string // nil: from the start (the empty public ID included)
	for {
		q := "SELECT publicname, internalname, aeskey FROM yubikeys"
		args := []any{}
		if after != nil {
			q += " WHERE publicname > ?"
			args = append(args, *after)
		}
		q += fmt.Sprintf(" ORDER BY publicname LIMIT %d", batch)
		rows, err := s.db.QueryContext(ctx, q, args...)
		if err != nil {
			return res, fmt.Errorf("%w: %s: read: %w", ksm.ErrDatabase, op, err)
		}
		var page []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.pub, &r.uid, &r.old); err != nil {
				rows.Close()
				return res, fmt.Errorf("%w: %s: read: %w", ksm.ErrDatabase, op, err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("%w: %s: read: %w", ksm.ErrDatabase, op, err)
		}
		if len(page) == 0 {
			return res, nil
		}
		last := page[len(page)-1].pub
		after = &last
		res.Scanned += len(page)

		var todo []row
		for _, r := range page {
			nv, change, err := s.convertValue(op, r.pub, r.uid, r.old)
			switch {
			case err != nil:
				res.Failed = append(res.Failed, r.pub)
			case change:
				r.new = nv
				todo = append(todo, r)
			}
		}
		if len(todo) > 0 {
			changed, err := s.updateBatch(ctx, func(st *sql.Stmt) (int, error) {
				n := 0
				for _, r := range todo {
					out, err := st.ExecContext(ctx, r.new, r.pub, r.old)
					if err != nil {
						return 0, err
					}
					if c, err := out.RowsAffected(); err == nil && c > 0 {
						n++
					}
				}
				return n, nil
			})
			if err != nil {
				return res, fmt.Errorf("%w: %s: update: %w", ksm.ErrDatabase, op, err)
			}
			res.Changed += changed
			res.Raced += len(todo) - changed
		}
		if opts.Progress != nil {
			opts.Progress(res)
		}
		if len(page) < batch {
			return res, nil
		}
	}
}

// convertValue returns the new aeskey text of a row and whether it changes.
func (s *Store) convertValue(op ConvertOp, pub, uid, v string) (string, bool, error) {
	if v == "" {
		return "", false, nil
	}
	sealed := seal.IsSealed(v)
	switch op {
	case Seal:
		if sealed {
			return "", false, nil
		}
		nv, err := s.sealer.Seal(pub, uid, v)
		return nv, err == nil, err
	case Rotate:
		if !sealed || seal.KeyIDOf(v) == s.sealer.KeyID() {
			return "", false, nil
		}
		pt, err := s.sealer.Open(pub, uid, v)
		if err != nil {
			return "", false, err
		}
		nv, err := s.sealer.Seal(pub, uid, pt)
		return nv, err == nil, err
	case Unseal:
		if !sealed {
			return "", false, nil
		}
		pt, err := s.sealer.Open(pub, uid, v)
		return pt, err == nil, err
	}
	return "", false, fmt.Errorf("sqlstore: unknown conversion %d", int(op))
}

// updateBatch runs fn in a transaction with the compare-and-set UPDATE
// prepared, retrying a few times on a transient conflict.
func (s *Store) updateBatch(ctx context.Context, fn func(*sql.Stmt) (int, error)) (int, error) {
	var err error
	for range 5 {
		var n int
		n, err = s.updateOnce(ctx, fn)
		if err == nil || !sqldb.IsRetryable(err) {
			return n, err
		}
	}
	return 0, err
}

func (s *Store) updateOnce(ctx context.Context, fn func(*sql.Stmt) (int, error)) (n int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	st, err := tx.PrepareContext(ctx, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ? AND aeskey = ?")
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if n, err = fn(st); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
