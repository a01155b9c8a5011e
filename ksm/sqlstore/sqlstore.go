// Package sqlstore is the ksm.KeyStore on SQL databases: SQLite and
// MySQL/MariaDB, using Yubico's yubikeys table unchanged, so an existing
// ykksm database works as it is.
//
// # Sealed keys
//
// With a [seal.Sealer] in its [Options], a store keeps AES keys sealed at
// rest (see package ksm/seal): Import seals every non-empty key, and Lookup
// and Each open sealed keys, so callers, ykksm-export and ykksm-checksum see
// the same plaintext keys whether the database is sealed or not. The rules:
//
//   - A store without a Sealer never takes a sealed value for a key: Lookup
//     and Each fail with an error wrapping ksm.ErrDatabase and [ErrNoKEK],
//     and Import refuses to add plaintext keys to a database that holds
//     sealed ones.
//   - OpenOptions with a Sealer fails with [ErrWrongKEK] when the database
//     holds keys sealed under a KEK the Sealer lacks: a wrong KEK is an error
//     when the store opens, not at the first OTP.
//   - A value that does not open (wrong KEK, or a row moved to another
//     public ID or edited to another UID) fails Lookup and Each with an
//     error wrapping ksm.ErrDatabase and a seal error. A KSM answers
//     "ERR Database error": the OTP was not judged, and YK-VAL may ask
//     another KSM. The error names the public ID, never key material.
//   - A store with a Sealer reads plaintext keys only as [Options.Plaintext]
//     says. The default, PlaintextAuto, reads them only if the database held
//     plaintext keys when the store opened (a seal-in-place in progress), so
//     that a plaintext key written later into a sealed database (by the PHP
//     tools, or by someone with write access to the database who wants to
//     plant a key) is refused with [ErrPlaintext].
//
// [Store.Status] counts plaintext and sealed keys, [Store.Convert] seals,
// re-seals (KEK rotation) or unseals the keys in place, in small
// transactions of single-row compare-and-set UPDATEs, while servers keep
// reading. A sealed value is 95 characters, more than Yubico's varchar(32)
// aeskey column holds: [Store.Widen] widens it on MySQL to varchar(128),
// and Import with a Sealer does so when the column is too narrow (SQLite
// does not enforce lengths). The schema files stay Yubico's, so a plaintext
// database remains exactly what the PHP KSM expects; the PHP KSM reads a
// widened column as well.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
)

// Store is a ksm.KeyStore on a SQL database.
type Store struct {
	db         *sqldb.DB
	lookup     *sql.Stmt
	active     string       // SQL test for an active row
	sealer     *seal.Sealer // nil: plaintext store
	readsPlain bool         // with a sealer: plaintext keys are read
	wide       atomic.Bool  // the aeskey column is known to hold sealed values
}

var _ ksm.KeyStore = (*Store)(nil)

// ServerCacheKiB is the SQLite page cache per connection (sqldb.Config's
// CacheKiB) the KSM servers use: a lookup reads a few pages of the yubikeys
// B-tree, behind the servers' own key cache, while SQLite's default of about
// 2 MiB per connection, filled by each of the pool's connections, made up a
// third of ykksmd's memory at load. Measured with 10,000 sealed keys at 32
// concurrent decrypts: peak RSS 61 MiB with the default, 38 MiB with 512 KiB,
// and no difference in decrypts/s beyond the run-to-run spread.
const ServerCacheKiB = 512

// Open opens the database cfg names, creates the yubikeys table when it does
// not exist yet, and returns a plaintext store.
func Open(ctx context.Context, cfg sqldb.Config) (*Store, error) {
	return OpenOptions(ctx, cfg, Options{})
}

