// Package sqlstore is the val.Store on SQL databases: SQLite and
// MySQL/MariaDB, using Yubico's clients, yubikeys and queue tables unchanged,
// so an existing ykval database works as it is.
//
// # Replay guard
//
// AdvanceKey is one conditional UPDATE,
//
//	UPDATE yubikeys SET … WHERE yk_publicname = ? AND
//	  (yk_counter < ? OR (yk_counter = ? AND yk_use < ?))
//
// and it reports true when that statement changed a row. The database
// evaluates the condition on the latest committed row while holding the
// row's write lock (InnoDB) or the database's write lock (SQLite), so of
// concurrent calls with the same position exactly one wins, also across
// processes sharing the database. MySQL's RowsAffected counts changed rather
// than matched rows unless the DSN says clientFoundRows=true; both agree
// here, because a winning update always changes yk_counter or yk_use. Where
// the two differ (SetActive to the value a key already has), the store checks
// for the row instead of trusting RowsAffected.
//
// CheckAndAdvance (used by ykvald's verifies when there is no sync pool)
// reads the key's row and runs the same UPDATE in one transaction; on SQLite
// that is a transaction of the group committer, which holds the write lock
// from its start, so the state the caller decides on is the one the UPDATE
// compares against.
//
// AdvanceKey writes only modified, yk_counter, yk_use, yk_low, yk_high and
// nonce, so the column grants Yubico's installation guide gives the
// ykval_verifier user suffice for verification and replication (Client,
// KeyState, EnrollKey, AdvanceKey, AdvanceKeyQueued, SyncKey and the queue
// methods).
//
// # Replication
//
// AdvanceKeyQueued runs the same UPDATE and, only if it changed the row, one
// multi-row INSERT of the queue entries, in one transaction: a verify's new
// counters and its queue rows for the sync peers are committed together or
// not at all. SyncKey (the sync endpoint's update-if-higher) reads the row
// with SELECT … FOR UPDATE on MySQL, inside a write transaction on SQLite,
// so the values it returns as "before" are exactly those its UPDATE compared
// against, even with verifies of the same key running at the same time.
//
// # Durability
//
// SQLite databases run with synchronous=FULL (internal/sqldb), so an accepted
// OTP's new counters are on disk before AdvanceKey returns. On MySQL and
// MariaDB the same holds only with innodb_flush_log_at_trx_commit=1, the
// server's default: a server configured with 0 or 2 can forget the last
// second of accepted OTPs in a crash, and a forgotten counter lets an OTP be
// replayed.
//
// # Sealed secrets
//
// With Options.Sealer (OpenOptions, OpenExistingOptions) the clients'
// API secrets are sealed at rest under a KEK (see package val/valseal):
// CreateClients and ImportClients write them sealed, Client and EachClient
// open them, and a value that does not open (a wrong KEK, a row moved to
// another id) is an error, never a secret; so is a sealed secret read
// without a Sealer (ErrNoKEK), and a plaintext one read by a store whose
// database was fully sealed when it opened (ErrPlaintext, unless
// Options.Plaintext allows it). A store without a Sealer refuses to write
// secrets into a database that holds sealed ones. ConvertSecrets seals,
// re-seals or unseals a database in place while servers read it;
// SecretStatus counts the secrets by kind. Sealed values are longer than
// Yubico's varchar(60): on MySQL the column is widened to varchar(160)
// before the first sealed write (WidenSecrets; the ALTER privilege is
// needed once). Verification needs only SELECT, as before.
//
// # Dialect differences the store hides
//
//   - Active flags: Yubico's columns are BOOLEAN. On MySQL a row is active
//     when active <> 0 (never active = 'true', which MySQL evaluates as
//     active = 0 and so matches inactive rows); on SQLite when active is
//     true or the text 'true' that some PHP versions wrote. NULL is inactive.
//   - Public names are compared exactly, case included, on both dialects.
//     MySQL's default collations ignore case, so there a name differing from
//     a stored one only in case cannot be inserted (the table's unique key
//     refuses it): EnrollKey and ImportKey return an error wrapping
//     val.ErrDuplicate for it. EachKey orders by the names' bytes on both
//     dialects, so exports and checksums agree across backends.
//   - NULL in the nullable text columns (email, notes, otp, nonce) reads as "".
//   - Transient conflicts (MySQL deadlocks and lock wait timeouts, also
//     Galera certification failures; SQLite busy) are retried a few times
//     with a short backoff; every other error is returned at once, wrapped.
package sqlstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valseal"
)

