// Command ykvald is the YK-VAL validation server, a drop-in for YK-VAL's
// PHP scripts behind a web server:
//
//	ykvald [--config FILE] [--listen ADDR] [--database DSN] [--db-user USER] [--db-passwd-file FILE] [--max-conns N]
//	       [--kek-file FILE [--old-kek-file FILE]] [--tls-cert FILE --tls-key FILE]
//	       (--ksm-url URL... [--ksm-ca FILE] [--ksm-cert FILE --ksm-key FILE] |
//	        --ksm-db DSN [--ksm-db-user USER] [--ksm-db-passwd-file FILE] [--ksm-kek-file FILE [--ksm-old-kek-file FILE]] [--ksm-key-cache-ttl D])
//	       [--ksm-route PREFIX=URL[,URL...]...] [--ksm-timeout D] [--revoke-ip ADDR|CIDR...]
//	       [--rate-limit RATE [--rate-burst N]] [--client-rate-limit RATE [--client-rate-burst N]]
//	       [--max-inflight N] [--ksm-max-inflight N]
//	       [--sync-peer URL...] [--sync-ca FILE] [--sync-allow ADDR|CIDR...] [--resync-allow ADDR|CIDR...] [--sync-key-file FILE]
//	       [--sync-{fast,secure,default}-level N] [--sync-default-timeout D] [--sync-max-timeout D]
//	       [--queue-worker=false] [--queue-interval D] [--queue-old-limit D] [--queue-timeout D]
//	       [--queue-parallel N] [--queue-max-backoff D]
//	       [--read-timeout D] [--write-timeout D] [--idle-timeout D] [--shutdown-timeout D]
//	       [--log-level L] [--log-format F] [--log-target T] [--syslog-addr NETWORK:ADDR] [--verbose]
//
// It serves the verify API (/wsapi/2.0/verify and /wsapi/verify, with or
// without ".php"), the sync pool's /wsapi/2.0/sync and /wsapi/2.0/resync,
// /wsapi/revoke, /healthz and /metrics; see package val/valserver for the
// protocol and the decisions, package val/valsync for replication, and
// docs/REPLICATION.md for running a pool.
//
// --listen defaults to 127.0.0.1:8080 ($YKVAL_LISTEN when the flag is not
// given). Clients elsewhere must reach it over TLS: the verify API's
// signatures authenticate answers, they do not hide OTPs.
//
// # TLS
//
// --tls-cert and --tls-key serve HTTPS (TLS 1.2 or later; HTTP/2 offered)
// instead of plain HTTP. SIGHUP rereads both files: handshakes from then on
// present the new certificate, while connections already open, and
// requests on them, go on undisturbed. Files that do not load (unreadable,
// a key that does not match, an expired certificate) are logged as an
// error and the old certificate stays. Rename renewed files into place,
// then send SIGHUP (systemd: ExecReload=kill -HUP $MAINPID). Without TLS,
// SIGHUP is logged and ignored. Failed handshakes are counted in
// ykval_tls_handshake_errors_total and logged at Info (Debug when the
// client just hung up).
//
// The validation database (--database, or $YKVAL_DB, default
// sqlite:/var/lib/ykstack/ykval.db) is any DSN package internal/sqldb takes:
// a SQLite file, created with Yubico's clients, yubikeys and queue tables if
// missing, or a MySQL/MariaDB database (the ykval_verifier grants of Yubico's
// installation guide suffice once the tables exist). The MySQL password comes
// from --db-passwd-file or $YKVAL_DB_PASSWORD.
//
// # Sealed API secrets
//
// The clients' API secrets may be sealed at rest under a key-encryption
// key (see package val/valseal and the ykval-seal tool): --kek-file FILE
// names it (or $YKVAL_KEK_FILE, $YKVAL_KEK, or the systemd credential
// ykval-kek), --old-kek-file the previous one during a rotation; a KEK
// file must not be readable by its group or others. ykvald refuses to start
// (exit status 1) on a database holding sealed secrets without a KEK, or
// with a KEK that sealed none of them. With a KEK, plaintext secrets are
// read only while the database held some at startup (a seal in place under
// way; logged as a warning); a secret that does not open (a row moved to
// another client id) answers BACKEND_ERROR and logs an error. Sealing in
// place without downtime: start ykvald with --kek-file, run ykval-seal seal,
// restart ykvald.
//
// # KSMs
//
// OTPs are decrypted by YK-KSMs, reached one of two ways:
//
//   - --ksm-url URL (repeatable; $YKVAL_KSM_URL, separated by spaces or
//     commas): the decrypt URLs of KSMs, e.g.
//     http://127.0.0.1:8002/wsapi/decrypt. All are asked at once and the
//     first OK wins, as YK-VAL did with its otp2ksmurls list.
//   - --ksm-db DSN ($YKVAL_KSM_DB): decrypt in-process with the keys of a
//     KSM database (what ykksmd serves), no KSM server needed. Its MySQL user
//     needs only SELECT; the password comes from --ksm-db-passwd-file or
//     $YKVAL_KSM_DB_PASSWORD.
//
// Give one of them, not both: it is the default route. --ksm-route
// PREFIX=URL[,URL...] (repeatable) sends the OTPs whose public ID starts
// with PREFIX to other KSMs; the longest matching prefix wins, and "=URL"
// replaces the default route. This replaces YK-VAL's PHP otp2ksmurls
// function. An OTP no route matches gets BAD_OTP. --ksm-timeout (default
// 10 s, YK-VAL's fixed value) bounds each decryption.
//
// A KSM that gives no verdict (unreachable, timed out, "ERR Database error",
// a refusal) makes the answer BACKEND_ERROR; YK-VAL answered BAD_OTP.
//
// https KSMs are checked against the system's roots, or the CAs of
// --ksm-ca FILE. A KSM that admits only its VALs (ykksmd --tls-client-ca)
// wants a client certificate: --ksm-cert FILE and --ksm-key FILE, reread on
// SIGHUP. A KSM that refuses the handshake gives no verdict: BACKEND_ERROR.
// These flags apply to every KSM URL, of --ksm-url and of --ksm-route.
//
// The in-process KSM (--ksm-db) reads a database whose AES keys are sealed
// (ykksm-seal) with the KSM's key-encryption key: --ksm-kek-file FILE, or
// $YKVAL_KSM_KEK_FILE, $YKVAL_KSM_KEK, or the systemd credential ykksm-kek,
// and --ksm-old-kek-file during a KEK rotation (see cmd/ykksmd: the same
// rules). A sealed database without a KEK, or with a KEK that sealed none
// of its keys, stops ykvald at startup (exit status 1). It keeps keys it
// looked up in memory for --ksm-key-cache-ttl (default 5 s; 0 disables, see
// ksm/keycache): a key deactivated in the KSM database decrypts for up to
// that long, while disabling a key with /wsapi/revoke takes effect at once.
//
// # Other settings
//
// --revoke-ip ADDR|CIDR (repeatable; $YKVAL_REVOKE_IPS, separated by spaces
// or commas) lists the addresses and networks allowed to call
// /wsapi/revoke; none by default, as YK-VAL's __YKREV_IPS__.
//
// # Limits
//
// --rate-limit admits each source address (an IPv6 source by its /64) at
// most RATE verify requests (N, N/s, N/m, N/h), with bursts of
// --rate-burst; --client-rate-limit and --client-rate-burst do the same
// for each API client id. Past either the answer is OPERATION_NOT_ALLOWED
// (the protocol's "not allowed to verify", a final answer for clients),
// signed with the empty key for the source's limit, checked before the
// request is read, and with the client's key for the client's, checked
// after its signature. --max-inflight caps the verify requests answered at
// once and --ksm-max-inflight the decryptions asked of the KSMs at once; a
// request that finds no slot within a second gets BACKEND_ERROR with HTTP
// 503, which clients (yubico-c-client, valclient) take as this server
// failing, asking the pool's other servers. Refusals are counted in
// ykval_refused_total{reason="rate_limited|client_rate_limited|busy|ksm_busy|not_allowed"}
// (not_allowed: an address not on the sync, resync or revoke list); see
// package val/valserver. Requests are bounded as before: headers 16 KiB, a
// POST body 8 KiB, --read-timeout, --write-timeout, --idle-timeout.
//
// # Sync pool
//
// Without --sync-peer the server is a single node: its OK answers carry
// sl=0. --sync-peer URL (repeatable; $YKVAL_SYNC_PEERS) names the sync
// endpoint of every other server of the pool (YK-VAL's __YKVAL_SYNC_POOL__,
// e.g. https://val2.example.com/wsapi/2.0/sync; at most 100 bytes, the
// queue table's column): each accepted OTP is queued for every peer in the
// transaction that stores its counters, then sent to them, and the answer
// waits for the share of the pool the request's sl asks (--sync-fast-level
// 1, --sync-secure-level 40, --sync-default-level 60, YK-VAL's defaults;
// timeout from the request, default --sync-default-timeout 1 s, at most
// --sync-max-timeout 30 s). --sync-allow ADDR|CIDR (repeatable;
// $YKVAL_SYNC_ALLOW) lists who may call /wsapi/2.0/sync (YK-VAL's
// __YKVAL_ALLOWED_SYNC_POOL__, here with networks too); --resync-allow
// likewise for /wsapi/2.0/resync (default: the sync list). --sync-key-file
// FILE ($YKVAL_SYNC_KEY_FILE) holds a key the pool's ykvald servers share
// (base64, e.g. from "openssl rand -base64 32"; not readable by every
// user): requests are then signed with it and must be, and answers too.
// https peers are checked against the system's roots, or the CAs of
// --sync-ca FILE.
//
// The queue worker (YK-VAL's ykval-queue) runs in this process when there
// are peers, unless --queue-worker=false (then run ykval-queue): every
// --queue-interval (10 s) it resends the rows no verify could deliver,
// --queue-parallel (4) at a time per peer, each with --queue-timeout (30 s),
// backing off a failing peer up to --queue-max-backoff (5 min).
//
// # Configuration file
//
// --config FILE ($YKVAL_CONFIG) reads settings from lines "name = value",
// named like the long flags without their dashes (a repeatable flag takes
// one line per value; '#' starts a comment line; see internal/flagfile):
//
//	sync-peer  = https://val2.example.com/wsapi/2.0/sync
//	sync-peer  = https://val3.example.com/wsapi/2.0/sync
//	sync-allow = 192.0.2.0/24
//
// A flag on the command line wins over the file, the file over the
// environment.
//
// Every configuration problem is reported at once, with exit status 2.
//
// # Logs
//
// Logs go to standard error, one audit line per request at Info; API
// secrets, AES keys, passwords and full OTPs are never logged, at any
// level. --log-level (debug, info, warn, error; -v is debug), --log-format
// (text or json) and --log-target (stderr; journal: standard error with
// syslog priorities for systemd-journald; syslog, with --syslog-addr for a
// remote one) choose how; see package internal/logging. SIGINT or SIGTERM
// stops the server gracefully: requests in flight get --shutdown-timeout to
// finish.
//
// The server keeps the Go runtime's memory under a soft limit of 40 MiB
// (cli.ServerMemoryLimit), a guard against bursts that would take it past
// 64 MiB resident; GOMEMLIMIT in the environment replaces that limit
// (GOMEMLIMIT=off removes it). On a one-CPU machine it runs two Go
// schedulers rather than one (cli.MinServerProcs), so that a commit waiting
// in fsync does not hold up every other request; GOMAXPROCS in the
// environment replaces that choice.
package main

import (
	"os"

	"github.com/ykstack/ykstack/internal/cli"
)

func main() {
	cli.LimitServerMemory(os.Getenv)
	cli.ServerProcs(os.Getenv)
	cli.Main("ykvald", run)
}
