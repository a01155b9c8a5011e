// Command ykksm-seal keeps the AES keys of a YK-KSM database sealed at rest
// under a key-encryption key (KEK), converting the database in place while
// KSMs keep answering (see package ksm/seal for the format and package
// ksm/sqlstore for the rules):
//
//	ykksm-seal status  [DB flags] [--kek-file FILE [--old-kek-file FILE]]
//	ykksm-seal seal    [DB flags] --kek-file FILE [--batch N] [--verbose]
//	ykksm-seal rotate  [DB flags] --kek-file NEW --old-kek-file OLD [--batch N] [--verbose]
//	ykksm-seal unseal  [DB flags] --kek-file FILE [--old-kek-file FILE] [--batch N] [--verbose]
//	ykksm-seal gen-kek FILE|-
//
// The DB flags are those of every KSM tool: --database DSN (or $YKKSM_DB,
// default sqlite:/var/lib/ykstack/ykksm.db; a SQLite file must exist),
// --db-user, --db-passwd-file (or $YKKSM_DB_PASSWORD). The KEK comes from
// --kek-file, $YKKSM_KEK_FILE, $YKKSM_KEK (its base64 or hex) or the systemd
// credential ykksm-kek; a KEK file must not be readable by its group or
// others (except under $CREDENTIALS_DIRECTORY).
//
// status prints the database's mode (plaintext, sealed, mixed or empty), the
// number of plaintext and sealed keys, the sealed ones per KEK key ID (marking
// the configured KEKs), and on MySQL the width of the aeskey column. It needs
// no KEK.
//
// seal seals every plaintext key under the KEK. On MySQL it first widens
// the aeskey column from Yubico's varchar(32) to varchar(128) (ALTER
// privilege needed; reads go on meanwhile). Rows are converted in batches of
// --batch rows (default 100), each row by a single-row compare-and-set
// UPDATE, one short transaction per batch; a running KSM sees every key
// either plaintext or sealed, never half-written. It is idempotent and
// resumable: interrupted, it is simply run again. A database holding keys
// sealed under another KEK is refused (use rotate).
//
// rotate re-seals the keys sealed under the old KEK (--old-kek-file) under
// the new one (--kek-file), the same way. unseal turns every sealed key back
// into plaintext, for a database shared with the PHP YK-KSM (which also
// reads the widened column).
//
// gen-kek writes a new random 32-byte KEK, as base64, to FILE, created with
// mode 0600 and never overwriting a file, and prints its key ID; with "-" it
// prints the KEK itself to standard output (to pipe into systemd-creds
// encrypt, say).
//
// The steps without downtime, each KSM restarted in turn:
//
//	seal:    start ykksmd with --kek-file K (it reads plaintext keys while
//	         the database holds any); ykksm-seal seal --kek-file K; restart
//	         ykksmd so that plaintext keys are refused from then on.
//	rotate:  ykksm-seal gen-kek NEW; restart ykksmd with --kek-file NEW
//	         --old-kek-file OLD (and import with --kek-file NEW);
//	         ykksm-seal rotate --kek-file NEW --old-kek-file OLD; restart
//	         ykksmd with --kek-file NEW alone.
//	unseal:  restart ykksmd with --kek-file K --allow-plaintext; ykksm-seal
//	         unseal --kek-file K; restart ykksmd without a KEK.
//
// Exit status: 0 when done, 1 on an error or when keys remain unconverted
// (a key that does not open — a wrong KEK, a row moved or edited — is left
// as it is and named), 2 for a wrong command line. Keys are never printed.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykksm-seal", run) }