// Store is a val.Store on a SQL database.
type Store struct {
	db *sqldb.DB

	active   string // SQL test for an active row
	byName   string // SQL condition selecting one yubikeys row by exact public name
	nameArgs int    // how many times byName takes the name
	keyCols  string // the yubikeys columns read into a KeyState, in scanKey's order

	// The statements of the verification path, prepared on first use (a
	// user without INSERT or UPDATE rights can still read).
	client, keyState, enroll, advance lazyStmt

	// exact is the advance UPDATE that also requires the row to hold the
	// state CheckAndAdvance decided on (see advanceExact); keys remembers
	// those states. MySQL only: nil keys on SQLite.
	exact   lazyStmt
	keys    *keyCache
	guesses guessStats

	// group batches the commits of AdvanceKey, AdvanceKeyQueued, SyncKey
	// and SettleQueue on SQLite (see advanceGrouped); nil on MySQL.
	group *sqldb.GroupCommitter

	// Sealed client secrets (see sealed.go); nil: plaintext.
	sealer     *valseal.Sealer
	readsPlain bool        // with a sealer, whether plaintext secrets are read
	wide       atomic.Bool // the secret column is known to hold sealed values
}

// lazyStmt is a statement prepared when it is first needed.
type lazyStmt struct {
	query string
	mu    sync.Mutex
	st    *sql.Stmt
}

func (l *lazyStmt) get(ctx context.Context, db *sqldb.DB) (*sql.Stmt, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st == nil {
		st, err := db.PrepareContext(ctx, l.query)
		if err != nil {
			return nil, err
		}
		l.st = st
	}
	return l.st, nil
}

func (l *lazyStmt) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		l.st.Close()
	}
}

var _ val.Store = (*Store)(nil)

// Open opens the database cfg names, creates the clients, yubikeys and queue
// tables when they do not exist yet, and returns the store.
func Open(ctx context.Context, cfg sqldb.Config) (*Store, error) {
	db, err := sqldb.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("val/sqlstore: %w", err)
	}
	s, err := New(ctx, db)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// OpenExisting is Open for tools that only read: it creates nothing. A
// SQLite file that does not exist, or a database without Yubico's tables, is
// an error, so that a mistyped DSN is not mistaken for an empty database.
func OpenExisting(ctx context.Context, cfg sqldb.Config) (*Store, error) {
	if err := sqldb.RequireExisting(cfg.DSN); err != nil {
		return nil, fmt.Errorf("val/sqlstore: %w", err)
	}
	db, err := sqldb.Open(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("val/sqlstore: %w", err)
	}
	for _, table := range tables {
		// Table names are constants, never input.
		if _, err := db.ExecContext(ctx, "SELECT 1 FROM "+table+" WHERE 1=0"); err != nil {
			db.Close()
			return nil, fmt.Errorf("val/sqlstore: %s has no %s table: %w", db.Name, table, err)
		}
	}
	return newStore(db), nil
}

// tables are YK-VAL's tables.
var tables = []string{"clients", "yubikeys", "queue"}

// New returns a store on an open database, creating the tables if needed.
// The store owns db from then on: Close closes it.
func New(ctx context.Context, db *sqldb.DB) (*Store, error) {
	if err := db.EnsureSchema(ctx, "val", tables...); err != nil {
		return nil, fmt.Errorf("val/sqlstore: %w", err)
	}
	return newStore(db), nil
}

