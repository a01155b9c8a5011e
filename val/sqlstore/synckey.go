package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/val"
)

// errUnknownKey makes SyncKey enrol a key and try again.
var errUnknownKey = errors.New("unknown key")

// enrolled is the state EnrollKey stores for a new key.
func enrolled(publicName string, now int64) val.KeyState {
	return val.KeyState{
		PublicName: publicName, Active: true, Created: now, Modified: -1,
		Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "0000000000000000",
	}
}

// SyncKey implements val.Store. The read and the conditional UPDATE run in
// one transaction that holds the key's row: on MySQL the SELECT is FOR
// UPDATE (InnoDB locks the row until the commit; an unknown key is first
// enrolled as EnrollKey does, then the transaction runs again); on SQLite
// the transaction, which also enrols an unknown key, holds the database's
// write lock from its start (it is the group committer's, begun IMMEDIATE). A concurrent AdvanceKey therefore runs wholly before or
// wholly after it, and the state returned is the one the update compared
// against.
func (s *Store) SyncKey(ctx context.Context, remote val.KeyState, now int64) (val.KeyState, bool, error) {
	s.forget(remote.PublicName)
	var (
		before  val.KeyState
		updated bool
	)
	lock := ""
	if s.db.Dialect == sqldb.MySQL {
		lock = " FOR UPDATE"
	}
	args := s.advanceArgs(remote)
	op := func(ctx context.Context, tx *sql.Tx) error {
		before, updated = val.KeyState{}, false
		k, err := scanKey(tx.QueryRowContext(ctx, "SELECT "+s.keyCols+" FROM yubikeys WHERE "+s.byName+lock, s.names(remote.PublicName)...))
		switch {
		case errors.Is(err, sql.ErrNoRows) && s.group == nil:
			// MySQL: enrol outside this transaction, then run it again.
			// Inserting here, under the gap lock FOR UPDATE took, makes
			// concurrent first syncs of nearby names deadlock.
			return errUnknownKey
		case errors.Is(err, sql.ErrNoRows):
			k = enrolled(remote.PublicName, now)
			if _, err := tx.ExecContext(ctx, s.enroll.query, k.Active, k.Created, k.Modified, k.PublicName, k.Counter, k.Use, k.Low, k.High, k.Nonce, k.Notes); err != nil {
				return err
			}
		case err != nil:
			return err
		}
		before = k
		if !k.Pos().Less(remote.Pos()) {
			return nil
		}
		res, err := tx.ExecContext(ctx, s.advance.query, args...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != 1 {
			return fmt.Errorf("%d rows changed, want 1", n)
		}
		updated = true
		return nil
	}
	var err error
	for attempt := 1; ; attempt++ {
		err = s.write(ctx, op)
		if errors.Is(err, errUnknownKey) && attempt < 3 {
			if _, err = s.EnrollKey(ctx, remote.PublicName, now); err != nil {
				return val.KeyState{}, false, err
			}
			continue
		}
		// Two transactions enrolling one unknown key at once: the loser's
		// INSERT is a duplicate; run it again to read the winner's row. A
		// duplicate that persists is a stored name differing only in case.
		if err == nil || !sqldb.IsDuplicate(err) || attempt == 3 {
			break
		}
	}
	switch {
	case err == nil:
		return before, updated, nil
	case sqldb.IsDuplicate(err):
		return val.KeyState{}, false, fmt.Errorf("val/sqlstore: sync %q: a stored name differs only in case: %w", remote.PublicName, val.ErrDuplicate)
	}
	return val.KeyState{}, false, fmt.Errorf("val/sqlstore: sync %q: %w", remote.PublicName, err)
}
