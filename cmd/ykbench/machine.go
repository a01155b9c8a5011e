package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
)

// runMachine prints the machine record of a bench run: the hardware, the
// kernel, Go, the MariaDB server's durability settings when --admin names
// one, and any KEY=VALUE the caller adds (durations, concurrency, …).
func runMachine(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("machine", env.Stderr)
	admin := fs.String("admin", "", "go-sql-driver `DSN` of the MariaDB server to describe")
	out := fs.String("out", "", "append the JSON line to `file`")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	m := machineRecord{Kind: "machine", Settings: map[string]string{}}
	set := m.Settings
	for _, kv := range fs.Args() {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return cli.Usagef("want KEY=VALUE, got %q", kv)
		}
		set[k] = v
	}
	set["date"] = time.Now().UTC().Format(time.RFC3339)
	set["nproc"] = fmt.Sprint(runtime.NumCPU())
	set["cpu"] = firstField("/proc/cpuinfo", "model name")
	if kib := firstField("/proc/meminfo", "MemTotal"); kib != "" {
		set["ram"] = kib
	}
	var u syscall.Utsname
	if syscall.Uname(&u) == nil {
		set["kernel"] = utsString(u.Sysname[:]) + " " + utsString(u.Release[:]) + " " + utsString(u.Machine[:])
	}
	if os := osRelease(); os != "" {
		set["os"] = os
	}
	set["go (ykbench built with)"] = runtime.Version()
	set["load average at start"] = fmt.Sprintf("%.2f", loadAverage())
	set["sqlite"] = "modernc.org/sqlite, journal_mode=WAL, synchronous=FULL, busy_timeout=10000 (internal/sqldb defaults)"
	if *admin != "" {
		if err := describeMariaDB(ctx, *admin, set); err != nil {
			set["mariadb"] = "unavailable: " + err.Error()
		}
	}
	var b strings.Builder
	for _, k := range []string{"cpu", "nproc", "ram", "kernel"} {
		fmt.Fprintf(&b, "%s: %s; ", k, set[k])
	}
	return emit(env.Stdout, *out, m, strings.TrimSuffix(b.String(), "; "))
}

// describeMariaDB records the server's version and durability settings.
func describeMariaDB(ctx context.Context, admin string, set map[string]string) error {
	db, err := sqldb.Open(ctx, sqldb.Config{DSN: "mysql:" + admin})
	if err != nil {
		return err
	}
	defer db.Close()
	var version string
	if err := db.QueryRowContext(ctx, "SELECT VERSION()").Scan(&version); err != nil {
		return err
	}
	set["mariadb"] = version
	for _, v := range []string{"innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "innodb_buffer_pool_size", "innodb_flush_method", "innodb_doublewrite"} {
		var val string
		if err := db.QueryRowContext(ctx, "SELECT @@"+v).Scan(&val); err == nil {
			set["mariadb "+v] = val
		}
	}
	return nil
}

// firstField returns the value of the first "name : value" line of a /proc file.
func firstField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func osRelease() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func utsString[T int8 | uint8](b []T) string {
	s := make([]byte, 0, len(b))
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}
