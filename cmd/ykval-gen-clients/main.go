// Command ykval-gen-clients creates API clients in a YK-VAL database, a
// drop-in for YK-VAL's ykval-gen-clients:
//
//	ykval-gen-clients [--urandom] [--email=E] [--notes=N] [--otp=O] [-h|--help]
//	                  [--database DSN] [--db-user USER] [--db-passwd-file FILE]
//	                  [--kek-file FILE] [num_clients]
//
// Each new client gets the next free id (one more than the highest id in
// the table, 1 for an empty table), active = 1, created = now, a fresh
// secret (20 random bytes, base64: 28 characters) and the --email, --notes
// and --otp values (empty if not given). For each it prints
//
//	id,secret
//
// on standard output, as soon as the client is stored. The clients exist
// only in this server's database (clients are not replicated): import the
// same clients on every server of a sync pool with ykval-export-clients and
// ykval-import-clients.
//
// Arguments are read as the original read them:
//
//   - The number of clients is the LAST argument read as an integer the way
//     PHP's intval does (leading digits: "3" and "3x" give 3, "1e3" gives
//     1000); when that is 0, because the last argument is an option, a word
//     or missing, one client is made. So "ykval-gen-clients --urandom 5"
//     makes 5 clients but "ykval-gen-clients 5 --urandom" makes 1 (a note
//     on standard error says so) and other arguments are ignored.
//   - --email, --notes and --otp take a value only after '=': in
//     "--email x@example.com" the address is an argument, not the value, and
//     the e-mail field stays empty.
//   - --urandom is accepted and changes nothing: secrets come from Go's
//     crypto/rand (the kernel's getrandom), which serves what /dev/random and
//     /dev/urandom both serve on current Linux.
//
// The database is named by --database (alias --db), else $YKVAL_DB, else
// sqlite:/var/lib/ykstack/ykval.db (created, with its tables, if missing);
// the MySQL password comes from --db-passwd-file, $YKVAL_DB_PASSWORD or
// --db-passwd. Each client is created atomically, so tools running at once
// never hand out one id twice.
//
// A database whose secrets are sealed at rest (see ykval-seal) takes new
// secrets only sealed: give its KEK with --kek-file FILE (or
// $YKVAL_KEK_FILE, $YKVAL_KEK, or the systemd credential ykval-kek).
// Without the KEK such a database is refused and nothing is created. The
// printed secrets are plaintext, as always.
//
// Differences from the PHP tool: --email, --notes and --otp are stored as
// parameters, never pasted into SQL (the original's SQL injection), and must
// fit their columns (255, 100 and 100 bytes); a negative count (which made
// the original create nothing and exit 0) or one above 2147483647 is a usage
// error; --help prints to standard output and exits 0 (the original exited
// 1); unknown options are usage errors (exit 2).
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-gen-clients", run) }