func newStore(db *sqldb.DB) *Store {
	s := &Store{db: db}
	if db.Dialect == sqldb.MySQL {
		s.active = "(active <> 0)"
		// The first test uses the unique index; the second makes it exact,
		// whatever the column's collation.
		s.byName = "yk_publicname = ? AND CAST(yk_publicname AS BINARY) = ?"
		s.nameArgs = 2
	} else {
		s.active = "(active OR active = 'true')"
		s.byName = "yk_publicname = ?"
		s.nameArgs = 1
	}
	s.keyCols = "COALESCE(" + s.active + ", 0), created, modified, yk_publicname, yk_counter, yk_use, yk_low, yk_high, COALESCE(nonce, ''), COALESCE(notes, '')"

	s.client.query = "SELECT id, created, secret, COALESCE(email, ''), COALESCE(notes, ''), COALESCE(otp, '') FROM clients WHERE id = ? AND " + s.active
	s.keyState.query = "SELECT " + s.keyCols + " FROM yubikeys WHERE " + s.byName
	s.enroll.query = "INSERT INTO yubikeys (active, created, modified, yk_publicname, yk_counter, yk_use, yk_low, yk_high, nonce, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	s.advance.query = "UPDATE yubikeys SET modified = ?, yk_counter = ?, yk_use = ?, yk_low = ?, yk_high = ?, nonce = ? WHERE " + s.byName + " AND (yk_counter < ? OR (yk_counter = ? AND yk_use < ?))"
	s.exact.query = s.advance.query + " AND " + s.active + " AND modified = ? AND yk_counter = ? AND yk_use = ? AND yk_low = ? AND yk_high = ?"
	if db.Dialect == sqldb.MySQL {
		s.keys = newKeyCache(keyCacheSize)
	}
	if db.Dialect == sqldb.SQLite {
		// SQLite has one writer and, with synchronous=FULL, one fsync per
		// commit: group the replay guard's updates so that concurrent OKs
		// share a commit. Each caller still waits for its own commit.
		s.group = sqldb.NewGroupCommitter(db.DB, groupBatch)
	}
	return s
}

// groupBatch is the most AdvanceKey updates one SQLite commit carries.
const groupBatch = 128

// DB returns the underlying database.
func (s *Store) DB() *sqldb.DB { return s.db }

// names returns the arguments byName takes for name.
func (s *Store) names(name string) []any {
	if s.nameArgs == 2 {
		return []any{name, name}
	}
	return []any{name}
}

// maxAttempts bounds the retries of a transient conflict.
const maxAttempts = 8

// retry runs fn again while it fails with a transient conflict
// (sqldb.IsRetryable), up to maxAttempts times, and returns its last error.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxAttempts || !sqldb.IsRetryable(err) {
			return err
		}
		if werr := wait(ctx, attempt); werr != nil {
			return err
		}
	}
}

// wait sleeps a random time growing with attempt, or until ctx ends.
func wait(ctx context.Context, attempt int) error {
	d := time.Duration(1+rand.IntN(1<<min(attempt, 6))) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Client implements val.Store.
func (s *Store) Client(ctx context.Context, id int64) (val.Client, error) {
	c := val.Client{ID: id, Active: true}
	st, err := s.client.get(ctx, s.db)
	if err != nil {
		return val.Client{}, fmt.Errorf("val/sqlstore: client %d: %w", id, err)
	}
	err = st.QueryRowContext(ctx, id).Scan(&c.ID, &c.Created, &c.Secret, &c.Email, &c.Notes, &c.OTP)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return val.Client{}, val.ErrNotFound
	case err != nil:
		return val.Client{}, fmt.Errorf("val/sqlstore: client %d: %w", id, err)
	}
	if err := s.openSecret(&c); err != nil {
		return val.Client{}, err
	}
	return c, nil
}

// CreateClients implements val.Store. On SQLite the transaction holds the
// write lock from its start (sqldb's _txlock=immediate). On MySQL the
// transaction runs under a named lock (GET_LOCK) for the database's clients
// table, which serialises CreateClients calls of every process using that
// server; should ids still collide (a multi-primary cluster, or a client
// inserted by other software), the duplicate key makes the whole transaction
// run again, as does a deadlock.
func (s *Store) CreateClients(ctx context.Context, template val.Client, n int) ([]val.Client, error) {
	if n < 0 {
		return nil, fmt.Errorf("val/sqlstore: create %d clients: negative count", n)
	}
	if n == 0 {
		return nil, nil
	}
	if err := s.prepareWrite(ctx); err != nil {
		return nil, fmt.Errorf("val/sqlstore: create clients: %w", err)
	}
	for attempt := 1; ; attempt++ {
		out, err := s.createClients(ctx, template, n)
		if err == nil {
			return out, nil
		}
		if attempt == maxAttempts || !(sqldb.IsRetryable(err) || sqldb.IsDuplicate(err)) {
			return nil, fmt.Errorf("val/sqlstore: create clients: %w", err)
		}
		if wait(ctx, attempt) != nil {
			return nil, fmt.Errorf("val/sqlstore: create clients: %w", err)
		}
	}
}

