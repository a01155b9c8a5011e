// Package sqldb opens the SQL databases ykstack stores keys, clients and
// counters in, hiding the differences between its two dialects: SQLite (the
// embedded default, through the pure-Go modernc.org/sqlite driver) and
// MySQL/MariaDB (through github.com/go-sql-driver/mysql).
//
// Every tool and server takes the same DSN forms (see ParseDSN):
//
//	sqlite:/var/lib/ykstack/ksm.db         SQLite file
//	/var/lib/ykstack/ksm.db                a bare path is a SQLite file
//	mysql:user@tcp(127.0.0.1:3306)/ykksm   go-sql-driver DSN
//	DBI:mysql:dbname=ykksm;host=localhost  the Perl tools' DBI form
//
// SQLite databases are opened in WAL mode with synchronous=FULL, so that a
// commit acknowledged to a client survives a power loss, and a busy timeout.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	schemas "github.com/ykstack/ykstack/sql"
)

// Dialect names a SQL dialect.
type Dialect string

// The dialects ykstack speaks.
const (
	SQLite Dialect = "sqlite"
	MySQL  Dialect = "mysql"
)

// ErrDSN reports a DSN that cannot be understood.
var ErrDSN = errors.New("sqldb: invalid DSN")

// Config says how to open a database.
type Config struct {
	// DSN is the database to open, in any form ParseDSN takes.
	DSN string
	// User and Password, when set, replace those in a MySQL DSN. They let
	// tools keep the password out of the DSN (and off the command line).
	User, Password string
	// MaxOpenConns limits the connection pool; 0 means a default suited to the dialect.
	MaxOpenConns int
	// CacheKiB is SQLite's page cache per connection, in KiB; 0 means
	// SQLite's default (about 2 MiB). A read-mostly server behind its own
	// cache wants less: every connection of the pool fills its own copy of
	// the pages it reads. A cache_size pragma in the DSN wins. MySQL ignores it.
	CacheKiB int
}

// DB is an open database and its dialect.
type DB struct {
	*sql.DB
	Dialect Dialect
	// Name is a loggable name for the database: the SQLite path, or the MySQL
	// address and database name, never a password.
	Name string
}

// Target is a parsed DSN.
type Target struct {
	Dialect Dialect
	// Path is the SQLite file and its query options, for SQLite.
	Path string
	// MySQL is the driver configuration, for MySQL.
	MySQL *mysql.Config
}

// ParseDSN understands the DSN forms listed in the package documentation.
func ParseDSN(dsn string) (Target, error) {
	switch {
	case dsn == "":
		return Target{}, fmt.Errorf("%w: empty", ErrDSN)
	case strings.HasPrefix(dsn, "sqlite:"):
		p := strings.TrimPrefix(dsn, "sqlite:")
		p = strings.TrimPrefix(p, "//")
		if p == "" {
			return Target{}, fmt.Errorf("%w: sqlite: needs a path", ErrDSN)
		}
		return Target{Dialect: SQLite, Path: p}, nil
	case strings.HasPrefix(dsn, "mysql:"):
		cfg, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql:"))
		if err != nil {
			return Target{}, fmt.Errorf("%w: %w", ErrDSN, err)
		}
		return Target{Dialect: MySQL, MySQL: cfg}, nil
	case len(dsn) > 4 && strings.EqualFold(dsn[:4], "dbi:"):
		return parseDBI(dsn)
	case strings.Contains(dsn, "@tcp(") || strings.Contains(dsn, "@unix("):
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return Target{}, fmt.Errorf("%w: %w", ErrDSN, err)
		}
		return Target{Dialect: MySQL, MySQL: cfg}, nil
	default:
		return Target{Dialect: SQLite, Path: dsn}, nil
	}
}

