package sqldb_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
)

// TestSQLiteCacheKiB: Config.CacheKiB sets every connection's page cache,
// a cache_size pragma in the DSN wins over it, and 0 leaves SQLite's
// default.
func TestSQLiteCacheKiB(t *testing.T) {
	tests := []struct {
		name     string
		query    string // DSN options
		cacheKiB int
		want     int // PRAGMA cache_size
	}{
		{"default", "", 0, -2000},
		{"config", "", 512, -512},
		{"DSN wins", "?_pragma=cache_size(-100)", 512, -100},
		{"DSN wins, upper case", "?_pragma=CACHE_SIZE(-3000)", 512, -3000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "c.db") + tt.query
			db, err := sqldb.Open(ctx, sqldb.Config{DSN: dsn, CacheKiB: tt.cacheKiB, MaxOpenConns: 2})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Two connections at once: the setting holds for each.
			c1, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c1.Close()
			c2, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			for i, c := range []*sql.Conn{c1, c2} {
				var got int
				if err := c.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&got); err != nil {
					t.Fatal(err)
				}
				if got != tt.want {
					t.Errorf("connection %d: PRAGMA cache_size = %d, want %d", i+1, got, tt.want)
				}
			}
		})
	}
}

// TestSQLiteDSNOptionsWin: a pragma or option the DSN sets replaces the
// default for it (the driver runs pragmas sorted by their text, so passing
// both would let "WAL" beat "DELETE").
func TestSQLiteDSNOptionsWin(t *testing.T) {
	tests := []struct {
		query, pragma, want string
	}{
		{"", "journal_mode", "wal"},
		{"?_pragma=journal_mode(DELETE)", "journal_mode", "delete"},
		{"", "synchronous", "2"}, // FULL
		{"?_pragma=synchronous(NORMAL)", "synchronous", "1"},
		{"", "busy_timeout", "10000"},
		{"?_pragma=busy_timeout(50)", "busy_timeout", "50"},
	}
	for _, tt := range tests {
		t.Run(tt.pragma+tt.query, func(t *testing.T) {
			dsn := "sqlite:" + filepath.Join(t.TempDir(), "o.db") + tt.query
			db, err := sqldb.Open(context.Background(), sqldb.Config{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var got string
			if err := db.QueryRow("PRAGMA " + tt.pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("DSN %q: PRAGMA %s = %q, want %q", tt.query, tt.pragma, got, tt.want)
			}
		})
	}
}
