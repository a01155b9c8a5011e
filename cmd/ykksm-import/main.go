// Command ykksm-import imports a batch of YubiKey AES keys into a YK-KSM
// database, a drop-in for YK-KSM's ykksm-import:
//
//	ykksm-import [--verbose] [--help] [--database DSN] [--db-user USER] [--db-passwd PASSWD]
//	             [--kek-file FILE] [--creator CREATOR] (--keyring FILE... [--passphrase-file FILE] | --gpg)
//	             [--dry-run] < keys.asc
//
// Standard input is an OpenPGP message (armored or binary) holding a
// YKKSM-KEYPROV key file, as made by
//
//	ykksm-gen-keys 1 1000 | gpg --armor --sign --encrypt -r KSM-KEY -u GENERATOR-KEY
//
// The message must carry a valid signature by a trusted key; it is normally
// also encrypted to the KSM's key. It is opened in one of two ways:
//
//   - --keyring FILE (repeatable): in process, with the keys exported to the
//     files: the KSM's secret key (gpg --export-secret-keys) and the public
//     keys of the generators whose batches are accepted (gpg --export),
//     armored or binary. Every key in these files is trusted to sign. A
//     passphrase-protected secret key is unlocked with the first line of
//     --passphrase-file, or else asked for on the terminal (/dev/tty; never
//     standard input, which carries the message).
//   - --gpg: by the gpg binary with the keys of GNUPGHOME (or ~/.gnupg),
//     including keys in gpg-agent or on a smartcard, as the original did.
//     Every public key there is trusted to sign. --passphrase-file is passed
//     on to gpg (with --pinentry-mode loopback).
//
// Then every line of the key file is checked (see package ksm/keyprov); all
// malformed lines are reported with their numbers. Each key gets the creator
// --creator, or else the last 8 hex digits of the fingerprint of the key
// that made the signature (what gpg's VALIDSIG line shows), and an empty
// created becomes the local time as YYYY-MM-DDTHH:MM:SS. All keys are then
// stored in one transaction: either all of them are imported or, on any
// error (a public ID already in the database, say), none.
//
// With a key-encryption key (--kek-file, $YKKSM_KEK_FILE, $YKKSM_KEK or the
// systemd credential ykksm-kek; see package ksm/seal and ykksm-seal) the
// keys are stored sealed, and the last line says "imported 1000 keys,
// sealed under KEK 1a2b3c4d". A KEK under which none of the database's
// sealed keys were sealed is refused, and so is an import without a KEK
// into a database that holds sealed keys.
//
// Output, on standard output:
//
//	encrypted to: 22B699776109AD84            (the recipients' key IDs)
//	signed by: 497E5F2E (fingerprint 42A7…8372, Key Generator <gen@example.org>)
//	imported 1000 keys
//
// A message that was signed but not encrypted is accepted, as the original
// did, with "warning: the input was signed but not encrypted" on standard
// error. --dry-run checks the message and the key file and ends with
// "dry run: 1000 keys checked, nothing imported" without opening the
// database. --verbose adds "Verification output:" with gpg's status lines
// (or the in-process equivalent) and a line per key with its serial number
// and public ID. When standard error is a terminal a progress line is kept
// up to date there while a long file is read. AES keys are never printed.
//
// Errors go to standard error and the exit code is 1 (2 for a wrong command
// line); the database is then unchanged.
//
// Differences from the Perl tool: the import is all-or-nothing (the original
// stopped at the first bad line with the lines before it imported); the
// message is buffered in memory, never in a temporary file in the current
// directory; every data line is checked strictly (see ksm/keyprov); --help
// exits 0; unknown options and extra arguments are usage errors.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykksm-import", run) }
