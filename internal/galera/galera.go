// Package galera starts throwaway MariaDB Galera clusters on one machine,
// for tests and benchmarks: N mariadbd processes replicating through the
// galera-4 provider (Debian's galera-4 package), each with its own data
// directory, socket and loopback ports, all under one temporary directory
// that Stop removes.
//
// The first node bootstraps the cluster (--wsrep-new-cluster) from a data
// directory made by mariadb-install-db; the others start empty and receive a
// full copy of it by rsync state snapshot transfer (SST), one after the
// other. Start returns once every node is Synced, ready (wsrep_ready = ON)
// and sees all N members (wsrep_cluster_size = N). A 3-node cluster takes
// 15–20 seconds.
//
// Every node runs with --no-defaults (or only Config.DefaultsFile), so no
// /etc/mysql setting applies, and listens on 127.0.0.1 only: its client port (root, no password), its
// group-communication port (gmcast.listen_addr), its incremental state
// transfer port (ist.recv_addr) and its SST port (the rsync daemon of a
// joining node). As root the nodes run as the mysql user: the rsync daemon a
// joining node starts would otherwise switch to nobody and could not write
// the node's files.
//
// Start fails with an error wrapping ErrUnavailable when a program the
// cluster needs is missing (mariadbd, mariadb-install-db, the provider
// libgalera_smm.so, rsync, wsrep_sst_rsync), so a test can skip where
// galera-4 is not installed.
package galera

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"
)

// ErrUnavailable reports that a program or library a Galera cluster needs
// is not installed.
var ErrUnavailable = errors.New("galera: not installed")

// Config says what cluster to start.
type Config struct {
	// Nodes is the number of nodes; 3 when 0.
	Nodes int
	// Dir holds the nodes' directories. When empty, Start makes a new
	// temporary directory and Stop removes it. As root, the nodes' user
	// (mysql) must be able to reach Dir.
	Dir string
	// Provider is the path of libgalera_smm.so; when empty, the usual
	// places (Debian's /usr/lib/galera/libgalera_smm.so first) are tried.
	Provider string
	// Args are more mariadbd options, given to every node after the
	// package's own.
	Args []string
	// DefaultsFile, when set, is an option file (my.cnf) every node reads
	// instead of none: Start copies it into each node's directory and
	// passes --defaults-file in place of --no-defaults. The package's own
	// options are on the command line, so they override the file's: its
	// addresses, ports, paths and provider options do not apply, the rest
	// does.
	DefaultsFile string
	// NodeTimeout bounds the start of each node, SST included; 2 minutes
	// when 0.
	NodeTimeout time.Duration
	// Logger receives progress at Info; nil discards it.
	Logger *slog.Logger
}

// Cluster is a running Galera cluster.
type Cluster struct {
	// Nodes are the cluster's nodes; Nodes[0] bootstrapped it.
	Nodes []*Node

	dir       string
	removeDir bool
	log       *slog.Logger
	stopOnce  sync.Once
	stopErr   error
}

// Node is one mariadbd of a cluster.
type Node struct {
	// Name is "node1", "node2", … (wsrep_node_name).
	Name string
	// Dir is the node's directory: data/, mysqld.sock, err.log.
	Dir string
	// Port is the client port on 127.0.0.1 (user root, no password).
	Port int
	// GaleraPort, ISTPort and SSTPort are the node's replication ports on
	// 127.0.0.1: group communication, incremental and full state transfer.
	GaleraPort, ISTPort, SSTPort int

	cmd     *exec.Cmd
	exited  chan struct{} // closed when the process has exited
	waitErr error         // the process's exit, once exited is closed
	db      *sql.DB       // root's connection pool, for status queries
}

// programs are what a cluster runs.
type programs struct {
	mariadbd, installDB, provider string
}

