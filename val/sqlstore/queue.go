package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/ykstack/ykstack/val"
)

// queueCols are the queue table's columns, in scanEntry's order.
const queueCols = "queued, modified, server_nonce, otp, server, info"

// checkEntries refuses entries that do not fit the queue table.
func checkEntries(entries []val.QueueEntry) error {
	for _, e := range entries {
		if !val.ValidQueueEntry(e) {
			return fmt.Errorf("queue entry for server %q does not fit the queue table (empty or too long a value)", clip(e.Server))
		}
	}
	return nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// insertEntries inserts entries in tx with one multi-row INSERT.
func insertEntries(ctx context.Context, tx *sql.Tx, entries []val.QueueEntry) error {
	if len(entries) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO queue (" + queueCols + ") VALUES ")
	args := make([]any, 0, 6*len(entries))
	for i, e := range entries {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
		var queued sql.NullInt64
		if e.Queued != nil {
			queued = sql.NullInt64{Int64: *e.Queued, Valid: true}
		}
		args = append(args, queued, e.Modified, e.ServerNonce, e.OTP, e.Server, e.Info)
	}
	_, err := tx.ExecContext(ctx, q.String(), args...)
	return err
}

// maxInsertRows bounds the rows of one multi-row INSERT (SQLite allows
// 32766 bound parameters; six per row).
const maxInsertRows = 1000

// Enqueue implements val.Store.
func (s *Store) Enqueue(ctx context.Context, entries []val.QueueEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := checkEntries(entries); err != nil {
		return fmt.Errorf("val/sqlstore: enqueue: %w", err)
	}
	err := retry(ctx, func() (err error) {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				tx.Rollback()
			}
		}()
		for rest := entries; len(rest) > 0; {
			n := min(len(rest), maxInsertRows)
			if err := insertEntries(ctx, tx, rest[:n]); err != nil {
				return err
			}
			rest = rest[n:]
		}
		return tx.Commit()
	})
	if err != nil {
		return fmt.Errorf("val/sqlstore: enqueue: %w", err)
	}
	return nil
}

// QueueLength implements val.Store.
func (s *Store) QueueLength(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM queue").Scan(&n); err != nil {
		return 0, fmt.Errorf("val/sqlstore: queue length: %w", err)
	}
	return n, nil
}

// QueueLengths implements val.Store.
func (s *Store) QueueLengths(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT server, COUNT(*) FROM queue GROUP BY server")
	if err != nil {
		return nil, fmt.Errorf("val/sqlstore: queue lengths: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var server string
		var n int
		if err := rows.Scan(&server, &n); err != nil {
			return nil, fmt.Errorf("val/sqlstore: queue lengths: %w", err)
		}
		out[server] += n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("val/sqlstore: queue lengths: %w", err)
	}
	return out, nil
}

// DueEntries implements val.Store. A row whose modified is NULL (YK-VAL
// never writes one) reads as Modified -1; peers refuse it, so it stays in
// the queue, as it would with YK-VAL.
func (s *Store) DueEntries(ctx context.Context, server string, before int64, limit int) ([]val.QueueEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := s.db.QueryContext(ctx,
		"SELECT "+queueCols+" FROM queue WHERE server = ? AND (queued < ? OR queued IS NULL) LIMIT ?",
		server, before, limit)
	if err != nil {
		return nil, fmt.Errorf("val/sqlstore: due queue entries: %w", err)
	}
	defer rows.Close()
	var out []val.QueueEntry
	for rows.Next() {
		var queued, modified sql.NullInt64
		var e val.QueueEntry
		if err := rows.Scan(&queued, &modified, &e.ServerNonce, &e.OTP, &e.Server, &e.Info); err != nil {
			return nil, fmt.Errorf("val/sqlstore: due queue entries: %w", err)
		}
		if queued.Valid {
			q := queued.Int64
			e.Queued = &q
		}
		e.Modified = -1
		if modified.Valid {
			e.Modified = modified.Int64
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("val/sqlstore: due queue entries: %w", err)
	}
	return out, nil
}

// SettleQueue implements val.Store. On SQLite it shares a transaction (and
// its fsync) with concurrent AdvanceKey calls.
func (s *Store) SettleQueue(ctx context.Context, done, retryNow []val.QueueEntry) error {
	if len(done) == 0 && len(retryNow) == 0 {
		return nil
	}
	op := func(ctx context.Context, tx *sql.Tx) error {
		if err := matching(ctx, tx, "DELETE FROM queue", done); err != nil {
			return err
		}
		return matching(ctx, tx, "UPDATE queue SET queued = NULL", retryNow)
	}
	if err := s.write(ctx, op); err != nil {
		return fmt.Errorf("val/sqlstore: settle queue: %w", err)
	}
	return nil
}

// maxMatch bounds the entries one statement of matching names.
const maxMatch = 500

// matching runs stmt (a DELETE or UPDATE of the queue) on the rows of
// entries: per server, with (modified, server_nonce) IN (…) row values, so
// that the table (which has no index) is scanned once per statement rather
// than once per entry.
func matching(ctx context.Context, tx *sql.Tx, stmt string, entries []val.QueueEntry) error {
	byServer := map[string][]val.QueueEntry{}
	var servers []string
	for _, e := range entries {
		if byServer[e.Server] == nil {
			servers = append(servers, e.Server)
		}
		byServer[e.Server] = append(byServer[e.Server], e)
	}
	for _, server := range servers {
		for rest := byServer[server]; len(rest) > 0; {
			chunk := rest[:min(len(rest), maxMatch)]
			rest = rest[len(chunk):]
			var q strings.Builder
			q.WriteString(stmt + " WHERE server = ? AND (modified, server_nonce) IN (")
			args := make([]any, 0, 1+2*len(chunk))
			args = append(args, server)
			for i, e := range chunk {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?)")
				args = append(args, e.Modified, e.ServerNonce)
			}
			q.WriteString(")")
			if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
				return err
			}
		}
	}
	return nil
}

// write runs op in a transaction that commits before write returns: the
// shared one of the group committer on SQLite, one of its own on MySQL.
// Transient conflicts run op again.
func (s *Store) write(ctx context.Context, op func(ctx context.Context, tx *sql.Tx) error) error {
	if s.group != nil {
		return retry(ctx, func() error { return s.group.Do(ctx, op) })
	}
	return retry(ctx, func() (err error) {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				tx.Rollback()
			}
		}()
		if err := op(ctx, tx); err != nil {
			return err
		}
		return tx.Commit()
	})
}