// clientsLock names the MySQL lock CreateClients takes: one per database.
const clientsLock = "LEFT(CONCAT('ykval.clients:', DATABASE()), 64)"

func (s *Store) createClients(ctx context.Context, template val.Client, n int) (out []val.Client, err error) {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if s.db.Dialect == sqldb.MySQL {
		var got sql.NullInt64
		if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+clientsLock+", 30)").Scan(&got); err != nil {
			return nil, err
		}
		if got.Int64 != 1 {
			return nil, errors.New("timed out waiting for the clients lock")
		}
		defer func() {
			// Release even when ctx has ended; a connection that still holds
			// the lock must not go back to the pool.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if _, err := conn.ExecContext(rctx, "DO RELEASE_LOCK("+clientsLock+")"); err != nil {
				conn.Raw(func(any) error { return driver.ErrBadConn })
			}
		}()
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	var id int64
	if err := tx.QueryRowContext(ctx, "SELECT id FROM clients ORDER BY id DESC LIMIT 1").Scan(&id); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	ins, err := tx.PrepareContext(ctx, "INSERT INTO clients (id, active, created, secret, email, notes, otp) VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return nil, err
	}
	defer ins.Close()
	out = make([]val.Client, n)
	for i := range out {
		c := template
		c.ID = id + 1 + int64(i)
		secret, err := s.sealSecret(c.ID, c.Secret)
		if err != nil {
			return nil, err
		}
		if _, err := ins.ExecContext(ctx, c.ID, c.Active, c.Created, secret, c.Email, c.Notes, c.OTP); err != nil {
			return nil, err
		}
		out[i] = c
	}
	return out, tx.Commit()
}

