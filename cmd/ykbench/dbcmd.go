package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// runSeed imports a plain-text key file into a KSM database, in one
// transaction, and reports how long it took.
func runSeed(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("seed", env.Stderr)
	var db cli.DBFlags
	db.Register(fs, "YKBENCH_KSM", "")
	keysFile := fs.String("keys", "", "key `file` in ykksm-gen-keys' format (plain text)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *keysFile == "" {
		return cli.Usagef("--keys is required")
	}
	cfg, err := db.Config(env.Getenv)
	if err != nil {
		return err
	}
	f, err := os.Open(*keysFile)
	if err != nil {
		return err
	}
	recs, err := keyprov.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *keysFile, err)
	}
	st, err := sqlstore.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	start := time.Now()
	if err := st.Import(ctx, keyprov.Keys(recs)); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "seeded %d keys into %s in %.2f s\n", len(recs), st.DB().Name, time.Since(start).Seconds())
	return nil
}

// dbName is what mkdb and dropdb accept as a database name: nothing that
// needs quoting.
var dbName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// runMkDB creates a MySQL/MariaDB database and prints the DSN of it.
func runMkDB(ctx context.Context, env cli.Env, args []string) error {
	return adminDB(ctx, env, "mkdb", args, "CREATE DATABASE %s CHARACTER SET utf8mb4")
}

// runDropDB drops a MySQL/MariaDB database if it exists.
func runDropDB(ctx context.Context, env cli.Env, args []string) error {
	return adminDB(ctx, env, "dropdb", args, "DROP DATABASE IF EXISTS %s")
}

func adminDB(ctx context.Context, env cli.Env, name string, args []string, stmt string) error {
	fs := newFlagSet(name, env.Stderr)
	admin := fs.String("admin", env.Lookup("YKSTACK_TEST_MYSQL"), "administrator's go-sql-driver `DSN` (default $YKSTACK_TEST_MYSQL)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || !dbName.MatchString(fs.Arg(0)) {
		return cli.Usagef("want one database name of lower-case letters, digits and _")
	}
	t, err := sqldb.ParseDSN("mysql:" + *admin)
	if err != nil {
		return cli.Usagef("--admin: %v", err)
	}
	db, err := sqldb.Open(ctx, sqldb.Config{DSN: "mysql:" + *admin})
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, fmt.Sprintf(stmt, fs.Arg(0))); err != nil {
		return err
	}
	if name == "mkdb" {
		t.MySQL.DBName = fs.Arg(0)
		fmt.Fprintf(env.Stdout, "mysql:%s\n", t.MySQL.FormatDSN())
	}
	return nil
}

// runFreePort prints a TCP port on 127.0.0.1 that was free a moment ago.
func runFreePort(ctx context.Context, env cli.Env, args []string) error {
	if len(args) != 0 {
		return cli.Usagef("freeport takes no arguments")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	fmt.Fprintln(env.Stdout, port)
	return nil
}

// runWait polls a loopback URL until it answers HTTP 200 or the timeout
// (default 30 s) passes. An https URL takes the load commands' --cacert,
// --cert and --key.
func runWait(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("wait", env.Stderr)
	var tf tlsClientFlags
	tf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) < 1 || len(args) > 2 {
		return cli.Usagef("want [--cacert FILE [--cert FILE --key FILE]] URL [TIMEOUT]")
	}
	if err := tf.validate(); err != nil {
		return cli.Usagef("%v", err)
	}
	timeout := 30 * time.Second
	if len(args) == 2 {
		d, err := time.ParseDuration(args[1])
		if err != nil {
			if n, err2 := strconv.Atoi(args[1]); err2 == nil {
				d, err = time.Duration(n)*time.Second, nil
			}
		}
		if err != nil || d <= 0 {
			return cli.Usagef("bad timeout %q", args[1])
		}
		timeout = d
	}
	u, err := loopbackURL(ctx, args[0])
	if err != nil {
		return cli.Usagef("%v", err)
	}
	tc, err := tf.config(u)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil, TLSClientConfig: tc}}
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP status %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within %v: %w", u, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
