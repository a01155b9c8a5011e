package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valseal"
)

// Errors of sealed stores. Client and EachClient return them (wrapped) for
// a secret they cannot hand out; verify answers BACKEND_ERROR.
var (
	ErrNoKEK     = errors.New("val/sqlstore: client secrets are sealed and no KEK is configured")
	ErrWrongKEK  = errors.New("val/sqlstore: client secrets are sealed under a KEK that is not configured")
	ErrPlaintext = errors.New("val/sqlstore: plaintext client secret refused: the store is sealed")
)

// Options are a store's optional settings. The zero value is a plaintext
// store.
type Options struct {
	// Sealer, when set, seals the secrets CreateClients and ImportClients
	// write and opens the sealed secrets Client and EachClient read.
	Sealer *valseal.Sealer
	// Plaintext says whether a store with a Sealer reads plaintext secrets.
	Plaintext PlaintextPolicy
}

// PlaintextPolicy says whether a store with a Sealer reads plaintext
// secrets.
type PlaintextPolicy int

// The plaintext policies.
const (
	// PlaintextAuto reads plaintext secrets if the database held any when
	// the store opened: a seal-in-place in progress. A database that was
	// fully sealed (or had no secrets) gets no plaintext secret read.
	PlaintextAuto PlaintextPolicy = iota
	// PlaintextAllow always reads plaintext secrets (administration tools,
	// an unseal in progress).
	PlaintextAllow
	// PlaintextRefuse never reads plaintext secrets.
	PlaintextRefuse
)

