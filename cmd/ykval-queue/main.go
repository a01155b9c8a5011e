// Command ykval-queue is the sync pool's queue worker, a drop-in for
// YK-VAL's ykval-queue daemon, for those who run it apart from ykvald:
//
//	ykval-queue [--config FILE] [--database DSN] [--db-user USER] [--db-passwd-file FILE]
//	            [--sync-peer URL...] [--sync-ca FILE] [--sync-key-file FILE] [--listen ADDR]
//	            [--queue-interval D] [--queue-old-limit D] [--queue-timeout D]
//	            [--queue-parallel N] [--queue-max-backoff D] [--verbose]
//
// It runs the same worker as ykvald's (package val/valsync, RunQueue) over
// the validation database: round after round it sends the queued rows that
// no verify delivered to their peers, up to --queue-parallel (4) requests in
// flight per peer, deletes a row when the peer answers OK or BAD_OTP,
// stores the peer's counters when they are higher, and backs off a peer
// that does not answer (and a database that fails) up to
// --queue-max-backoff. It never exits on such errors; SIGINT or SIGTERM
// stops it (exit 0). Like YK-VAL's, it exits 0 at once when there are no
// peers and the queue is empty: a single node has nothing to do.
//
// Run ykvald with --queue-worker=false when ykval-queue runs, or both
// send the same rows (harmless, sync is idempotent, but twice the work).
//
// The settings are ykvald's, and so are the environment variables
// ($YKVAL_DB, $YKVAL_DB_PASSWORD, $YKVAL_SYNC_PEERS, $YKVAL_SYNC_KEY_FILE,
// $YKVAL_CONFIG): --config may name ykvald's configuration file, whose
// other settings are ignored here. Peers matter for the metrics and the
// pool key; the worker sends every server that has rows in the queue,
// listed or not (rows of a server removed from the pool are still sent).
// https peers are checked against the system's roots, or the CAs of
// --sync-ca FILE, as in ykvald. The database must exist and hold YK-VAL's
// tables.
//
// --listen ADDR serves /metrics there (ykval_queue_length{peer},
// ykval_sync_requests_total{peer,result}, ykval_sync_duration_seconds{peer}).
// Logs go to standard error; OTPs are never logged at Info.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-queue", run) }
