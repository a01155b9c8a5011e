// Command ykval-checksum-clients prints a short checksum of the API clients
// of a YK-VAL database, a drop-in for YK-VAL's ykval-checksum-clients:
//
//	ykval-checksum-clients [-v|--verbose] [-h|--help] [--database DSN] [--db-user USER] [--db-passwd-file FILE] [--kek-file FILE]
//
// Clients are not replicated between the servers of a sync pool, so their
// operators compare this checksum to see whether every server knows the
// same clients. It is the first 10 lower-case hex digits of the SHA-1 of,
// for every client ordered by id, the line
//
//	id TAB active TAB secret LF
//
// with active as 0 or 1, all clients counted, active or not. -v prints
// those lines before the checksum. Output and checksum are the original's,
// so ykstack and YK-VAL servers can be compared with each other.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db; the MySQL password comes from
// --db-passwd-file, $YKVAL_DB_PASSWORD or --db-passwd. The tool changes
// nothing: a SQLite file must already exist and hold YK-VAL's tables.
// The checksum is over the plaintext secrets, so that servers whose
// secrets are sealed (each under its own KEK, with random nonces) still
// agree: a database with sealed secrets needs its KEK, --kek-file FILE (or
// $YKVAL_KEK_FILE, $YKVAL_KEK, or the systemd credential ykval-kek).
//
// Differences from the PHP tool: --help prints to standard output and exits
// 0 (the original exited 1); unknown options and arguments are usage errors
// with exit code 2 (the original exited 1); a database error is reported on
// standard error with exit code 1.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-checksum-clients", run) }
