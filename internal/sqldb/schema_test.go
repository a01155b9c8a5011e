package sqldb_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
)

// TestEnsureSchemaNarrowGrants: a user with INSERT only on an existing table
// (Yubico's ykksmimporter) passes the schema check without CREATE rights.
func TestEnsureSchemaNarrowGrants(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	admin, err := sqldb.Open(ctx, sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.EnsureSchema(ctx, "ksm", "yubikeys"); err != nil {
		t.Fatal(err)
	}
	var dbName string
	admin.QueryRow("SELECT DATABASE()").Scan(&dbName)
	user := "imp_" + strings.TrimPrefix(dbName, "ykt_")
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY 'pw'",
		"GRANT INSERT ON " + dbName + ".yubikeys TO '" + user + "'@'%'",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() { admin.Exec("DROP USER IF EXISTS '" + user + "'@'%'") })

	imp, err := sqldb.Open(ctx, sqldb.Config{DSN: dsn, User: user, Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer imp.Close()
	if err := imp.EnsureSchema(ctx, "ksm", "yubikeys"); err != nil {
		t.Errorf("EnsureSchema as an INSERT-only user: %v", err)
	}
	if _, err := imp.Exec("SELECT 1 FROM yubikeys"); err == nil {
		t.Error("the INSERT-only user can SELECT: the test's grant is wrong")
	}
}

func TestEnsureSchemaCreatesOnce(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			db, err := sqldb.Open(ctx, sqldb.Config{DSN: b.DSN(t)})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			for range 2 {
				if err := db.EnsureSchema(ctx, "val", "clients", "yubikeys", "queue"); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := db.Exec("INSERT INTO clients (id, created, secret) VALUES (1, 0, 'x')"); err != nil {
				t.Errorf("insert into the created table: %v", err)
			}
		})
	}
}
