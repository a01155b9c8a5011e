// Command ykval-import reads YubiKey counter data into a YK-VAL database, a
// drop-in for YK-VAL's ykval-import:
//
//	ykval-import [--help] [--database DSN] [--db-user USER] [--db-passwd-file FILE] < keys.csv
//
// Standard input holds lines in the YubiKey info format that ykval-export
// writes (package val/valcsv):
//
//	active,created,modified,yk_publicname,yk_counter,yk_use,yk_low,yk_high,nonce,notes
//
// Empty lines and lines whose first field starts with '#' are skipped. A key
// the database does not know is inserted as given. A key it knows is
// overwritten with all the line's fields only when the line's counters are
// ahead of the stored ones (a higher yk_counter, or the same and a higher
// yk_use), as a sync from a peer would; otherwise it is left alone, so an
// old export never rolls a key back and re-enables replayed OTPs. Then it
// prints
//
//	Successfully imported yubikeys to database
//
// Every line is checked before the database is touched, and all keys are
// written in one transaction: a malformed line is an error naming the line
// ("line 7: …", exit code 1) and a failed import changes nothing. Encrypted
// exports are decrypted before, e.g. gpg < yk-counter-data.asc | ykval-import.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db (created, with its tables, if missing);
// the MySQL password comes from --db-passwd-file, $YKVAL_DB_PASSWORD or
// --db-passwd.
//
// Differences from the PHP tool: it stopped at the first line the database
// refused, with the lines before it imported, and on SQLite always tried to
// insert (its existence check relied on rowCount, which SQLite does not
// give), failing on every known key; values go to the database as
// parameters, never pasted into SQL; a line with too few or too many fields,
// a number that is not a decimal integer or a value too long for its column
// is refused rather than guessed at; a field may be quoted the CSV way;
// --help prints to standard output and exits 0; unknown options and
// arguments are usage errors (exit 2).
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-import", run) }
