// Command ykval-export writes the YubiKey counter data of a YK-VAL database
// to standard output, a drop-in for YK-VAL's ykval-export:
//
//	ykval-export [--help] [--database DSN] [--db-user USER] [--db-passwd-file FILE]
//
// It prints one line per row of the yubikeys table, ordered by public name,
// in the YubiKey info format (package val/valcsv):
//
//	active,created,modified,yk_publicname,yk_counter,yk_use,yk_low,yk_high,nonce,notes
//
// with active as 0 or 1 and no header: the original's output, line for
// line. ykval-import reads it back. The data tells which OTPs were used;
// encrypt it in transit, e.g. ykval-export | gpg -a --encrypt -r KEY -s.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db; the MySQL password comes from
// --db-passwd-file, $YKVAL_DB_PASSWORD or --db-passwd. The tool changes
// nothing: a SQLite file must already exist and hold YK-VAL's tables.
//
// Differences from the PHP tool: a note or nonce holding a comma, a double
// quote or a line break is quoted the CSV way (the original wrote it as it
// was, breaking the line); public names are ordered by their bytes on every
// database (the same order for the lower-case modhex names YubiKeys have);
// a database error is reported on standard error with exit code 1 (the
// original only logged it); --help prints to standard output and exits 0;
// unknown options and arguments are usage errors (exit 2).
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-export", run) }
