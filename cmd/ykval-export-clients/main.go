// Command ykval-export-clients writes the API clients of a YK-VAL database
// to standard output, a drop-in for YK-VAL's ykval-export-clients:
//
//	ykval-export-clients [--help] [--database DSN] [--db-user USER] [--db-passwd-file FILE] [--kek-file FILE]
//
// It prints one line per row of the clients table, ordered by id, in the
// client info format (package val/valcsv):
//
//	id,active,created,secret,email,notes,otp
//
// with active as 0 or 1 and no header: the original's output, line for
// line. ykval-import-clients reads it back. The output holds every client's
// HMAC secret: encrypt it, e.g. ykval-export-clients | gpg -a --encrypt -r KEY -s.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db; the MySQL password comes from
// --db-passwd-file, $YKVAL_DB_PASSWORD or --db-passwd. The tool changes
// nothing: a SQLite file must already exist and hold YK-VAL's tables.
// Secrets sealed at rest (see ykval-seal) are exported in plaintext with
// the KEK, --kek-file FILE (or $YKVAL_KEK_FILE, $YKVAL_KEK, or the systemd
// credential ykval-kek); without it, or for a secret that does not open,
// the export fails (exit 1).
//
// Differences from the PHP tool: a field holding a comma, a double quote or
// a line break is quoted the CSV way (the original wrote it as it was,
// breaking the line); a database error is reported on standard error with
// exit code 1 (the original only logged it); --help prints to standard output
// and exits 0; unknown options and arguments are usage errors (exit 2).
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-export-clients", run) }
