// Command ykksmd is the YK-KSM decryption server, a drop-in for YK-KSM's
// ykksm-decrypt.php behind a web server:
//
//	ykksmd [--listen ADDR] [--database DSN] [--db-user USER] [--db-passwd-file FILE]
//	       [--kek-file FILE [--old-kek-file FILE] [--allow-plaintext]]
//	       [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
//	       [--allow ADDR|CIDR]... [--rate-limit RATE [--rate-burst N]] [--max-inflight N]
//	       [--max-conns N] [--read-timeout D] [--write-timeout D] [--idle-timeout D]
//	       [--shutdown-timeout D] [--log-level L] [--log-format F] [--log-target T] [--verbose]
//
// It serves GET/POST /wsapi/decrypt?otp=OTP (also /wsapi/decrypt/ and
// /wsapi/decrypt.php) with YK-KSM's one-line answers, /healthz and
// /metrics; see package ksm/ksmserver for the protocol.
//
// --listen defaults to 127.0.0.1:8002, the second KSM address in YK-VAL's
// default configuration (the first, port 80, is the web server the PHP KSM
// ran in); $YKKSM_LISTEN sets it when the flag is not given. Like YK-KSM,
// the API has no authentication of its own: listen on loopback, keep the
// port behind a firewall, or use the access controls below. A non-loopback
// address without --allow or --tls-client-ca gets a warning in the log.
//
// # TLS and access control
//
// --tls-cert and --tls-key serve HTTPS (TLS 1.2 or later; HTTP/2 offered)
// instead of plain HTTP. SIGHUP rereads both files: handshakes from then
// on present the new certificate, while connections already open, and
// requests on them, go on undisturbed. Files that do not load (unreadable,
// a key that does not match, an expired certificate) are logged as an
// error and the old certificate stays. Rename renewed files into place,
// then send SIGHUP (systemd: ExecReload=kill -HUP $MAINPID). Without TLS,
// SIGHUP is logged and ignored.
//
// --tls-client-ca turns on mutual TLS, YK-VAL → KSM caller
// authentication: a client must present a certificate, for client
// authentication, signed by a CA in that file (read at startup only), or
// its TLS handshake fails, before any request, for /healthz and /metrics
// too (give Prometheus a client certificate). The audit line names the
// caller by its certificate's common name (client=). ykvald's KSM client
// is ksm/ksmclient, with CAFile, CertFile and KeyFile.
//
// --allow (repeatable; comma-separated lists too) admits decrypt requests
// only from those addresses and CIDR networks; others get HTTP 403 "ERR
// Access denied". --rate-limit admits each source address (an IPv6 source
// by its /64) at most RATE decrypt requests (N/s, N/m, N/h), with bursts
// of --rate-burst; past it, HTTP 429 "ERR Rate limited". --max-inflight
// caps the decrypt requests answered at once; a request that finds no slot
// within a second gets HTTP 503 "ERR Server busy". These answers are not
// in YK-KSM's protocol: their HTTP status makes YK-VAL and ykvald take
// them as an unavailable KSM, never as a verdict on the OTP. /healthz and
// /metrics are not limited by them. See package ksm/ksmserver. Request
// size and time are bounded as before: headers 16 KiB, a POST body 4 KiB,
// --read-timeout, --write-timeout, --idle-timeout.
//
// Metrics add ykksm_refused_total{reason="not_allowed|rate_limited|busy"}
// and ykksm_tls_handshake_errors_total (failed handshakes, mutual-TLS
// refusals among them; a failure is logged at Info with the client's
// address, at Debug when the client just hung up).
//
// The key database (--database, or $YKKSM_DB, default
// sqlite:/var/lib/ykstack/ykksm.db) is any DSN package internal/sqldb
// takes: a SQLite file, created with Yubico's yubikeys table if missing, or a
// MySQL/MariaDB database, where a read-only user (YK-KSM's ykksmreader,
// SELECT only) is enough once the table exists. The MySQL password comes from
// --db-passwd-file or $YKKSM_DB_PASSWORD. --max-conns caps the database
// connection pool (0: 8 for SQLite, 64 for MySQL).
//
// AES keys may be sealed at rest under a key-encryption key (KEK; see
// package ksm/seal and the ykksm-seal tool). --kek-file names it (or
// $YKKSM_KEK_FILE, $YKKSM_KEK, or the systemd credential ykksm-kek, e.g.
// LoadCredential=ykksm-kek:/etc/ykstack/ykksm.kek), and --old-kek-file the
// previous one during a KEK rotation. At startup ykksmd refuses, with an
// error and exit status 1, a database holding sealed keys when no KEK is
// configured, and a KEK under which none of the sealed keys were sealed (a
// wrong KEK): it never falls back to reading keys as plaintext. With a KEK,
// plaintext keys are read only if the database held some at startup
// (sealing in place is under way; logged as a warning with their count)
// or with --allow-plaintext (for ykksm-seal unseal); otherwise a
// plaintext key, like a sealed key that does not open (a row moved to
// another public ID or edited to another UID), answers "ERR Database
// error" and logs an error naming the public ID.
//
// Sealing in place without downtime: start ykksmd with --kek-file, run
// ykksm-seal seal, then restart ykksmd so that plaintext keys are refused
// from then on. Rotating the KEK: restart ykksmd with --kek-file NEW
// --old-kek-file OLD, run ykksm-seal rotate --kek-file NEW --old-kek-file
// OLD, then restart with --kek-file NEW alone. Several KSMs behind YK-VAL
// restart one at a time.
//
// Logs go to standard error, one audit line per request at Info (result,
// public ID, client address and certificate name, duration); AES keys,
// decrypted tokens and full OTPs are never logged, at any level, and no
// flag changes that. --log-level (debug, info, warn, error; -v is debug),
// --log-format (text or json) and --log-target (stderr; journal: standard
// error with syslog priorities for systemd-journald; syslog, with
// --syslog-addr for a remote one) choose how; see package internal/logging. SIGINT or
// SIGTERM stops the server gracefully: requests in flight get
// --shutdown-timeout to finish.
//
// The server keeps the Go runtime's memory under a soft limit of 40 MiB
// (cli.ServerMemoryLimit), a guard against bursts that would take it past
// 64 MiB resident; GOMEMLIMIT in the environment replaces that limit
// (GOMEMLIMIT=off removes it).
package main

import (
	"os"

	"github.com/ykstack/ykstack/internal/cli"
)

func main() {
	cli.LimitServerMemory(os.Getenv)
	cli.Main("ykksmd", run)
}
