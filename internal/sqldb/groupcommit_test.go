package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
)

func openTable(t *testing.T, dsn string) *sqldb.DB {
	t.Helper()
	db, err := sqldb.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("CREATE TABLE ctr (id INT PRIMARY KEY, n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO ctr (id, n) VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestGroupCommitCAS: many goroutines compare-and-set one counter through
// shared transactions; every success is a distinct step, none is lost.
func TestGroupCommitCAS(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			db := openTable(t, b.DSN(t))
			g := sqldb.NewGroupCommitter(db.DB, 16)
			defer g.Close()
			const workers, steps = 16, 40
			var won atomic.Int64
			var wg sync.WaitGroup
			for range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for step := 1; step <= steps; step++ {
						var ok bool
						err := g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
							res, err := tx.ExecContext(ctx, "UPDATE ctr SET n = ? WHERE id = 1 AND n < ?", step, step)
							if err != nil {
								return err
							}
							n, err := res.RowsAffected()
							ok = n == 1
							return err
						})
						if err != nil {
							t.Errorf("Do: %v", err)
							return
						}
						if ok {
							won.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			if got := won.Load(); got != steps {
				t.Errorf("%d compare-and-sets won, want exactly %d (one per step)", got, steps)
			}
			var n int
			db.QueryRow("SELECT n FROM ctr WHERE id = 1").Scan(&n)
			if n != steps {
				t.Errorf("counter = %d, want %d", n, steps)
			}
		})
	}
}

// TestGroupCommitIsolatesFailures: a failing op does not fail the others of its batch.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	db := openTable(t, testdb.SQLite(t))
	g := sqldb.NewGroupCommitter(db.DB, 64)
	defer g.Close()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
				if i%10 == 3 {
					return boom
				}
				_, err := tx.ExecContext(ctx, "UPDATE ctr SET n = n + 1 WHERE id = 1")
				return err
			})
		}()
	}
	wg.Wait()
	good := 0
	for i, err := range errs {
		switch {
		case i%10 == 3 && !errors.Is(err, boom):
			t.Errorf("op %d: error = %v, want boom", i, err)
		case i%10 != 3 && err != nil:
			t.Errorf("op %d: error = %v, want nil", i, err)
		case err == nil:
			good++
		}
	}
	var n int
	db.QueryRow("SELECT n FROM ctr WHERE id = 1").Scan(&n)
	if n != good {
		t.Errorf("counter = %d, want %d (each successful op exactly once)", n, good)
	}
}

func TestGroupCommitClosed(t *testing.T) {
	db := openTable(t, testdb.SQLite(t))
	g := sqldb.NewGroupCommitter(db.DB, 4)
	g.Close()
	err := g.Do(context.Background(), func(context.Context, *sql.Tx) error { return nil })
	if !errors.Is(err, sqldb.ErrClosed) {
		t.Errorf("Do after Close = %v, want ErrClosed", err)
	}
}

// TestGroupCommitDBDown: a closed database fails every op; nothing reports success.
func TestGroupCommitDBDown(t *testing.T) {
	db := openTable(t, testdb.SQLite(t))
	g := sqldb.NewGroupCommitter(db.DB, 4)
	defer g.Close()
	db.Close()
	err := g.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, "UPDATE ctr SET n = 1")
		return err
	})
	if err == nil {
		t.Error("Do on a closed database succeeded")
	}
}
