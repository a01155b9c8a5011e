package sqlstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/storetest"
)

var bg = context.Background()

func open(t *testing.T, cfg sqldb.Config) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(bg, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// shared opens n stores, each with its own connection pool, on one database.
func shared(dsn func(testing.TB) string) storetest.OpenShared {
	return func(t *testing.T, n int) []val.Store {
		d := dsn(t)
		out := make([]val.Store, n)
		for i := range out {
			out[i] = open(t, sqldb.Config{DSN: d})
		}
		return out
	}
}

// mysqlConfig returns the go-sql-driver configuration of a testdb DSN.
func mysqlConfig(t *testing.T, dsn string) *mysql.Config {
	t.Helper()
	target, err := sqldb.ParseDSN(dsn)
	if err != nil || target.MySQL == nil {
		t.Fatalf("ParseDSN(%q) = %+v, %v", dsn, target, err)
	}
	return target.MySQL
}

// foundRows is a MySQL database whose DSN makes RowsAffected count matched
// rather than changed rows.
func foundRows(t testing.TB) string {
	d := testdb.MySQL(t)
	target, err := sqldb.ParseDSN(d)
	if err != nil {
		t.Fatal(err)
	}
	target.MySQL.ClientFoundRows = true
	return "mysql:" + target.MySQL.FormatDSN()
}

func backends() []testdb.Backend {
	return append(testdb.Backends(), testdb.Backend{Name: "mysql-clientFoundRows", DSN: foundRows})
}

func TestConformance(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.Name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) val.Store { return open(t, sqldb.Config{DSN: b.DSN(t)}) })
		})
	}
}

func TestConcurrent(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.Name, func(t *testing.T) { storetest.RunConcurrent(t, shared(b.DSN)) })
	}
}

// newUser creates a MySQL user on the test server with grants and returns
// the DSN of dsn's database as that user; the user is dropped at cleanup.
func newUser(t *testing.T, dsn string, grants ...string) string {
	t.Helper()
	cfg := mysqlConfig(t, dsn)
	admin := open(t, sqldb.Config{DSN: dsn}).DB()
	var b [4]byte
	rand.Read(b[:])
	user, password := "ykt_"+hex.EncodeToString(b[:]), hex.EncodeToString(b[:])+"pw"
	if _, err := admin.Exec("CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'"); err != nil {
		t.Fatalf("create user: %v", err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec("DROP USER '" + user + "'@'%'"); err != nil {
			t.Errorf("drop user %s: %v", user, err)
		}
	})
	for _, g := range grants {
		g = strings.ReplaceAll(g, "DB", cfg.DBName)
		if _, err := admin.Exec(g + " TO '" + user + "'@'%'"); err != nil {
			t.Fatalf("%s: %v", g, err)
		}
	}
	c := cfg.Clone()
	c.User, c.Passwd = user, password
	return "mysql:" + c.FormatDSN()
}

func TestReadOnly(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		storetest.RunReadOnly(t, func(t *testing.T) (val.Store, val.Store) {
			d := testdb.SQLite(t)
			w := open(t, sqldb.Config{DSN: d})
			return w, open(t, sqldb.Config{DSN: d + "?mode=ro"})
		})
	})
	t.Run("mysql", func(t *testing.T) {
		storetest.RunReadOnly(t, func(t *testing.T) (val.Store, val.Store) {
			d := testdb.MySQL(t)
			w := open(t, sqldb.Config{DSN: d})
			return w, open(t, sqldb.Config{DSN: newUser(t, d, "GRANT SELECT ON DB.*")})
		})
	})
}

// TestVerifierGrants opens the store as a user with exactly the rights
// Yubico's installation guide grants ykval_verifier: the verification path
// works, and what the guide does not grant fails with an error.
func TestVerifierGrants(t *testing.T) {
	d := testdb.MySQL(t)
	admin := open(t, sqldb.Config{DSN: d})
	if _, err := admin.ImportClients(bg, []val.Client{{ID: 1, Active: true, Created: 1, Secret: "c2VjcmV0"}}); err != nil {
		t.Fatal(err)
	}
	s := open(t, sqldb.Config{DSN: newUser(t, d,
		"GRANT SELECT, INSERT, UPDATE(modified, yk_counter, yk_low, yk_high, yk_use, nonce) ON DB.yubikeys",
		"GRANT SELECT, INSERT, UPDATE(id, secret, active) ON DB.clients",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON DB.queue",
	)})
	if _, err := s.Client(bg, 1); err != nil {
		t.Errorf("Client: %v", err)
	}
	k, err := s.EnrollKey(bg, "cccccccccccb", 1)
	if err != nil {
		t.Fatalf("EnrollKey: %v", err)
	}
	k.Counter, k.Use, k.Modified = 1, 0, 2
	if ok, err := s.AdvanceKey(bg, k); !ok || err != nil {
		t.Errorf("AdvanceKey = %v, %v; want true", ok, err)
	}
	if err := s.Enqueue(bg, []val.QueueEntry{{ServerNonce: "a", OTP: "b", Server: "c", Info: "d"}}); err != nil {
		t.Errorf("Enqueue: %v", err)
	}
	if n, err := s.QueueLength(bg); n != 1 || err != nil {
		t.Errorf("QueueLength = %d, %v", n, err)
	}
	if err := s.SetActive(bg, "cccccccccccb", false); err == nil {
		t.Error("SetActive without UPDATE(active) succeeded")
	}
}