// ImportClients implements val.Store, in one transaction.
func (s *Store) ImportClients(ctx context.Context, clients []val.Client) (int, error) {
	var inserted int
	if err := s.prepareWrite(ctx); err != nil {
		return 0, fmt.Errorf("val/sqlstore: import clients: %w", err)
	}
	err := retry(ctx, func() error {
		var err error
		inserted, err = s.importClients(ctx, clients)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("val/sqlstore: import clients: %w", err)
	}
	return inserted, nil
}

func (s *Store) importClients(ctx context.Context, clients []val.Client) (inserted int, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	ins, err := tx.PrepareContext(ctx, "INSERT INTO clients (id, active, created, secret, email, notes, otp) VALUES (?, ?, ?, ?, ?, ?, ?)")
	if err != nil {
		return 0, err
	}
	defer ins.Close()
	for _, c := range clients {
		// A duplicate fails only its own statement, on both dialects; the
		// transaction goes on.
		secret, err := s.sealSecret(c.ID, c.Secret)
		if err != nil {
			return 0, err
		}
		_, err = ins.ExecContext(ctx, c.ID, c.Active, c.Created, secret, c.Email, c.Notes, c.OTP)
		switch {
		case err == nil:
			inserted++
		case !sqldb.IsDuplicate(err):
			return 0, fmt.Errorf("client %d: %w", c.ID, err)
		}
	}
	return inserted, tx.Commit()
}

// EachClient implements val.Store.
func (s *Store) EachClient(ctx context.Context, fn func(val.Client) error) error {
	rows, err := s.db.QueryContext(ctx, "SELECT id, COALESCE("+s.active+", 0), created, secret, COALESCE(email, ''), COALESCE(notes, ''), COALESCE(otp, '') FROM clients ORDER BY id")
	if err != nil {
		return fmt.Errorf("val/sqlstore: list clients: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c val.Client
		if err := rows.Scan(&c.ID, &c.Active, &c.Created, &c.Secret, &c.Email, &c.Notes, &c.OTP); err != nil {
			return fmt.Errorf("val/sqlstore: list clients: %w", err)
		}
		if err := s.openSecret(&c); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("val/sqlstore: list clients: %w", err)
	}
	return nil
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(dest ...any) error }

// scanKey reads the columns of keyCols.
func scanKey(r scanner) (val.KeyState, error) {
	var k val.KeyState
	err := r.Scan(&k.Active, &k.Created, &k.Modified, &k.PublicName, &k.Counter, &k.Use, &k.Low, &k.High, &k.Nonce, &k.Notes)
	return k, err
}

// KeyState implements val.Store.
func (s *Store) KeyState(ctx context.Context, publicName string) (val.KeyState, error) {
	st, err := s.keyState.get(ctx, s.db)
	if err != nil {
		return val.KeyState{}, fmt.Errorf("val/sqlstore: key %q: %w", publicName, err)
	}
	k, err := scanKey(st.QueryRowContext(ctx, s.names(publicName)...))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return val.KeyState{}, val.ErrNotFound
	case err != nil:
		return val.KeyState{}, fmt.Errorf("val/sqlstore: key %q: %w", publicName, err)
	}
	return k, nil
}

// EnrollKey implements val.Store. A key enrolled but never accepted has
// Modified -1 like its counters, as YK-VAL stores it.
func (s *Store) EnrollKey(ctx context.Context, publicName string, now int64) (val.KeyState, error) {
	k, err := s.KeyState(ctx, publicName)
	if !errors.Is(err, val.ErrNotFound) {
		return k, err
	}
	k = enrolled(publicName, now)
	err = retry(ctx, func() error {
		st, err := s.enroll.get(ctx, s.db)
		if err != nil {
			return err
		}
		_, err = st.ExecContext(ctx, k.Active, k.Created, k.Modified, k.PublicName, k.Counter, k.Use, k.Low, k.High, k.Nonce, k.Notes)
		return err
	})
	switch {
	case err == nil:
		return k, nil
	case !sqldb.IsDuplicate(err):
		return val.KeyState{}, fmt.Errorf("val/sqlstore: enroll %q: %w", publicName, err)
	}
	// Another caller enrolled it first: return its row.
	k, err = s.KeyState(ctx, publicName)
	if errors.Is(err, val.ErrNotFound) {
		return val.KeyState{}, fmt.Errorf("val/sqlstore: enroll %q: a stored name differs only in case: %w", publicName, val.ErrDuplicate)
	}
	return k, err
}

// AdvanceKey implements val.Store.
func (s *Store) AdvanceKey(ctx context.Context, next val.KeyState) (bool, error) {
	return s.AdvanceKeyQueued(ctx, next, nil)
}

// advanceArgs are the arguments of the advance statement for next.
func (s *Store) advanceArgs(next val.KeyState) []any {
	args := []any{next.Modified, next.Counter, next.Use, next.Low, next.High, next.Nonce}
	args = append(args, s.names(next.PublicName)...)
	return append(args, next.Counter, next.Counter, next.Use)
}

// AdvanceKeyQueued implements val.Store: the compare-and-set UPDATE and, if
// it changed the row, one multi-row INSERT of the entries, in one
// transaction (on SQLite the shared one of advanceGrouped).
func (s *Store) AdvanceKeyQueued(ctx context.Context, next val.KeyState, entries []val.QueueEntry) (bool, error) {
	if err := checkEntries(entries); err != nil {
		return false, fmt.Errorf("val/sqlstore: advance %q: %w", next.PublicName, err)
	}
	args := s.advanceArgs(next)
	if s.group != nil {
		return s.advanceGrouped(ctx, next.PublicName, args, entries)
	}
	if len(entries) > 0 {
		return s.advanceTx(ctx, next.PublicName, args, entries)
	}
	return s.advanceOne(ctx, &s.advance, next.PublicName, args)
}

// advanceOne runs one of the advance UPDATEs (st) on its own, retrying
// transient conflicts, and reports whether it changed the row of name.
func (s *Store) advanceOne(ctx context.Context, st *lazyStmt, name string, args []any) (bool, error) {
	var n int64
	err := retry(ctx, func() error {
		prepared, err := st.get(ctx, s.db)
		if err != nil {
			return err
		}
		res, err := prepared.ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("val/sqlstore: advance %q: %w", name, err)
	}
	if n > 1 {
		return false, fmt.Errorf("val/sqlstore: advance %q: %d rows changed", name, n)
	}
	return n == 1, nil
}

// advanceTx runs the compare-and-set UPDATE and, if it won, the INSERT of
// entries in one transaction of its own (MySQL).
func (s *Store) advanceTx(ctx context.Context, name string, args []any, entries []val.QueueEntry) (bool, error) {
	var n int64
	err := retry(ctx, func() (err error) {
		n = 0
		st, err := s.advance.get(ctx, s.db)
		if err != nil {
			return err
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				tx.Rollback()
			}
		}()
		n, err = s.advanceIn(ctx, tx, tx.StmtContext(ctx, st), args, entries)
		if err != nil {
			return err
		}
		return tx.Commit()
	})
	if err != nil {
		return false, fmt.Errorf("val/sqlstore: advance %q: %w", name, err)
	}
	if n > 1 {
		return false, fmt.Errorf("val/sqlstore: advance %q: %d rows changed", name, n)
	}
	return n == 1, nil
}

// advanceIn runs the compare-and-set UPDATE (st, or the advance query when
// st is nil) in tx and, if it changed exactly one row, inserts entries. It
// returns how many rows the UPDATE changed.
func (s *Store) advanceIn(ctx context.Context, tx *sql.Tx, st *sql.Stmt, args []any, entries []val.QueueEntry) (int64, error) {
	var res sql.Result
	var err error
	if st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = tx.ExecContext(ctx, s.advance.query, args...)
	}
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n != 1 {
		return n, err
	}
	return n, insertEntries(ctx, tx, entries)
}