// find locates the programs a cluster needs and reports every missing one.
func find(provider string) (programs, error) {
	var p programs
	var missing []string
	look := func(names ...string) string {
		for _, n := range names {
			if path, err := exec.LookPath(n); err == nil {
				return path
			}
		}
		missing = append(missing, names[0])
		return ""
	}
	p.mariadbd = look("mariadbd", "/usr/sbin/mariadbd", "/usr/libexec/mariadbd")
	p.installDB = look("mariadb-install-db", "/usr/bin/mariadb-install-db", "mysql_install_db")
	look("rsync")
	look("wsrep_sst_rsync", "/usr/bin/wsrep_sst_rsync")
	if provider == "" {
		for _, c := range []string{
			"/usr/lib/galera/libgalera_smm.so",     // Debian, Ubuntu (galera-4)
			"/usr/lib64/galera-4/libgalera_smm.so", // Fedora, RHEL
			"/usr/lib/galera-4/libgalera_smm.so",
			"/usr/lib/libgalera_smm.so",
		} {
			if _, err := os.Stat(c); err == nil {
				provider = c
				break
			}
		}
		if provider == "" {
			missing = append(missing, "libgalera_smm.so (galera-4)")
		}
	} else if _, err := os.Stat(provider); err != nil {
		missing = append(missing, provider)
	}
	p.provider = provider
	if len(missing) > 0 {
		return p, fmt.Errorf("%w: missing %s", ErrUnavailable, strings.Join(missing, ", "))
	}
	return p, nil
}

// Available reports, as an error wrapping ErrUnavailable, what is missing to
// start a cluster with the default provider; nil when nothing is.
func Available() error {
	_, err := find("")
	return err
}