// TestLegacyRows reads rows as YK-VAL's PHP code and other tools left them:
// NULL in nullable columns, and on SQLite active flags stored as text.
func TestLegacyRows(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := open(t, sqldb.Config{DSN: b.DSN(t)})
			db := s.DB()
			clients := []string{
				"(1, 1, 10, 'one', NULL, NULL, NULL)",
				"(2, 0, 20, 'two', '', '', '')",
				"(3, NULL, 30, 'three', '', '', '')",
			}
			keys := []string{
				"(1, 1, -1, 'cccccccccccb', -1, -1, -1, -1, NULL, NULL)",
				"(0, 1, 2, 'cccccccccccc', 3, 4, 5, 6, 'n', 'x')",
				"(NULL, 1, 2, 'cccccccccccd', 3, 4, 5, 6, 'n', 'x')",
			}
			if b.Name == "sqlite" {
				clients = append(clients, "(4, 'true', 40, 'four', '', '', '')", "(5, 'false', 50, 'five', '', '', '')")
				keys = append(keys, "('true', 1, 2, 'ccccccccccce', 3, 4, 5, 6, 'n', 'x')", "('false', 1, 2, 'cccccccccccf', 3, 4, 5, 6, 'n', 'x')")
			}
			for _, v := range clients {
				if _, err := db.Exec("INSERT INTO clients (id, active, created, secret, email, notes, otp) VALUES " + v); err != nil {
					t.Fatal(err)
				}
			}
			for _, v := range keys {
				if _, err := db.Exec("INSERT INTO yubikeys (active, created, modified, yk_publicname, yk_counter, yk_use, yk_low, yk_high, nonce, notes) VALUES " + v); err != nil {
					t.Fatal(err)
				}
			}
			wantActive := map[int64]bool{1: true, 2: false, 3: false, 4: true, 5: false}
			for id, want := range wantActive {
				if b.Name != "sqlite" && id > 3 {
					continue
				}
				_, err := s.Client(bg, id)
				if got := err == nil; got != want || (err != nil && !errors.Is(err, val.ErrNotFound)) {
					t.Errorf("Client(%d) error = %v, want active %v", id, err, want)
				}
			}
			c, err := s.Client(bg, 1)
			if want := (val.Client{ID: 1, Active: true, Created: 10, Secret: "one"}); err != nil || c != want {
				t.Errorf("Client(1) with NULL columns = %+v, %v; want %+v", c, err, want)
			}
			var got []string
			if err := s.EachClient(bg, func(c val.Client) error { got = append(got, fmt.Sprintf("%d:%v", c.ID, c.Active)); return nil }); err != nil {
				t.Fatal(err)
			}
			want := "[1:true 2:false 3:false]"
			if b.Name == "sqlite" {
				want = "[1:true 2:false 3:false 4:true 5:false]"
			}
			if fmt.Sprint(got) != want {
				t.Errorf("EachClient active flags = %v, want %s", got, want)
			}
			k, err := s.KeyState(bg, "cccccccccccb")
			if want := (val.KeyState{PublicName: "cccccccccccb", Active: true, Created: 1, Modified: -1, Counter: -1, Use: -1, Low: -1, High: -1}); err != nil || k != want {
				t.Errorf("KeyState with NULL nonce and notes = %+v, %v; want %+v", k, err, want)
			}
			keyActive := map[string]bool{"cccccccccccc": false, "cccccccccccd": false, "ccccccccccce": true, "cccccccccccf": false}
			for name, want := range keyActive {
				if b.Name != "sqlite" && name > "cccccccccccd" {
					continue
				}
				k, err := s.KeyState(bg, name)
				if err != nil || k.Active != want {
					t.Errorf("KeyState(%q).Active = %v, %v; want %v", name, k.Active, err, want)
				}
			}
			// Written flags are 1 and 0, which both dialects and the PHP code read.
			if err := s.SetActive(bg, "ccccccccccce", false); err != nil && b.Name == "sqlite" {
				t.Fatal(err)
			}
			if err := s.SetActive(bg, "cccccccccccb", false); err != nil {
				t.Fatal(err)
			}
			var raw string
			if err := db.QueryRow("SELECT CAST(active AS CHAR) FROM yubikeys WHERE yk_publicname = 'cccccccccccb'").Scan(&raw); err != nil || raw != "0" {
				t.Errorf("stored active flag = %q, %v; want \"0\"", raw, err)
			}
		})
	}
}

