package main

import (
	"context"
	"fmt"
	"io"

	"github.com/ykstack/ykstack/internal/cli"
)

// subcommands maps each subcommand to its run function.
var subcommands = map[string]func(context.Context, cli.Env, []string) error{
	"baseline": runBaseline,
	"ksm":      runKSM,
	"val":      runVAL,
	"seed":     runSeed,
	"mkdb":     runMkDB,
	"dropdb":   runDropDB,
	"freeport": runFreePort,
	"wait":     runWait,
	"report":   runReport,
	"machine":  runMachine,
	"gencert":  runGenCert,
}

const usage = `usage: ykbench COMMAND [flags]

commands:
  baseline   serve one fixed line on loopback (the yardstick)
  ksm        load a YK-KSM's /wsapi/decrypt
  val        load a YK-VAL's /wsapi/2.0/verify with fresh (or --replay) OTPs
  seed       import a key file into a KSM database
  mkdb       create a MySQL/MariaDB database and print its DSN
  dropdb     drop a MySQL/MariaDB database
  freeport   print a free TCP port on 127.0.0.1
  wait       wait until a URL answers HTTP 200
  report     print JSON results as Markdown tables
  machine    print the machine record (CPU, RAM, kernel, Go, MariaDB settings)
  gencert    write a throwaway CA, server and client certificate (for HTTPS runs)

Run "ykbench COMMAND --help" for a command's flags.
`

func run(ctx context.Context, env cli.Env) error {
	if len(env.Args) == 0 {
		io.WriteString(env.Stderr, usage)
		return cli.Usagef("no command")
	}
	name, args := env.Args[0], env.Args[1:]
	if name == "help" || name == "-h" || name == "--help" {
		io.WriteString(env.Stdout, usage)
		return nil
	}
	cmd, ok := subcommands[name]
	if !ok {
		io.WriteString(env.Stderr, usage)
		return cli.Usagef("unknown command %q", name)
	}
	if err := cmd(ctx, env, args); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
