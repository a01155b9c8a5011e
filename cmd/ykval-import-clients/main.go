// Command ykval-import-clients reads API clients into a YK-VAL database, a
// drop-in for YK-VAL's ykval-import-clients:
//
//	ykval-import-clients [--help] [--database DSN] [--db-user USER] [--db-passwd-file FILE] [--kek-file FILE] < clients.csv
//
// Standard input holds lines in the client info format that
// ykval-export-clients writes (package val/valcsv):
//
//	id,active,created,secret,email,notes,otp
//
// Empty lines and lines whose first field starts with '#' are skipped;
// email, notes and otp may be left off. Clients whose id the database does
// not have are inserted; existing clients are never changed. Then it prints
//
//	Successfully imported clients to database
//
// Every line is checked before the database is touched, and all clients are
// written in one transaction: a malformed line is an error naming the line
// ("line 7: …", exit code 1) and a failed import changes nothing. Encrypted
// exports are decrypted before, e.g. gpg < yk-client-info.asc | ykval-import-clients.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db (created, with its tables, if missing);
// the MySQL password comes from --db-passwd-file, $YKVAL_DB_PASSWORD or
// --db-passwd. With --kek-file FILE (or $YKVAL_KEK_FILE, $YKVAL_KEK, or the
// systemd credential ykval-kek) the secrets are stored sealed under that
// key-encryption key (see ykval-seal); a database holding sealed secrets
// takes no import without it.
//
// Differences from the PHP tool: it stopped at the first line the database
// refused, with the lines before it imported; values go to the database as
// parameters, never pasted into SQL; a line with too few or too many fields,
// a number that is not a decimal integer or a value too long for its column
// is refused rather than guessed at; a field may be quoted the CSV way;
// --help prints to standard output and exits 0; unknown options and
// arguments are usage errors (exit 2).
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-import-clients", run) }