// Start starts a cluster and waits until every node is synced and sees all
// the others. On an error it stops what it started.
func Start(ctx context.Context, cfg Config) (c *Cluster, err error) {
	if cfg.Nodes == 0 {
		cfg.Nodes = 3
	}
	if cfg.Nodes < 1 {
		return nil, fmt.Errorf("galera: %d nodes", cfg.Nodes)
	}
	if cfg.NodeTimeout == 0 {
		cfg.NodeTimeout = 2 * time.Minute
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	progs, err := find(cfg.Provider)
	if err != nil {
		return nil, err
	}
	runAs, err := nodeUser()
	if err != nil {
		return nil, err
	}

	c = &Cluster{dir: cfg.Dir, log: log}
	if c.dir == "" {
		c.dir, err = os.MkdirTemp("", "ykgalera-")
		if err != nil {
			return nil, fmt.Errorf("galera: %w", err)
		}
		c.removeDir = true
	}
	defer func() {
		if err != nil {
			c.Stop()
			c = nil
		}
	}()

	ports, err := freePorts(4 * cfg.Nodes)
	if err != nil {
		return c, err
	}
	var members []string
	for i := range cfg.Nodes {
		n := &Node{
			Name: "node" + strconv.Itoa(i+1),
			Port: ports[4*i], GaleraPort: ports[4*i+1], ISTPort: ports[4*i+2], SSTPort: ports[4*i+3],
		}
		n.Dir = filepath.Join(c.dir, n.Name)
		if err := os.MkdirAll(filepath.Join(n.Dir, "data"), 0o750); err != nil {
			return c, fmt.Errorf("galera: %w", err)
		}
		members = append(members, "127.0.0.1:"+strconv.Itoa(n.GaleraPort))
		c.Nodes = append(c.Nodes, n)
		if cfg.DefaultsFile != "" {
			// A copy the node's user can read, also from an SST script.
			b, err := os.ReadFile(cfg.DefaultsFile)
			if err != nil {
				return c, fmt.Errorf("galera: %w", err)
			}
			if err := os.WriteFile(filepath.Join(n.Dir, "my.cnf"), b, 0o640); err != nil {
				return c, fmt.Errorf("galera: %w", err)
			}
		}
	}
	if runAs != nil {
		// The nodes' directories, and the top one when it is ours.
		top := []string{}
		if c.removeDir {
			top = append(top, c.dir)
		}
		for _, n := range c.Nodes {
			top = append(top, n.Dir)
		}
		for _, d := range top {
			if err := chown(d, runAs, d != c.dir); err != nil {
				return c, err
			}
		}
	}

	first := c.Nodes[0]
	install := exec.CommandContext(ctx, progs.installDB, "--no-defaults", "--datadir="+filepath.Join(first.Dir, "data"),
		"--auth-root-authentication-method=normal", "--skip-test-db")
	if runAs != nil {
		install.Args = append(install.Args, "--user="+runAs.Username)
	}
	if out, err := install.CombinedOutput(); err != nil {
		return c, fmt.Errorf("galera: mariadb-install-db: %w\n%s", err, tail(out, 20))
	}

	address := "gcomm://" + strings.Join(members, ",")
	for i, n := range c.Nodes {
		begin := time.Now()
		args := n.args(progs.provider, address, runAs, cfg.DefaultsFile != "")
		if i == 0 {
			args = append(args, "--wsrep-new-cluster")
		}
		args = append(args, cfg.Args...)
		if err := n.start(progs.mariadbd, args); err != nil {
			return c, err
		}
		nctx, cancel := context.WithTimeout(ctx, cfg.NodeTimeout)
		err := n.waitSynced(nctx, i+1)
		cancel()
		if err != nil {
			return c, err
		}
		log.Info("galera node synced", "node", n.Name, "port", n.Port, "took", time.Since(begin).Round(time.Millisecond))
	}
	// Every node, the donors of the transfers too, synced in the full cluster.
	for _, n := range c.Nodes {
		nctx, cancel := context.WithTimeout(ctx, cfg.NodeTimeout)
		err := n.waitSynced(nctx, cfg.Nodes)
		cancel()
		if err != nil {
			return c, err
		}
	}
	return c, nil
}

// nodeUser returns the user the nodes run as: the mysql user when running
// as root, nil (the current user) otherwise.
func nodeUser() (*user.User, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("mysql")
	if err != nil {
		return nil, fmt.Errorf("%w: running as root needs a mysql user to run the nodes as: %v", ErrUnavailable, err)
	}
	return u, nil
}

// chown gives path to u, and everything in it when recursive.
func chown(path string, u *user.User, recursive bool) error {
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("galera: user %s: %w", u.Username, err)
	}
	var err error
	if recursive {
		err = filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, uid, gid)
		})
	} else {
		err = os.Lchown(path, uid, gid)
	}
	if err != nil {
		return fmt.Errorf("galera: %w", err)
	}
	return nil
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("galera: free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// args are the mariadbd options of node n; withFile reads the node's
// my.cnf first.
func (n *Node) args(provider, address string, runAs *user.User, withFile bool) []string {
	defaults := "--no-defaults"
	if withFile {
		defaults = "--defaults-file=" + filepath.Join(n.Dir, "my.cnf")
	}
	a := []string{
		defaults,
		"--datadir=" + filepath.Join(n.Dir, "data"),
		"--socket=" + filepath.Join(n.Dir, "mysqld.sock"),
		"--pid-file=" + filepath.Join(n.Dir, "mysqld.pid"),
		"--log-error=" + filepath.Join(n.Dir, "err.log"),
		"--bind-address=127.0.0.1",
		"--port=" + strconv.Itoa(n.Port),
		"--skip-name-resolve",
		"--max-connections=500",
		"--innodb-buffer-pool-size=64M",
		"--innodb-log-file-size=16M",
		"--innodb-flush-log-at-trx-commit=1",
		"--binlog-format=ROW",
		"--default-storage-engine=InnoDB",
		"--innodb-autoinc-lock-mode=2",
		"--wsrep-on=ON",
		"--wsrep-provider=" + provider,
		"--wsrep-cluster-address=" + address,
		"--wsrep-node-name=" + n.Name,
		"--wsrep-node-address=127.0.0.1:" + strconv.Itoa(n.GaleraPort),
		"--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:" + strconv.Itoa(n.GaleraPort) +
			";ist.recv_addr=127.0.0.1:" + strconv.Itoa(n.ISTPort) + ";gcache.size=32M",
		"--wsrep-sst-method=rsync",
		"--wsrep-sst-receive-address=127.0.0.1:" + strconv.Itoa(n.SSTPort),
	}
	if runAs != nil {
		a = append(a, "--user="+runAs.Username)
	}
	return a
}

// start runs mariadbd with args, its output going to the node's
// stdout.log, and opens the node's connection pool.
func (n *Node) start(mariadbd string, args []string) error {
	out, err := os.OpenFile(filepath.Join(n.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("galera: %w", err)
	}
	defer out.Close() // the child has its own copy
	n.cmd = exec.Command(mariadbd, args...)
	n.cmd.Stdout, n.cmd.Stderr = out, out
	// Its own process group: a terminal's ^C reaches the test, which
	// then stops the cluster, rather than the nodes mid-transfer.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := n.cmd.Start(); err != nil {
		return fmt.Errorf("galera: start %s: %w", n.Name, err)
	}
	n.exited = make(chan struct{})
	go func() {
		n.waitErr = n.cmd.Wait()
		close(n.exited)
	}()

	mc := mysql.NewConfig()
	mc.User, mc.Net, mc.Addr = "root", "tcp", n.Addr()
	mc.Timeout = 2 * time.Second
	conn, err := mysql.NewConnector(mc)
	if err != nil {
		return fmt.Errorf("galera: %w", err)
	}
	n.db = sql.OpenDB(conn)
	n.db.SetMaxOpenConns(2)
	return nil
}

// waitSynced waits until the node is a synced, ready member of a primary
// component of at least size nodes.
func (n *Node) waitSynced(ctx context.Context, size int) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-n.exited:
			return fmt.Errorf("galera: %s exited while starting (%v); %s:\n%s", n.Name, n.waitErr, n.errLog(), n.LogTail(30))
		case <-ctx.Done():
			return fmt.Errorf("galera: %s not synced: %w (last: %v); %s:\n%s", n.Name, ctx.Err(), last, n.errLog(), n.LogTail(30))
		case <-tick.C:
		}
		st, err := n.statuses(ctx, "wsrep_ready", "wsrep_local_state_comment", "wsrep_cluster_status", "wsrep_cluster_size")
		if err != nil {
			last = err
			continue
		}
		have, _ := strconv.Atoi(st["wsrep_cluster_size"])
		if st["wsrep_ready"] == "ON" && st["wsrep_local_state_comment"] == "Synced" && st["wsrep_cluster_status"] == "Primary" && have >= size {
			return nil
		}
		last = fmt.Errorf("status %v", st)
	}
}

