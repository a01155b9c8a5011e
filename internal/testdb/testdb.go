// Package testdb gives tests fresh, empty databases on real servers: a SQLite
// file in the test's temporary directory, or a new database on a MariaDB (or
// MySQL) server, dropped when the test ends.
//
// The MariaDB server is the one named by YKSTACK_TEST_MYSQL (a go-sql-driver
// DSN with rights to create databases, e.g. "root@tcp(127.0.0.1:3306)/"),
// or root on 127.0.0.1:3306 when that is unset. scripts/test-services.sh
// starts one when none answers. Where none answers, MySQL tests are skipped on
// a developer's machine and fail when CI=true: in CI they must run.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Backend names a store backend under test and how to get a fresh DSN for it.
type Backend struct {
	Name string
	DSN  func(t testing.TB) string
}

// Backends returns every backend the conformance suites run against.
func Backends() []Backend {
	return []Backend{{"sqlite", SQLite}, {"mysql", MySQL}}
}

// SQLite returns the DSN of a new SQLite file in t's temporary directory.
func SQLite(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "test.db")
}

var (
	adminOnce sync.Once
	adminCfg  *mysql.Config
	adminErr  error
)

// AdminDSN returns the go-sql-driver DSN of the MariaDB server tests use.
func AdminDSN() string {
	if s := os.Getenv("YKSTACK_TEST_MYSQL"); s != "" {
		return s
	}
	return "root@tcp(127.0.0.1:3306)/"
}

func admin() (*mysql.Config, error) {
	adminOnce.Do(func() {
		adminCfg, adminErr = mysql.ParseDSN(AdminDSN())
		if adminErr != nil {
			return
		}
		adminCfg.Timeout = 3 * time.Second
		var db *sql.DB
		db, adminErr = open(adminCfg)
		if adminErr != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		adminErr = db.PingContext(ctx)
	})
	return adminCfg, adminErr
}

func open(cfg *mysql.Config) (*sql.DB, error) {
	c, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

// RequireMySQL skips t (or fails it when CI=true) unless a MariaDB server answers.
func RequireMySQL(t testing.TB) *mysql.Config {
	t.Helper()
	cfg, err := admin()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("testdb: no MariaDB server at %q (CI=true, so this is a failure): %v", AdminDSN(), err)
		}
		t.Skipf("testdb: no MariaDB server at %q: %v (run scripts/test-services.sh)", AdminDSN(), err)
	}
	return cfg
}

// MySQL creates an empty database on the test server and returns its DSN in
// the form every ykstack tool takes ("mysql:" + go-sql-driver DSN). The
// database is dropped when t ends.
func MySQL(t testing.TB) string {
	t.Helper()
	cfg := RequireMySQL(t)
	var b [6]byte
	rand.Read(b[:])
	name := "ykt_" + hex.EncodeToString(b[:])
	db, err := open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4"); err != nil {
		t.Fatalf("testdb: create database: %v", err)
	}
	t.Cleanup(func() {
		db, err := open(cfg)
		if err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
			return
		}
		defer db.Close()
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + name); err != nil {
			t.Errorf("testdb: drop %s: %v", name, err)
		}
	})
	c := cfg.Clone()
	c.DBName = name
	c.Timeout = 0
	return "mysql:" + c.FormatDSN()
}
