package galera

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// startCluster starts a cluster for t, stopped when t ends; it skips t where
// galera-4 is not installed, unless CI=true, where that is a failure.
func startCluster(t *testing.T, nodes int) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Galera cluster")
	}
	if err := Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true, so this is a failure; apt-get install galera-4 rsync)", err)
		}
		t.Skipf("%v (apt-get install galera-4 rsync)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{Nodes: nodes, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestCluster starts three nodes, checks that a write on one is read on the
// others, and shows what a certification conflict looks like to a client:
// two transactions updating one row on two nodes both succeed locally, the
// first to commit wins, and the other's COMMIT fails with MySQL error 1213
// (what internal/sqldb.IsRetryable retries).
func TestCluster(t *testing.T) {
	c := startCluster(t, 3)
	ctx := context.Background()
	if len(c.Nodes) != 3 {
		t.Fatalf("%d nodes, want 3", len(c.Nodes))
	}
	for _, n := range c.Nodes {
		if size, err := n.StatusInt(ctx, "wsrep_cluster_size"); err != nil || size != 3 {
			t.Errorf("%s: wsrep_cluster_size = %d, %v; want 3", n.Name, size, err)
		}
		if ready, err := n.Status(ctx, "wsrep_ready"); err != nil || ready != "ON" {
			t.Errorf("%s: wsrep_ready = %q, %v; want ON", n.Name, ready, err)
		}
	}

	if err := c.Nodes[0].Exec(ctx, "CREATE DATABASE galeratest"); err != nil {
		t.Fatal(err)
	}
	db1 := open(t, c.Nodes[0].DSN("galeratest"))
	if _, err := db1.Exec("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	if _, err := db1.Exec("INSERT INTO t VALUES (1, 0)"); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes[1:] {
		// wsrep_sync_wait=1: a read waits until the node has applied
		// everything committed in the cluster before it started.
		db := open(t, n.DSN("galeratest")+"?wsrep_sync_wait=1")
		var v int
		if err := db.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != 0 {
			t.Errorf("%s: SELECT v = %d, %v; want the row written on node1", n.Name, v, err)
		}
	}

	before := conflicts(t, c.Nodes[1])
	db2 := open(t, c.Nodes[1].DSN("galeratest"))
	tx1, err := db1.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx1.Rollback()
	tx2, err := db2.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx2.Rollback()
	if _, err := tx1.Exec("UPDATE t SET v = 1 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Exec("UPDATE t SET v = 2 WHERE id = 1"); err != nil {
		t.Fatal(err)
	}
	if err := tx1.Commit(); err != nil {
		t.Fatalf("first commit: %v", err)
	}
	err = tx2.Commit()
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1213 {
		t.Errorf("second commit of the same row on another node: %v, want MySQL error 1213", err)
	}
	// The conflict is caught either by certification or, when node1's
	// write set arrives before node2's commit, by aborting node2's
	// transaction on arrival (a brute-force abort): both are 1213.
	if after := conflicts(t, c.Nodes[1]); after <= before {
		t.Errorf("node2: certification failures + brute-force aborts %d -> %d, want an increase", before, after)
	}
	// node2 has certified node1's write set but may not have applied it
	// yet: the read waits for it (wsrep_sync_wait=1).
	read2 := open(t, c.Nodes[1].DSN("galeratest")+"?wsrep_sync_wait=1")
	var v int
	if err := read2.QueryRow("SELECT v FROM t WHERE id = 1").Scan(&v); err != nil || v != 1 {
		t.Errorf("after the conflict: v = %d, %v; want 1, the first commit's", v, err)
	}
}

// conflicts returns n's certification failures plus brute-force aborts.
func conflicts(t *testing.T, n *Node) int64 {
	t.Helper()
	var sum int64
	for _, v := range []string{"wsrep_local_cert_failures", "wsrep_local_bf_aborts"} {
		x, err := n.StatusInt(context.Background(), v)
		if err != nil {
			t.Fatal(err)
		}
		sum += x
	}
	return sum
}

// TestUnavailable: a provider that does not exist is reported as
// ErrUnavailable, so that tests can skip.
func TestUnavailable(t *testing.T) {
	_, err := Start(context.Background(), Config{Provider: filepath.Join(t.TempDir(), "libgalera_smm.so")})
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("Start with a missing provider: %v, want ErrUnavailable", err)
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"", 3, ""},
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb", 5, "a\nb"},
	} {
		if got := tail([]byte(tc.in), tc.n); got != tc.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
