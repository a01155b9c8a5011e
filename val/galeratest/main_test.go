// Package galeratest tests the replay guard of the validation server on a
// real 3-node MariaDB Galera cluster, started by the tests on loopback
// (internal/galera): validation servers on different nodes race the same
// OTPs, and exactly one of them may accept each.
//
// On Galera, two nodes updating one yubikeys row at the same time both
// succeed locally; the cluster orders their write sets and aborts the later
// one at COMMIT with MySQL error 1213 (a certification failure, or a
// brute-force abort of a local transaction that conflicts with a replicated
// one). MariaDB retries an aborted autocommit statement wsrep_retry_autocommit
// times (default 1) on its own; val/sqlstore retries what still reaches it
// (internal/sqldb.IsRetryable). The retried conditional UPDATE then sees the
// winner's counters and changes nothing: REPLAYED_OTP, never a second OK.
//
// The cluster runs the example configuration contrib/galera/galera.cnf, its
// addresses, ports and paths overridden for loopback.
//
// The tests skip where galera-4 (or rsync) is not installed, and fail there
// when CI=true; -short skips them (the cluster takes about 20 seconds to
// start).
package galeratest_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/galera"
)

var (
	clusterOnce sync.Once
	theCluster  *galera.Cluster
	clusterErr  error

	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if theCluster != nil {
		if err := theCluster.Stop(); err != nil {
			log.Print(err)
		}
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds the named commands of cmd/ once per test binary and
// returns the directory holding them.
func binaries(t *testing.T, names ...string) string {
	t.Helper()
	buildOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("no go command to build the binaries with: %w", err)
			return
		}
		binDir, buildErr = os.MkdirTemp("", "ykgalera-bin-")
		if buildErr != nil {
			return
		}
		args := []string{"build", "-o", binDir + string(os.PathSeparator)}
		for _, n := range names {
			args = append(args, "./cmd/"+n)
		}
		build := exec.Command(goBin, args...)
		build.Dir = filepath.Join("..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// daemon is a server process started by a test.
type daemon struct {
	cmd  *exec.Cmd
	addr string // the address it listens on
	// problems are the first log lines at WARN or ERROR level.
	mu       sync.Mutex
	problems []string
	lines    int
}

// Problems returns the first warning and error lines the daemon logged and
// how many lines it logged in all.
func (d *daemon) Problems() ([]string, int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.problems...), d.lines
}

var listening = regexp.MustCompile(`listening"? addr=(\S+)`)

// startDaemon starts a server binary with a clean YKVAL_/YKKSM_
// environment, waits for its "listening addr=" log line and returns it; the
// process is killed when t ends.
func startDaemon(t *testing.T, path string, args ...string) *daemon {
	t.Helper()
	d := &daemon{cmd: exec.Command(path, args...)}
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "YKVAL_") && !strings.HasPrefix(e, "YKKSM_") {
			d.cmd.Env = append(d.cmd.Env, e)
		}
	}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.cmd.Process.Kill()
		d.cmd.Wait()
	})
	addrs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			if m := listening.FindStringSubmatch(line); m != nil && !sent {
				addrs <- m[1]
				sent = true
			}
			d.mu.Lock()
			d.lines++
			if (strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR")) && len(d.problems) < 20 {
				d.problems = append(d.problems, line)
			}
			d.mu.Unlock()
		}
	}()
	select {
	case d.addr = <-addrs:
		return d
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report its address", filepath.Base(path))
	}
	return nil
}

// exampleConfig is the documented node configuration the cluster runs
// (its addresses, ports and paths overridden).
var exampleConfig = filepath.Join("..", "..", "contrib", "galera", "galera.cnf")

// cluster returns the package's 3-node cluster, started on first use and
// stopped by TestMain. It skips t where Galera is not installed (failing
// when CI=true) and under -short.
func cluster(t *testing.T) *galera.Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node Galera cluster")
	}
	if err := galera.Available(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true, so this is a failure; apt-get install galera-4 rsync)", err)
		}
		t.Skipf("%v (apt-get install galera-4 rsync)", err)
	}
	clusterOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		begin := time.Now()
		theCluster, clusterErr = galera.Start(ctx, galera.Config{
			Nodes:        3,
			DefaultsFile: exampleConfig,
			Logger:       slog.New(slog.NewTextHandler(os.Stderr, nil)),
		})
		if clusterErr == nil {
			fmt.Fprintf(os.Stderr, "galeratest: 3-node Galera cluster up in %v\n", time.Since(begin).Round(time.Millisecond))
		}
	})
	if clusterErr != nil {
		t.Fatal(clusterErr)
	}
	return theCluster
}

// conflicts is the sum over the nodes of the conflicts Galera resolved by
// aborting a local transaction: certification failures and brute-force
// aborts.
func conflicts(t *testing.T, c *galera.Cluster) int64 {
	t.Helper()
	var sum int64
	for _, n := range c.Nodes {
		for _, v := range []string{"wsrep_local_cert_failures", "wsrep_local_bf_aborts"} {
			x, err := n.StatusInt(context.Background(), v)
			if err != nil {
				t.Fatal(err)
			}
			sum += x
		}
	}
	return sum
}

// newDatabase creates a database on node 1 (it replicates to the others)
// and returns its name.
func newDatabase(t *testing.T, c *galera.Cluster) string {
	t.Helper()
	name := fmt.Sprintf("ykgt_%d", time.Now().UnixNano())
	if err := c.Nodes[0].Exec(context.Background(), "CREATE DATABASE "+name+" CHARACTER SET utf8mb4"); err != nil {
		t.Fatal(err)
	}
	return name
}
