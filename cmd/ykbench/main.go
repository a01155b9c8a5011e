// Command ykbench is ykstack's load generator for `make bench`: it measures
// the YK-KSM decrypt API and the YK-VAL verify API over loopback HTTP or
// HTTPS with keep-alive connections, against servers on this machine only.
//
// Usage:
//
//	ykbench baseline --listen 127.0.0.1:PORT
//	ykbench ksm --url http://127.0.0.1:PORT (--keys FILE | --db DSN) [-c N] [-d 10s] [--warmup 2s]
//	ykbench ksm --url https://127.0.0.1:PORT --cacert CA [--cert FILE --key FILE] …
//	ykbench val --url http://127.0.0.1:PORT --client-id N --api-key B64 (--keys FILE | --db KSM-DSN) [--replay]
//	ykbench seed --db DSN --keys FILE        import a key file into a KSM database
//	ykbench mkdb --admin DSN NAME            create a MySQL/MariaDB database, print its DSN
//	ykbench dropdb --admin DSN NAME          drop it
//	ykbench freeport                         print a free TCP port on 127.0.0.1
//	ykbench wait [--cacert CA …] URL [TIMEOUT]  wait until URL answers HTTP 200
//	ykbench gencert --dir DIR                write a CA, server and client certificate
//	ykbench report FILE.jsonl                print the results as Markdown tables
//	ykbench machine [--admin DSN] [K=V...]   print the machine record of a run
//
// Each load run prints one human-readable line and one JSON line; --out
// appends the JSON line to a file. Every answer is checked: a wrong answer
// counts as an error, never as a success. A run is bounded by --duration
// (after --warmup) and by --max-requests, and ykbench refuses URLs that are
// not on a loopback address.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykbench", run) }
