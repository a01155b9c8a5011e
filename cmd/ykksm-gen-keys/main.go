// Command ykksm-gen-keys generates YubiKey OTP keys in the YKKSM-KEYPROV
// format (or as PSKC XML), a drop-in for YK-KSM's ykksm-gen-keys:
//
//	ykksm-gen-keys [--verbose|-v] [--urandom] [--progflags N] [--pskc] START [END]
//
// It writes one key per serial number from START to END (END defaults to
// START; an END of 0 also means START, as in the original) to standard
// output, in plain text: pipe it straight into gpg, e.g.
//
//	ykksm-gen-keys 1 10 | gpg -a --sign --encrypt -r KEYID > keys.asc
//
// For serial N the public ID is N as 12 hex digits in modhex (1 gives
// cccccccccccb); the private ID, AES key and lock code are fresh random bytes;
// created is the local time as YYYY-MM-DDTHH:MM:SS. The output is the
// original's, line for line:
//
//	# ykksm 1
//	# start S end E device DEV                  (--verbose)
//	# serialnr,identity,internaluid,aeskey,lockpw,created,accessed[,progflags]
//	# hexctr H modhexctr M                      (--verbose, before each key)
//	N,PUBLICID,UID,AESKEY,LOCKCODE,CREATED,     (with --progflags P: CREATED,,P)
//	# the end
//
// With --pskc it writes a PSKC KeyContainer instead, the AES keys in base64.
//
// Randomness comes from Go's crypto/rand, which reads the kernel's CSPRNG
// (getrandom(2)) in every case; --urandom is accepted for compatibility and
// changes only the device named by --verbose. The kernel CSPRNG is what
// /dev/random and /dev/urandom both serve on current Linux.
//
// Differences from the Perl tool, all to fail loudly rather than write a
// file that imports wrongly or not at all:
//
//   - --help prints the usage to standard output and exits 0 (the original
//     exited 1); no arguments, unknown options, a non-numeric or extra
//     argument, or START greater than END (which made the original print an
//     empty key file and exit 0) are usage errors: the message goes to
//     standard error and the exit code is 2.
//   - START and END must be decimal numbers from 0 to 2147483647 (the
//     yubikeys.serialnr column is an int); START 0 works (the original
//     stopped reading its arguments at a "0").
//   - --progflags must be a decimal number, as the key file format requires,
//     and cannot be combined with --pskc (the original ignored it there).
//   - The PSKC StartDate is the time in UTC, marked Z; the original wrote the
//     local time and marked it Z.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykksm-gen-keys", run) }