// TestReopen checks that a store opens an existing database without
// touching it, and that data survives closing.
func TestReopen(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := b.DSN(t)
			s, err := sqlstore.Open(bg, sqldb.Config{DSN: d})
			if err != nil {
				t.Fatal(err)
			}
			k, err := s.EnrollKey(bg, "cccccccccccb", 1)
			if err != nil {
				t.Fatal(err)
			}
			k.Counter, k.Use = 1, 0
			if ok, err := s.AdvanceKey(bg, k); !ok || err != nil {
				t.Fatalf("AdvanceKey = %v, %v", ok, err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = open(t, sqldb.Config{DSN: d})
			if got, err := s.KeyState(bg, "cccccccccccb"); err != nil || got != k {
				t.Errorf("after reopening KeyState = %+v, %v; want %+v", got, err, k)
			}
		})
	}
}

func TestImportKeys(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			s := open(t, sqldb.Config{DSN: b.DSN(t)})
			old := val.KeyState{PublicName: "cccccccccccb", Active: true, Created: 1, Modified: 2, Counter: 5, Use: 5, Low: 1, High: 1, Nonce: "n"}
			if _, err := s.ImportKey(bg, old); err != nil {
				t.Fatal(err)
			}
			keys := []val.KeyState{
				{PublicName: "cccccccccccc", Active: true, Created: 1, Modified: 2, Counter: 1, Use: 0, Low: 1, High: 1},
				{PublicName: "cccccccccccb", Active: false, Created: 1, Modified: 3, Counter: 5, Use: 4, Low: 1, High: 1}, // behind: skipped
				{PublicName: "cccccccccccc", Active: true, Created: 1, Modified: 4, Counter: 1, Use: 1, Low: 1, High: 1},  // same batch, ahead
			}
			n, err := s.ImportKeys(bg, keys)
			if err != nil || n != 2 {
				t.Fatalf("ImportKeys = %d, %v; want 2, nil", n, err)
			}
			if got, _ := s.KeyState(bg, "cccccccccccb"); got != old {
				t.Errorf("ImportKeys overwrote %+v with an older state: %+v", old, got)
			}
			if got, _ := s.KeyState(bg, "cccccccccccc"); got != keys[2] {
				t.Errorf("KeyState = %+v, want %+v", got, keys[2])
			}
			// A failure rolls the whole batch back: a trigger refuses one name.
			trigger := "CREATE TRIGGER refuse BEFORE INSERT ON yubikeys FOR EACH ROW WHEN NEW.yk_publicname = 'cccccccccccx' BEGIN SELECT RAISE(ABORT, 'refused'); END"
			if b.Name != "sqlite" {
				trigger = "CREATE TRIGGER refuse BEFORE INSERT ON yubikeys FOR EACH ROW BEGIN IF NEW.yk_publicname = 'cccccccccccx' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; END"
			}
			if _, err := s.DB().Exec(trigger); err != nil {
				t.Fatal(err)
			}
			bad := []val.KeyState{
				{PublicName: "cccccccccccd", Active: true, Counter: 1},
				{PublicName: "cccccccccccb", Active: true, Counter: 9},
				{PublicName: "cccccccccccx", Active: true, Counter: 1},
			}
			if n, err := s.ImportKeys(bg, bad); err == nil || !strings.Contains(err.Error(), "cccccccccccx") {
				t.Errorf("ImportKeys with a refused key = %d, %v; want an error naming it", n, err)
			}
			if got, _ := s.KeyState(bg, "cccccccccccb"); got != old {
				t.Errorf("a failed ImportKeys changed %+v to %+v", old, got)
			}
			if _, err := s.KeyState(bg, "cccccccccccd"); !errors.Is(err, val.ErrNotFound) {
				t.Errorf("a failed ImportKeys left %q behind: %v", "cccccccccccd", err)
			}
		})
	}
}

func TestOpenExisting(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing.db")
	if s, err := sqlstore.OpenExisting(bg, sqldb.Config{DSN: "sqlite:" + missing}); err == nil {
		s.Close()
		t.Errorf("OpenExisting(missing file) succeeded")
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("OpenExisting created %s", missing)
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			d := b.DSN(t)
			// An empty database (a SQLite file or MySQL database without the tables) is refused.
			db, err := sqldb.Open(bg, sqldb.Config{DSN: d})
			if err != nil {
				t.Fatal(err)
			}
			db.Close()
			if s, err := sqlstore.OpenExisting(bg, sqldb.Config{DSN: d}); err == nil || !strings.Contains(err.Error(), "no clients table") {
				if s != nil {
					s.Close()
				}
				t.Errorf("OpenExisting(database without tables) = %v, want an error naming the clients table", err)
			}
			w := open(t, sqldb.Config{DSN: d})
			if _, err := w.ImportClients(bg, []val.Client{{ID: 3, Active: true, Secret: "s"}}); err != nil {
				t.Fatal(err)
			}
			s, err := sqlstore.OpenExisting(bg, sqldb.Config{DSN: d})
			if err != nil {
				t.Fatalf("OpenExisting: %v", err)
			}
			defer s.Close()
			if c, err := s.Client(bg, 3); err != nil || c.Secret != "s" {
				t.Errorf("Client(3) = %+v, %v", c, err)
			}
		})
	}
}