// advanceGrouped runs the compare-and-set UPDATE (and, if it won, the INSERT
// of entries) inside a transaction shared with other concurrent writers,
// and returns once it has committed. The UPDATE is the same conditional
// statement, so two updates of one key in a batch still run one after the
// other and at most one of them wins; an INSERT that fails rolls the whole
// batch back, and the op is run again alone.
func (s *Store) advanceGrouped(ctx context.Context, name string, args []any, entries []val.QueueEntry) (bool, error) {
	var n int64
	err := retry(ctx, func() error {
		st, err := s.advance.get(ctx, s.db)
		if err != nil {
			return err
		}
		return s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
			var err error
			// tx.StmtContext reuses the statement already prepared on the
			// transaction's connection instead of preparing it again.
			n, err = s.advanceIn(ctx, tx, tx.StmtContext(ctx, st), args, entries)
			return err
		})
	})
	if err != nil {
		return false, fmt.Errorf("val/sqlstore: advance %q: %w", name, err)
	}
	if n > 1 {
		return false, fmt.Errorf("val/sqlstore: advance %q: %d rows changed", name, n)
	}
	return n == 1, nil
}

// CheckAndAdvance reads the state of the key publicName, asks decide
// whether to advance it and to what, and if so runs the compare-and-set
// UPDATE of AdvanceKey with that state. It returns the state decide saw and
// whether the UPDATE changed the row; val.ErrNotFound (and no call of
// decide) when the key has no row. decide may be called more than once, so
// it must only set variables it owns, overwriting them on every call.
//
// On SQLite the read, decide and the UPDATE run in one transaction of the
// group committer, which holds the database's write lock: decide sees the
// latest committed state (and the writes of the operations committed with
// it), no other writer can come in between, and the answer comes once the
// transaction has committed. The read then also uses the writer's warm page
// cache instead of a pool connection's. decide is called again when a batch
// is rolled back and its operations re-run.
//
// On MySQL the store remembers the state of the keys it last read or wrote
// (up to keyCacheSize of them). For a remembered key, decide is first asked
// about the remembered state, and if it advances, one UPDATE both checks
// that the row still holds exactly that state (active flag, modified,
// counters and timestamp) and stores the new one; that UPDATE is the whole
// round trip to the database. When it changes nothing (another process or
// store moved the row on) or decide refuses, the row is read and decide
// asked again, as for a key not remembered: KeyState, then AdvanceKey.
// While most remembered states turn out stale (several processes taking
// turns on the same keys), the store mostly skips the guess (guessStats). So
// the answer is always decided on the row as stored, and a refusal (a
// replay, a disabled key) is never decided on the remembered state alone.
//
// The UPDATE keeps its condition, so even a decide that asks to advance to
// a position not above the stored one changes nothing.
func (s *Store) CheckAndAdvance(ctx context.Context, publicName string, decide func(prev val.KeyState) (next val.KeyState, advance bool)) (val.KeyState, bool, error) {
	if s.group == nil {
		return s.checkAndAdvanceKnown(ctx, publicName, decide)
	}
	var (
		prev  val.KeyState
		found bool
		n     int64
	)
	err := retry(ctx, func() error {
		read, err := s.keyState.get(ctx, s.db)
		if err != nil {
			return err
		}
		advance, err := s.advance.get(ctx, s.db)
		if err != nil {
			return err
		}
		return s.group.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
			prev, found, n = val.KeyState{}, false, 0
			k, err := scanKey(tx.StmtContext(ctx, read).QueryRowContext(ctx, s.names(publicName)...))
			switch {
			case errors.Is(err, sql.ErrNoRows):
				return nil
			case err != nil:
				return err
			}
			prev, found = k, true
			next, ok := decide(k)
			if !ok {
				return nil
			}
			if next.PublicName != publicName {
				return errOtherKey(next)
			}
			n, err = s.advanceIn(ctx, tx, tx.StmtContext(ctx, advance), s.advanceArgs(next), nil)
			return err
		})
	})
	switch {
	case err != nil:
		return val.KeyState{}, false, fmt.Errorf("val/sqlstore: check and advance %q: %w", publicName, err)
	case !found:
		return val.KeyState{}, false, val.ErrNotFound
	case n > 1:
		return val.KeyState{}, false, fmt.Errorf("val/sqlstore: advance %q: %d rows changed", publicName, n)
	}
	return prev, n == 1, nil
}