// Addr is the node's client address, "127.0.0.1:port".
func (n *Node) Addr() string { return "127.0.0.1:" + strconv.Itoa(n.Port) }

// DSN returns a go-sql-driver DSN for root on the node's database dbName
// ("" for none).
func (n *Node) DSN(dbName string) string {
	mc := mysql.NewConfig()
	mc.User, mc.Net, mc.Addr, mc.DBName = "root", "tcp", n.Addr(), dbName
	return mc.FormatDSN()
}

// Exec runs a statement on the node as root.
func (n *Node) Exec(ctx context.Context, query string, args ...any) error {
	if _, err := n.db.ExecContext(ctx, query, args...); err != nil {
		return fmt.Errorf("galera: %s: %w", n.Name, err)
	}
	return nil
}

// Status returns a global status variable of the node, such as
// wsrep_cluster_size or wsrep_local_cert_failures.
func (n *Node) Status(ctx context.Context, name string) (string, error) {
	st, err := n.statuses(ctx, name)
	if err != nil {
		return "", err
	}
	v, ok := st[name]
	if !ok {
		return "", fmt.Errorf("galera: %s: no status variable %s", n.Name, name)
	}
	return v, nil
}

// StatusInt is Status for a numeric variable.
func (n *Node) StatusInt(ctx context.Context, name string) (int64, error) {
	s, err := n.Status(ctx, name)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("galera: %s: %s = %q: %w", n.Name, name, s, err)
	}
	return v, nil
}

// statuses reads the named global status variables.
func (n *Node) statuses(ctx context.Context, names ...string) (map[string]string, error) {
	if n.db == nil {
		return nil, fmt.Errorf("galera: %s not started", n.Name)
	}
	q := "SHOW GLOBAL STATUS WHERE Variable_name IN (?" + strings.Repeat(", ?", len(names)-1) + ")"
	args := make([]any, len(names))
	for i, name := range names {
		args[i] = name
	}
	rows, err := n.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("galera: %s: %w", n.Name, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("galera: %s: %w", n.Name, err)
		}
		out[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("galera: %s: %w", n.Name, err)
	}
	return out, nil
}

func (n *Node) errLog() string { return filepath.Join(n.Dir, "err.log") }

// LogTail returns the last lines of the node's error log, for a failure
// message.
func (n *Node) LogTail(lines int) string {
	b, err := os.ReadFile(n.errLog())
	if err != nil {
		return err.Error()
	}
	return tail(b, lines)
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// stop ends the node: SIGTERM, and SIGKILL after grace.
func (n *Node) stop(grace time.Duration) error {
	if n.db != nil {
		n.db.Close()
	}
	if n.cmd == nil || n.cmd.Process == nil {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.exited:
		return nil
	case <-time.After(grace):
	}
	// The whole process group: an SST script and its rsync too.
	syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
	return fmt.Errorf("galera: %s did not stop within %v of SIGTERM; killed", n.Name, grace)
}

// Stop stops every node (SIGTERM, SIGKILL after 30 seconds) and removes the
// cluster's directory when Start made it. Calling it again does nothing.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for _, n := range c.Nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := n.stop(30 * time.Second); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if c.removeDir {
			if err := os.RemoveAll(c.dir); err != nil {
				errs = append(errs, fmt.Errorf("galera: %w", err))
			}
		}
		c.stopErr = errors.Join(errs...)
		c.log.Info("galera cluster stopped", "nodes", len(c.Nodes))
	})
	return c.stopErr
}
