// Command ykksm-export prints the keys of a YK-KSM database in the
// YKKSM-KEYPROV format, a drop-in for YK-KSM's ykksm-export:
//
//	ykksm-export [--verbose] [--help] [--database DSN] [--db-user USER] [--db-passwd PASSWD]
//	             [--kek-file FILE [--old-kek-file FILE]]
//	             [--encrypt-to KEYFILE... --sign-with KEYFILE [--passphrase-file FILE]]
//
// Each key, active or not, is one line, as the original printed it (no
// header line; the trailing comma is the empty accessed field):
//
//	serialnr,publicname,internalname,aeskey,lockcode,created,
//
// in the order of serial number, then public name (the original used no
// ORDER BY). --verbose puts a comment line before each key:
//
//	# serialnr=1 publicname=cccccccccccb internalname=… aeskey=… lockcode=… created=…
//
// An empty database prints "No data?!" and a blank line (exit 0). A SQLite
// file that does not exist is an error (it is not created).
//
// The output holds the AES keys in the clear. Pipe it into gpg, or, beyond
// the original, let ykksm-export sign and encrypt it itself: --encrypt-to
// KEYFILE (repeatable) names exported public keys of the receiving KSMs
// (gpg --export), --sign-with KEYFILE an exported secret key to sign with
// (gpg --export-secret-keys; a protected one is unlocked with the first line
// of --passphrase-file or a terminal prompt). The output is then one armored
// OpenPGP message that ykksm-import on the other KSM accepts when the
// signing key is in its keyring:
//
//	ykksm-export --encrypt-to ksm2-public.asc --sign-with ksm1-secret.asc > keys.asc
//	ykksm-import --keyring ksm2-secret.asc --keyring ksm1-public.asc < keys.asc
//
// With --encrypt-to an empty database is an error.
//
// Keys sealed at rest (see package ksm/seal and ykksm-seal) are opened with
// the key-encryption key of --kek-file (or $YKKSM_KEK_FILE, $YKKSM_KEK, or
// the systemd credential ykksm-kek; --old-kek-file during a rotation) and
// exported in the clear, exactly as from a plaintext database, so that
// another KSM, sealed or not, imports them. A sealed key without the KEK,
// or one that does not open, is an error and nothing is printed.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykksm-export", run) }