// checkAndAdvanceKnown is CheckAndAdvance without a group committer
// (MySQL): one exact compare-and-set on the remembered state when there is
// one and decide advances it, else KeyState and AdvanceKey.
func (s *Store) checkAndAdvanceKnown(ctx context.Context, publicName string, decide func(prev val.KeyState) (next val.KeyState, advance bool)) (val.KeyState, bool, error) {
	if prev, ok := s.keys.get(publicName); ok && s.guesses.use() {
		next, ok := decide(prev)
		if ok && next.PublicName != publicName {
			return val.KeyState{}, false, fmt.Errorf("val/sqlstore: check and advance %q: %w", publicName, errOtherKey(next))
		}
		if ok {
			won, err := s.advanceExact(ctx, prev, next)
			if err != nil {
				s.keys.drop(publicName)
				return val.KeyState{}, false, err
			}
			s.guesses.record(!won)
			if won {
				s.keys.put(advanced(prev, next))
				return prev, true, nil
			}
		}
	}
	prev, err := s.KeyState(ctx, publicName)
	if err != nil {
		s.keys.drop(publicName)
		return val.KeyState{}, false, err
	}
	s.keys.put(prev)
	next, ok := decide(prev)
	switch {
	case !ok:
		return prev, false, nil
	case next.PublicName != publicName:
		return val.KeyState{}, false, fmt.Errorf("val/sqlstore: check and advance %q: %w", publicName, errOtherKey(next))
	}
	won, err := s.AdvanceKey(ctx, next)
	if err == nil && won {
		s.keys.put(advanced(prev, next))
	} else {
		s.keys.drop(publicName)
	}
	return prev, won, err
}

// errOtherKey is CheckAndAdvance's error for a decide that returned the
// state of another key than the one it was shown.
func errOtherKey(next val.KeyState) error {
	return fmt.Errorf("decide returned key %q", next.PublicName)
}

// advanceExact runs the advance UPDATE to next on condition that the row
// still holds prev's active flag, modified time, counters and timestamp,
// and reports whether it changed the row.
func (s *Store) advanceExact(ctx context.Context, prev, next val.KeyState) (bool, error) {
	args := append(s.advanceArgs(next), prev.Modified, prev.Counter, prev.Use, prev.Low, prev.High)
	return s.advanceOne(ctx, &s.exact, next.PublicName, args)
}

// Guesses reports how many times, since the store opened, CheckAndAdvance
// acted on a remembered key state and found the row as remembered (current:
// the verify took one UPDATE) or changed (stale: it read the row and
// decided again). Both are 0 on SQLite, which does not guess.
func (s *Store) Guesses() (current, stale int64) {
	return s.guesses.current.Load(), s.guesses.staleTotal.Load()
}

// forget drops the remembered state of the key publicName, for the writes
// that change a row outside CheckAndAdvance. (Remembered states are checked
// before they are acted on; this only saves the failed check.)
func (s *Store) forget(publicName string) {
	if s.keys != nil {
		s.keys.drop(publicName)
	}
}