// OpenOptions is Open with options: a store with a Sealer keeps keys sealed.
func OpenOptions(ctx context.Context, cfg sqldb.Config, opts Options) (*Store, error) {
	db, err := sqldb.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ksm.ErrDatabase, err)
	}
	s, err := NewOptions(ctx, db, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// New returns a plaintext store on an open database, creating the table if
// needed. The store owns db from then on: Close closes it.
func New(ctx context.Context, db *sqldb.DB) (*Store, error) {
	return NewOptions(ctx, db, Options{})
}

// NewOptions is New with options. With a Sealer it checks the keys already
// stored (see the package documentation) and fails with an error wrapping
// ErrWrongKEK when some are sealed under a KEK the Sealer does not hold.
// On an error the caller still owns db.
func NewOptions(ctx context.Context, db *sqldb.DB, opts Options) (*Store, error) {
	if err := db.EnsureSchema(ctx, "ksm", "yubikeys"); err != nil {
		return nil, fmt.Errorf("%w: %w", ksm.ErrDatabase, err)
	}
	active := activeExpr(db.Dialect)
	st, err := db.PrepareContext(ctx,
		"SELECT publicname, aeskey, internalname, serialnr FROM yubikeys WHERE publicname = ? AND "+active)
	if err != nil {
		return nil, fmt.Errorf("%w: prepare lookup: %w", ksm.ErrDatabase, err)
	}
	s := &Store{db: db, lookup: st, active: active, sealer: opts.Sealer}
	if err := s.applyOptions(ctx, opts); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

// activeExpr is the SQL test for an active row. YK-KSM used
// "(active OR active = 'true')" everywhere, which matches rows a PHP tool
// wrote as the text 'true' into SQLite; but on MySQL 0 = 'true' is true, so
// there it matched inactive keys too. Each dialect gets its own test.
func activeExpr(d sqldb.Dialect) string {
	if d == sqldb.MySQL {
		return "(active <> 0)"
	}
	return "(active OR active = 'true')"
}

// DB returns the underlying database.
func (s *Store) DB() *sqldb.DB { return s.db }

// Lookup implements ksm.KeyStore.
func (s *Store) Lookup(ctx context.Context, publicName string) (ksm.Key, error) {
	k := ksm.Key{PublicName: publicName, Active: true}
	err := s.lookup.QueryRowContext(ctx, publicName).Scan(&k.PublicName, &k.AESKey, &k.InternalName, &k.SerialNr)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ksm.Key{}, ksm.ErrUnknownKey
	case err != nil:
		return ksm.Key{}, fmt.Errorf("%w: lookup: %w", ksm.ErrDatabase, err)
	case k.AESKey == "", k.PublicName != publicName: // MySQL's default collation ignores case
		return ksm.Key{}, ksm.ErrUnknownKey
	}
	if err := s.open(&k); err != nil {
		return ksm.Key{}, err
	}
	if k.AESKey == "" {
		return ksm.Key{}, ksm.ErrUnknownKey
	}
	return k, nil
}

// importBatch is how many rows one INSERT statement carries.
const importBatch = 200

// Import implements ksm.KeyStore: one transaction, multi-row inserts.
func (s *Store) Import(ctx context.Context, keys []ksm.Key) (err error) {
	seen := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		if _, dup := seen[k.PublicName]; dup {
			return fmt.Errorf("%w: %q appears twice in the batch", ksm.ErrDuplicate, k.PublicName)
		}
		seen[k.PublicName] = struct{}{}
	}
	if s.sealer != nil {
		if keys, err = s.sealAll(ctx, keys); err != nil {
			return err
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %w", ksm.ErrDatabase, err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	if s.sealer == nil {
		if err = refuseIntoSealed(ctx, tx); err != nil {
			return err
		}
	}
	const cols = "(serialnr, publicname, created, internalname, aeskey, lockcode, creator, active, hardware)"
	const ph = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
	full := "INSERT INTO yubikeys " + cols + " VALUES " + strings.TrimSuffix(strings.Repeat(ph+", ", importBatch), ", ")
	var fullStmt *sql.Stmt
	for start := 0; start < len(keys); start += importBatch {
		batch := keys[start:min(start+importBatch, len(keys))]
		args := make([]any, 0, 9*len(batch))
		for _, k := range batch {
			args = append(args, k.SerialNr, k.PublicName, k.Created, k.InternalName, k.AESKey, k.LockCode, k.Creator, k.Active, k.Hardware)
		}
		if len(batch) == importBatch {
			if fullStmt == nil {
				if fullStmt, err = tx.PrepareContext(ctx, full); err != nil {
					return fmt.Errorf("%w: prepare insert: %w", ksm.ErrDatabase, err)
				}
				defer fullStmt.Close()
			}
			_, err = fullStmt.ExecContext(ctx, args...)
		} else {
			q := "INSERT INTO yubikeys " + cols + " VALUES " + strings.TrimSuffix(strings.Repeat(ph+", ", len(batch)), ", ")
			_, err = tx.ExecContext(ctx, q, args...)
		}
		if err != nil {
			if sqldb.IsDuplicate(err) {
				return fmt.Errorf("%w: %w", ksm.ErrDuplicate, s.whichExists(ctx, tx, batch, err))
			}
			return fmt.Errorf("%w: insert: %w", ksm.ErrDatabase, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %w", ksm.ErrDatabase, err)
	}
	return nil
}

// whichExists names the first key of batch that is already stored, for the error message.
func (s *Store) whichExists(ctx context.Context, tx *sql.Tx, batch []ksm.Key, cause error) error {
	for _, k := range batch {
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM yubikeys WHERE publicname = ?", k.PublicName).Scan(&n); err == nil && n > 0 {
			return fmt.Errorf("public name %q (serial %d) is already in the database", k.PublicName, k.SerialNr)
		}
	}
	return cause
}

// Each implements ksm.KeyStore.
func (s *Store) Each(ctx context.Context, fn func(ksm.Key) error) error {
	hardware := strings.ReplaceAll(s.active, "active", "hardware")
	rows, err := s.db.QueryContext(ctx, `SELECT serialnr, publicname, created, internalname, aeskey, lockcode, creator,
		COALESCE(`+s.active+`, 0), COALESCE(`+hardware+`, 0)
		FROM yubikeys ORDER BY serialnr, publicname`)
	if err != nil {
		return fmt.Errorf("%w: list: %w", ksm.ErrDatabase, err)
	}
	defer rows.Close()
	for rows.Next() {
		var k ksm.Key
		if err := rows.Scan(&k.SerialNr, &k.PublicName, &k.Created, &k.InternalName, &k.AESKey, &k.LockCode, &k.Creator, &k.Active, &k.Hardware); err != nil {
			return fmt.Errorf("%w: scan: %w", ksm.ErrDatabase, err)
		}
		if err := s.open(&k); err != nil {
			return err
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: list: %w", ksm.ErrDatabase, err)
	}
	return nil
}

// Ping checks that the database answers; errors wrap ksm.ErrDatabase.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: ping: %w", ksm.ErrDatabase, err)
	}
	return nil
}

// Close implements ksm.KeyStore.
func (s *Store) Close() error {
	s.lookup.Close()
	return s.db.Close()
}