// parseDBI reads the Perl DBI forms the original tools took:
// dbi:mysql:DBNAME, DBI:mysql:dbname=N;host=H;port=P;mysql_socket=S and
// DBI:SQLite:dbname=PATH.
func parseDBI(dsn string) (Target, error) {
	parts := strings.SplitN(dsn, ":", 3)
	if len(parts) != 3 {
		return Target{}, fmt.Errorf("%w: DBI DSN needs dbi:DRIVER:ARGS", ErrDSN)
	}
	driver, args := strings.ToLower(parts[1]), parts[2]
	kv := map[string]string{}
	for _, f := range strings.Split(args, ";") {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			if f != "" {
				kv["dbname"] = f // dbi:mysql:ykksm
			}
			continue
		}
		kv[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	if kv["database"] != "" && kv["dbname"] == "" {
		kv["dbname"] = kv["database"]
	}
	if kv["db"] != "" && kv["dbname"] == "" {
		kv["dbname"] = kv["db"]
	}
	switch driver {
	case "sqlite", "sqlite3":
		if kv["dbname"] == "" {
			return Target{}, fmt.Errorf("%w: DBI:SQLite needs dbname=PATH", ErrDSN)
		}
		return Target{Dialect: SQLite, Path: kv["dbname"]}, nil
	case "mysql", "mariadb":
		cfg := mysql.NewConfig()
		cfg.DBName = kv["dbname"]
		host, port := kv["host"], kv["port"]
		if port == "" {
			port = "3306"
		}
		switch {
		case kv["mysql_socket"] != "":
			cfg.Net, cfg.Addr = "unix", kv["mysql_socket"]
		case host == "" || host == "localhost":
			// Like DBD::mysql, "localhost" means the server's Unix socket.
			if _, err := os.Stat(defaultSocket); err == nil && kv["port"] == "" {
				cfg.Net, cfg.Addr = "unix", defaultSocket
			} else {
				cfg.Net, cfg.Addr = "tcp", "127.0.0.1:"+port
			}
		default:
			cfg.Net, cfg.Addr = "tcp", host+":"+port
		}
		return Target{Dialect: MySQL, MySQL: cfg}, nil
	default:
		return Target{}, fmt.Errorf("%w: unsupported DBI driver %q (mysql and SQLite are)", ErrDSN, parts[1])
	}
}

// defaultSocket is where Debian's MariaDB listens.
const defaultSocket = "/run/mysqld/mysqld.sock"

// Open opens the database cfg names and checks that it answers.
func Open(ctx context.Context, cfg Config) (*DB, error) {
	t, err := ParseDSN(cfg.DSN)
	if err != nil {
		return nil, err
	}
	var db *DB
	switch t.Dialect {
	case SQLite:
		db, err = openSQLite(t.Path, cfg)
	case MySQL:
		db, err = openMySQL(t.MySQL, cfg)
	}
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqldb: connect to %s: %w", db.Name, err)
	}
	return db, nil
}

func openSQLite(path string, cfg Config) (*DB, error) {
	file, query, _ := strings.Cut(path, "?")
	// Defaults, each unless the user's DSN options set it: those win. (The
	// driver runs the _pragma options sorted by their text, not in the
	// order given, so a default and the user's value of one pragma must
	// not both be passed.)
	defaults := []string{
		"_pragma=busy_timeout(10000)",
		"_pragma=journal_mode(WAL)",
		"_pragma=synchronous(FULL)",
		"_txlock=immediate",
	}
	if cfg.CacheKiB > 0 {
		defaults = append(defaults, fmt.Sprintf("_pragma=cache_size(-%d)", cfg.CacheKiB))
	}
	var opts []string
	for _, d := range defaults {
		name, value, _ := strings.Cut(d, "=") // _pragma=NAME(V) or _NAME=V
		if name == "_pragma" {
			name, _, _ = strings.Cut(value, "(")
		}
		if !strings.Contains(strings.ToLower(query), name) {
			opts = append(opts, d)
		}
	}
	if query != "" {
		opts = append(opts, query)
	}
	db, err := sql.Open("sqlite", "file:"+file+"?"+strings.Join(opts, "&"))
	if err != nil {
		return nil, fmt.Errorf("sqldb: open %s: %w", file, err)
	}
	n := cfg.MaxOpenConns
	if n <= 0 {
		n = 8
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	return &DB{DB: db, Dialect: SQLite, Name: file}, nil
}

func openMySQL(mc *mysql.Config, cfg Config) (*DB, error) {
	mc = mc.Clone()
	if cfg.User != "" {
		mc.User = cfg.User
	}
	if cfg.Password != "" {
		mc.Passwd = cfg.Password
	}
	if mc.Timeout == 0 {
		mc.Timeout = 5 * time.Second
	}
	if mc.ReadTimeout == 0 {
		mc.ReadTimeout = 30 * time.Second
	}
	if mc.WriteTimeout == 0 {
		mc.WriteTimeout = 30 * time.Second
	}
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDSN, err)
	}
	db := sql.OpenDB(conn)
	n := cfg.MaxOpenConns
	if n <= 0 {
		n = 64
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxLifetime(5 * time.Minute)
	return &DB{DB: db, Dialect: MySQL, Name: mc.Net + "(" + mc.Addr + ")/" + mc.DBName}, nil
}