// SetActive implements val.Store.
func (s *Store) SetActive(ctx context.Context, publicName string, active bool) error {
	s.forget(publicName)
	var n int64
	err := retry(ctx, func() error {
		res, err := s.db.ExecContext(ctx, "UPDATE yubikeys SET active = ? WHERE "+s.byName, append([]any{active}, s.names(publicName)...)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("val/sqlstore: set active %q: %w", publicName, err)
	}
	if n > 0 {
		return nil
	}
	// MySQL does not count a row whose flag already had that value.
	if _, err := s.KeyState(ctx, publicName); err != nil {
		return err
	}
	return nil
}

// querier is a *sql.DB or *sql.Tx.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ImportKey implements val.Store.
func (s *Store) ImportKey(ctx context.Context, k val.KeyState) (bool, error) {
	var wrote bool
	err := retry(ctx, func() error {
		var err error
		wrote, err = s.importKey(ctx, s.db, k)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("val/sqlstore: import %q: %w", k.PublicName, err)
	}
	return wrote, nil
}

// ImportKeys imports keys like ImportKey, all in one transaction: either
// every key is imported or, on an error, none. It returns how many keys it
// wrote.
func (s *Store) ImportKeys(ctx context.Context, keys []val.KeyState) (int, error) {
	var wrote int
	err := retry(ctx, func() (err error) {
		wrote = 0
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				tx.Rollback()
			}
		}()
		for _, k := range keys {
			ok, err := s.importKey(ctx, tx, k)
			if err != nil {
				return fmt.Errorf("key %q: %w", k.PublicName, err)
			}
			if ok {
				wrote++
			}
		}
		return tx.Commit()
	})
	if err != nil {
		return 0, fmt.Errorf("val/sqlstore: import keys: %w", err)
	}
	return wrote, nil
}

// importKey inserts k, or when it exists updates it if k is ahead.
func (s *Store) importKey(ctx context.Context, q querier, k val.KeyState) (bool, error) {
	s.forget(k.PublicName)
	_, err := q.ExecContext(ctx,
		"INSERT INTO yubikeys (active, created, modified, yk_publicname, yk_counter, yk_use, yk_low, yk_high, nonce, notes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
		k.Active, k.Created, k.Modified, k.PublicName, k.Counter, k.Use, k.Low, k.High, k.Nonce, k.Notes)
	switch {
	case err == nil:
		return true, nil
	case !sqldb.IsDuplicate(err):
		return false, err
	}
	args := []any{k.Active, k.Created, k.Modified, k.Counter, k.Use, k.Low, k.High, k.Nonce, k.Notes}
	args = append(args, s.names(k.PublicName)...)
	args = append(args, k.Counter, k.Counter, k.Use)
	res, err := q.ExecContext(ctx, "UPDATE yubikeys SET active = ?, created = ?, modified = ?, yk_counter = ?, yk_use = ?, yk_low = ?, yk_high = ?, nonce = ?, notes = ? WHERE "+s.byName+" AND (yk_counter < ? OR (yk_counter = ? AND yk_use < ?))", args...)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	if n == 1 {
		return true, nil
	}
	var one int
	err = q.QueryRowContext(ctx, "SELECT 1 FROM yubikeys WHERE "+s.byName, s.names(k.PublicName)...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("a stored name differs only in case: %w", val.ErrDuplicate)
	}
	return false, err
}

// EachKey implements val.Store.
func (s *Store) EachKey(ctx context.Context, fn func(val.KeyState) error) error {
	order := "yk_publicname"
	if s.db.Dialect == sqldb.MySQL {
		order = "CAST(yk_publicname AS BINARY)"
	}
	rows, err := s.db.QueryContext(ctx, "SELECT "+s.keyCols+" FROM yubikeys ORDER BY "+order)
	if err != nil {
		return fmt.Errorf("val/sqlstore: list keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return fmt.Errorf("val/sqlstore: list keys: %w", err)
		}
		if err := fn(k); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("val/sqlstore: list keys: %w", err)
	}
	return nil
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("val/sqlstore: ping: %w", err)
	}
	return nil
}

// Close closes the prepared statements and the database. Every method called
// afterwards returns an error.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.Close()
	}
	for _, l := range []*lazyStmt{&s.client, &s.keyState, &s.enroll, &s.advance, &s.exact} {
		l.close()
	}
	return s.db.Close()
}
