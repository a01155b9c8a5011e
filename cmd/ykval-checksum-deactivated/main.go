// Command ykval-checksum-deactivated prints a short checksum of the
// deactivated YubiKeys of a YK-VAL database, a drop-in for YK-VAL's
// ykval-checksum-deactivated:
//
//	ykval-checksum-deactivated [-v|--verbose] [-h|--help] [--database DSN] [--db-user USER] [--db-passwd-file FILE]
//
// The active flag of a key (set by the revoke endpoint) is not replicated
// between the servers of a sync pool, so their operators compare this
// checksum to see whether every server has deactivated the same keys. It is
// the first 10 lower-case hex digits of the SHA-1 of, for every inactive key
// ordered by public name, the line
//
//	yk_publicname TAB yk_counter TAB yk_use LF
//
// -v prints those lines before the checksum. Output and checksum are the
// original's, so ykstack and YK-VAL servers can be compared with each other.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db; the MySQL password comes from
// --db-passwd-file, $YKVAL_DB_PASSWORD or --db-passwd. The tool changes
// nothing: a SQLite file must already exist and hold YK-VAL's tables.
//
// Differences from the PHP tool: a key whose active flag is NULL counts as
// inactive here (the original's "active = false" skipped it; YK-VAL never
// writes NULL there); --help prints to standard output and exits 0 (the
// original exited 1); unknown options and arguments are usage errors with
// exit code 2 (the original exited 1); a database error is reported on
// standard error with exit code 1.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-checksum-deactivated", run) }