// OpenOptions is Open with options: with a Sealer, it fails when the
// database holds secrets sealed under a KEK the Sealer does not have.
func OpenOptions(ctx context.Context, cfg sqldb.Config, opts Options) (*Store, error) {
	s, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.applyOptions(ctx, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// OpenExistingOptions is OpenExisting with options (see OpenOptions).
func OpenExistingOptions(ctx context.Context, cfg sqldb.Config, opts Options) (*Store, error) {
	s, err := OpenExisting(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := s.applyOptions(ctx, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) applyOptions(ctx context.Context, opts Options) error {
	s.sealer = opts.Sealer
	if s.sealer == nil {
		return nil
	}
	st, err := s.SecretStatus(ctx)
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
		return fmt.Errorf("%w: the database holds secrets sealed %s, the configured KEKs have key IDs %s",
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

// Sealed reports whether the store has a Sealer.
func (s *Store) Sealed() bool { return s.sealer != nil }

// ReadsPlaintext reports whether the store takes plaintext secrets: always
// without a Sealer; with one, as Options.Plaintext decided.
func (s *Store) ReadsPlaintext() bool { return s.sealer == nil || s.readsPlain }

// openSecret replaces a sealed c.Secret by its plaintext, or refuses c.
// The error never shows the secret.
func (s *Store) openSecret(c *val.Client) error {
	switch {
	case c.Secret == "":
		return nil
	case valseal.IsSealed(c.Secret):
		if s.sealer == nil {
			return fmt.Errorf("%w (client %d, key ID %q)", ErrNoKEK, c.ID, valseal.KeyIDOf(c.Secret))
		}
		pt, err := s.sealer.Open(c.ID, c.Secret)
		if err != nil {
			return fmt.Errorf("val/sqlstore: secret of client %d: %w", c.ID, err)
		}
		c.Secret = pt
	case s.sealer != nil && !s.readsPlain:
		return fmt.Errorf("%w (client %d)", ErrPlaintext, c.ID)
	}
	return nil
}

// sealSecret returns the column value to write for a client's secret:
// sealed when the store has a Sealer.
func (s *Store) sealSecret(id int64, secret string) (string, error) {
	if s.sealer == nil || secret == "" {
		return secret, nil
	}
	v, err := s.sealer.Seal(id, secret)
	if err != nil {
		return "", fmt.Errorf("client %d: %w", id, err)
	}
	return v, nil
}

// prepareWrite is what a write of secrets needs first: with a Sealer, a
// column wide enough; without one, a database holding no sealed secret
// (a store without the KEK must not add plaintext secrets to a sealed
// database).
func (s *Store) prepareWrite(ctx context.Context) error {
	if s.sealer != nil {
		return s.ensureWide(ctx)
	}
	var sealed bool
	if err := s.db.QueryRowContext(ctx, "SELECT EXISTS (SELECT 1 FROM clients WHERE secret LIKE '$%')").Scan(&sealed); err != nil {
		return fmt.Errorf("check for sealed secrets: %w", err)
	}
	if sealed {
		return fmt.Errorf("%w: writing client secrets into this database needs the KEK", ErrNoKEK)
	}
	return nil
}

// SecretStatus counts the clients of a database by how their secrets are
// stored.
type SecretStatus struct {
	Empty     int            // clients with an empty secret
	Plaintext int            // plaintext secrets
	Sealed    map[string]int // sealed secrets, by the key ID of the KEK that sealed them
	Malformed int            // values that start like a sealed value but are not one
}

// SealedTotal returns how many secrets are sealed, under any KEK.
func (st SecretStatus) SealedTotal() int {
	n := 0
	for _, c := range st.Sealed {
		n += c
	}
	return n
}

// Mode names the database's state: "empty" (no secrets), "plaintext",
// "sealed", or "mixed" (both: a seal-in-place or unseal not finished).
// Malformed values count as sealed.
func (st SecretStatus) Mode() string {
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

// SecretStatus counts the database's client secrets: one aggregate query.
func (s *Store) SecretStatus(ctx context.Context) (SecretStatus, error) {
	st := SecretStatus{Sealed: map[string]int{}}
	prefixLen := len(valseal.Prefix) + 8 + 1
	rows, err := s.db.QueryContext(ctx, fmt.Sprintf(`SELECT kind, COUNT(*) FROM (SELECT CASE
		WHEN secret = '' THEN 'e' WHEN secret LIKE '$%%' THEN SUBSTR(secret, 1, %d) ELSE 'p' END AS kind
		FROM clients) AS k GROUP BY kind`, prefixLen))
	if err != nil {
		return st, fmt.Errorf("val/sqlstore: secret status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return st, fmt.Errorf("val/sqlstore: secret status: %w", err)
		}
		switch kind {
		case "e":
			st.Empty += n
		case "p":
			st.Plaintext += n
		default:
			if kid := valseal.KeyIDOf(kind); kid != "" {
				st.Sealed[kid] += n
			} else {
				st.Malformed += n
			}
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("val/sqlstore: secret status: %w", err)
	}
	return st, nil
}

// SecretColumnWidth returns the width of the secret column in characters,
// or 0 when the database does not enforce one (SQLite).
func (s *Store) SecretColumnWidth(ctx context.Context) (int, error) {
	if s.db.Dialect != sqldb.MySQL {
		return 0, nil
	}
	var w sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT CHARACTER_MAXIMUM_LENGTH FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'clients' AND COLUMN_NAME = 'secret'`).Scan(&w)
	if err != nil {
		return 0, fmt.Errorf("val/sqlstore: secret column width: %w", err)
	}
	return int(w.Int64), nil
}

// WidenSecrets makes the secret column hold sealed values: on MySQL it
// becomes varchar(160) unless it is that wide already (an ALTER TABLE, for
// which the database user needs the ALTER privilege). It reports whether
// it changed the column.
func (s *Store) WidenSecrets(ctx context.Context) (bool, error) {
	w, err := s.SecretColumnWidth(ctx)
	if err != nil || w == 0 || w >= valseal.ColumnWidth {
		return false, err
	}
	q := fmt.Sprintf("ALTER TABLE clients MODIFY secret VARCHAR(%d) NOT NULL DEFAULT ''", valseal.ColumnWidth)
	if _, err := s.db.ExecContext(ctx, q); err != nil {
		return false, fmt.Errorf("val/sqlstore: widen the secret column from varchar(%d) to varchar(%d) for sealed secrets: %w",
			w, valseal.ColumnWidth, err)
	}
	s.wide.Store(true)
	return true, nil
}

// ensureWide widens the column once per store if needed.
func (s *Store) ensureWide(ctx context.Context) error {
	if s.wide.Load() {
		return nil
	}
	if _, err := s.WidenSecrets(ctx); err != nil {
		return err
	}
	s.wide.Store(true)
	return nil
}

// ConvertOp is what ConvertSecrets does to the secrets.
type ConvertOp int

// The conversions.
const (
	// Seal seals plaintext secrets under the Sealer's current KEK; sealed
	// secrets are left as they are.
	Seal ConvertOp = iota
	// Rotate re-seals secrets sealed under another KEK the Sealer holds
	// under its current KEK; plaintext secrets are left as they are.
	Rotate
	// Unseal replaces sealed secrets by their plaintext.
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

// ConvertOptions tune ConvertSecrets.
type ConvertOptions struct {
	// BatchSize is how many rows are read, then updated in one
	// transaction; 0 means 100.
	BatchSize int
	// Progress, when set, is called after each batch with the totals so far.
	Progress func(ConvertResult)
}

// ConvertResult counts what ConvertSecrets did.
type ConvertResult struct {
	Scanned int     // rows read
	Changed int     // rows rewritten
	Raced   int     // rows changed by someone else between read and update; left for the next run
	Failed  []int64 // client ids whose secret did not open (wrong KEK, moved row, malformed value)
}

const defaultBatch = 100

// ConvertSecrets seals, re-seals or unseals every client secret in place,
// as op says, while validation servers keep reading: rows are read in id
// order, a batch at a time, and each changed row is written by a
// single-row UPDATE that applies only if the row still holds the value
// read, in one short transaction per batch. A reader sees each secret
// either before or after, never half-written. A row that does not open is
// counted in Failed and left alone. Running it again resumes (rows already
// converted are skipped). It needs a Sealer; for Seal and Rotate it first
// widens the column (see WidenSecrets).
func (s *Store) ConvertSecrets(ctx context.Context, op ConvertOp, opts ConvertOptions) (ConvertResult, error) {
	var res ConvertResult
	if s.sealer == nil {
		return res, fmt.Errorf("val/sqlstore: %s needs a KEK", op)
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
	type row struct {
		id       int64
		old, new string
	}
	after := int64(-1 << 63)
	for {
		rows, err := s.db.QueryContext(ctx, fmt.Sprintf("SELECT id, secret FROM clients WHERE id > ? ORDER BY id LIMIT %d", batch), after)
		if err != nil {
			return res, fmt.Errorf("val/sqlstore: %s: read: %w", op, err)
		}
		var page []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.old); err != nil {
				rows.Close()
				return res, fmt.Errorf("val/sqlstore: %s: read: %w", op, err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return res, fmt.Errorf("val/sqlstore: %s: read: %w", op, err)
		}
		if len(page) == 0 {
			return res, nil
		}
		after = page[len(page)-1].id
		res.Scanned += len(page)

		var todo []row
		for _, r := range page {
			nv, change, err := s.convertValue(op, r.id, r.old)
			switch {
			case err != nil:
				res.Failed = append(res.Failed, r.id)
			case change:
				r.new = nv
				todo = append(todo, r)
			}
		}
		if len(todo) > 0 {
			var changed int
			err := retry(ctx, func() error {
				var err error
				changed, err = s.updateSecrets(ctx, func(st *sql.Stmt) (int, error) {
					n := 0
					for _, r := range todo {
						out, err := st.ExecContext(ctx, r.new, r.id, r.old)
						if err != nil {
							return 0, err
						}
						if c, err := out.RowsAffected(); err == nil && c > 0 {
							n++
						}
					}
					return n, nil
				})
				return err
			})
			if err != nil {
				return res, fmt.Errorf("val/sqlstore: %s: update: %w", op, err)
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

// convertValue returns the new secret text of a row and whether it changes.
func (s *Store) convertValue(op ConvertOp, id int64, v string) (string, bool, error) {
	if v == "" {
		return "", false, nil
	}
	sealed := valseal.IsSealed(v)
	switch op {
	case Seal:
		if sealed {
			return "", false, nil
		}
		nv, err := s.sealer.Seal(id, v)
		return nv, err == nil, err
	case Rotate:
		if !sealed || valseal.KeyIDOf(v) == s.sealer.KeyID() {
			return "", false, nil
		}
		pt, err := s.sealer.Open(id, v)
		if err != nil {
			return "", false, err
		}
		nv, err := s.sealer.Seal(id, pt)
		return nv, err == nil, err
	case Unseal:
		if !sealed {
			return "", false, nil
		}
		pt, err := s.sealer.Open(id, v)
		return pt, err == nil, err
	}
	return "", false, fmt.Errorf("val/sqlstore: unknown conversion %d", int(op))
}

// updateSecrets runs fn in a transaction with the compare-and-set UPDATE
// prepared.
func (s *Store) updateSecrets(ctx context.Context, fn func(*sql.Stmt) (int, error)) (n int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// MySQL compares the old value with the column's collation, which may
	// ignore case; base64 secrets differ in case only rarely, but BINARY
	// makes the comparison exact on both dialects.
	q := "UPDATE clients SET secret = ? WHERE id = ? AND secret = ?"
	if s.db.Dialect == sqldb.MySQL {
		q = "UPDATE clients SET secret = ? WHERE id = ? AND CAST(secret AS BINARY) = CAST(? AS BINARY)"
	}
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	if n, err = fn(st); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}
