// Command ykval-seal keeps the API secrets of a YK-VAL database sealed at
// rest under a key-encryption key (KEK), converting the database in place
// while validation servers keep answering (see package val/valseal for
// the format and package val/sqlstore for the rules); it is ykksm-seal's
// counterpart for the validation server:
//
//	ykval-seal status  [DB flags] [--kek-file FILE [--old-kek-file FILE]]
//	ykval-seal seal    [DB flags] --kek-file FILE [--batch N] [--verbose]
//	ykval-seal rotate  [DB flags] --kek-file NEW --old-kek-file OLD [--batch N] [--verbose]
//	ykval-seal unseal  [DB flags] --kek-file FILE [--old-kek-file FILE] [--batch N] [--verbose]
//	ykval-seal gen-kek FILE|-
//
// The DB flags are those of every VAL tool: --database DSN (or $YKVAL_DB,
// default sqlite:/var/lib/ykstack/ykval.db; a SQLite file must exist),
// --db-user, --db-passwd-file (or $YKVAL_DB_PASSWORD). The KEK comes from
// --kek-file, $YKVAL_KEK_FILE, $YKVAL_KEK (its base64 or hex) or the
// systemd credential ykval-kek; a KEK file must not be readable by its
// group or others (except under $CREDENTIALS_DIRECTORY). The VAL's KEK is
// its own: a KSM's KEK works too (the keys derived from it differ), but
// keeping them apart limits what one leaked file opens.
//
// status prints the database's mode (plaintext, sealed, mixed or empty),
// the number of plaintext and sealed secrets, the sealed ones per KEK key
// ID (marking the configured KEKs), and on MySQL the width of the secret
// column. It needs no KEK.
//
// seal seals every plaintext secret under the KEK. On MySQL it first widens
// the secret column from Yubico's varchar(60) to varchar(160) (ALTER
// privilege needed). Rows are converted in batches of --batch rows
// (default 100), each row by a single-row compare-and-set UPDATE, one short
// transaction per batch; a running ykvald sees every secret either
// plaintext or sealed, never half-written. It is idempotent and resumable.
// A database holding secrets sealed under another KEK is refused (use
// rotate). rotate re-seals the secrets sealed under the old KEK
// (--old-kek-file) under the new one (--kek-file); unseal turns every
// sealed secret back into plaintext, for a database shared with the PHP
// YK-VAL (which also reads the widened column).
//
// gen-kek writes a new random 32-byte KEK, as base64, to FILE, created with
// mode 0600 and never overwriting a file, and prints its key ID; with "-"
// it prints the KEK itself to standard output.
//
// The steps without downtime, each ykvald restarted in turn:
//
//	seal:    start ykvald with --kek-file K (it reads plaintext secrets
//	         while the database holds any); ykval-seal seal --kek-file K;
//	         restart ykvald so that plaintext secrets are refused from then on.
//	rotate:  ykval-seal gen-kek NEW; restart ykvald with --kek-file NEW
//	         --old-kek-file OLD; ykval-seal rotate --kek-file NEW
//	         --old-kek-file OLD; restart ykvald with --kek-file NEW alone.
//	unseal:  ykval-seal unseal --kek-file K while ykvald still has the KEK
//	         (a ykvald started on a fully sealed database refuses plaintext
//	         secrets until it restarts); then restart ykvald without it.
//
// The tools that read or write secrets (ykval-gen-clients,
// ykval-export-clients, ykval-import-clients, ykval-checksum-clients) take
// the same --kek-file. Exit status: 0 when done, 1 on an error or when
// secrets remain unconverted (a secret that does not open — a wrong KEK, a
// row moved to another id — is left as it is and its client id named), 2
// for a wrong command line. Secrets are never printed.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-seal", run) }
