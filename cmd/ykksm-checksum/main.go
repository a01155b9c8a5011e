// Command ykksm-checksum prints a short checksum of a YK-KSM key database, a
// drop-in for YK-KSM's ykksm-checksum:
//
//	ykksm-checksum [--verbose] [--database DSN] [--db-user U] [--db-passwd-file F]
//	               [--kek-file FILE [--old-kek-file FILE]]
//
// Two KSMs that were fed the same key files print the same checksum, so
// comparing it (say, from cron next to `date --utc +%s`) shows whether they
// are in sync. The checksum is the first 10 lower-case hex digits of the
// SHA-1 of, for every key ordered by serial number then public name, the
// serial number in decimal, the public name, the private ID and the AES key,
// all concatenated with no separator. Every key counts, active or not. It
// reveals nothing usable about the keys.
//
// Keys sealed at rest (see package ksm/seal and ykksm-seal) are opened with
// the key-encryption key of --kek-file (or $YKKSM_KEK_FILE, $YKKSM_KEK, or
// the systemd credential ykksm-kek) and hashed in the clear: a sealed
// database has the checksum of its plaintext copy, before and after a KEK
// rotation. A sealed key without the KEK is an error.
//
// --verbose first prints "# serialnr=N publicname=P" for every key. An empty
// database prints "No data?!" and a blank line and exits 1, as the original
// did.
//
// The database is named by --database (alias --db), else $YKKSM_DB, else
// sqlite:/var/lib/ykstack/ykksm.db; the MySQL password comes from
// --db-passwd-file, $YKKSM_DB_PASSWORD or --db-passwd. A SQLite file must
// already exist (the tool never creates one). Differences from the Perl tool:
// --help prints to standard output and exits 0 (the original exited 1), and
// unknown options and extra arguments are usage errors (exit 2) rather than
// ignored.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykksm-checksum", run) }