// EnsureSchema creates the tables of service ("ksm" or "val") unless they
// already exist. An existing Yubico database is left exactly as it is, and
// the check needs no privilege on the tables themselves, so database users
// with narrow grants (ykksmreader with SELECT only, ykksmimporter with INSERT
// only, ykval_verifier) work.
func (db *DB) EnsureSchema(ctx context.Context, service string, tables ...string) error {
	missing := false
	for _, t := range tables {
		ok, err := db.tableExists(ctx, t)
		if err != nil {
			return fmt.Errorf("sqldb: look for table %s: %w", t, err)
		}
		if !ok {
			missing = true
			break
		}
	}
	if !missing {
		return nil
	}
	script, err := schemas.Schema(service, string(db.Dialect))
	if err != nil {
		return err
	}
	for _, stmt := range splitStatements(script) {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("sqldb: create %s schema: %w", service, err)
		}
	}
	return nil
}

// tableExists asks the catalogue, which lists a table to any user holding
// some privilege on it.
func (db *DB) tableExists(ctx context.Context, table string) (bool, error) {
	var q string
	switch db.Dialect {
	case MySQL:
		q = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
	default:
		q = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
	}
	var n int
	if err := db.QueryRowContext(ctx, q, table).Scan(&n); err != nil {
		return false, err
	}
	return n > 0, nil
}

// splitStatements splits a schema script on semicolons at line ends and drops comments.
func splitStatements(script string) []string {
	var out []string
	var cur strings.Builder
	for _, line := range strings.Split(script, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "--") {
			continue
		}
		cur.WriteString(line)
		cur.WriteByte('\n')
		if strings.HasSuffix(trimmed, ";") {
			out = append(out, strings.TrimSuffix(strings.TrimSpace(cur.String()), ";"))
			cur.Reset()
		}
	}
	if s := strings.TrimSpace(cur.String()); s != "" {
		out = append(out, s)
	}
	return out
}

// IsDuplicate reports whether err is a unique or primary key violation.
func IsDuplicate(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1062
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	return false
}

// IsRetryable reports whether err is a transient conflict worth retrying:
// a MySQL deadlock or lock wait timeout (also Galera's certification
// failure), or SQLite's busy or locked database.
func IsRetryable(err error) bool {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number == 1213 || me.Number == 1205
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code() & 0xff
		return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
	}
	return false
}

// RequireExisting fails (with an error wrapping fs.ErrNotExist) when dsn names a SQLite file that
// does not exist, so that read-only tools (exports, checksums) report a
// mistyped path instead of creating an empty database. Other DSNs, and
// malformed ones (which Open reports), pass.
func RequireExisting(dsn string) error {
	t, err := ParseDSN(dsn)
	if err != nil || t.Dialect != SQLite {
		return nil
	}
	file, _, _ := strings.Cut(t.Path, "?")
	if _, err := os.Stat(file); err != nil {
		return fmt.Errorf("database %s: %w", file, err)
	}
	return nil
}
