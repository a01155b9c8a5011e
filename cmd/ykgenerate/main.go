// Command ykgenerate mints a Yubico OTP, like libyubikey's ykgenerate, for
// tests and troubleshooting:
//
//	ykgenerate [--public-id ID] AESKEY UID COUNTER LOW HIGH USE [RND]
//	ykgenerate --public-id ID [--database DSN] [--kek-file FILE] [--counter N] [--use N] [--timestamp N] [--random N]
//
// The first form is libyubikey's: AESKEY is 32 hex digits, UID the private
// ID in 12, COUNTER and LOW 4, HIGH and USE 2, and the optional RND 4 hex
// digits; RND is random when absent. Each number is the field's value,
// stored little-endian in the token as a YubiKey does (so RND 5447 gives the
// token bytes 47 54). It prints the 32-character token, or the whole OTP
// when --public-id is given.
//
// The second form looks the key up by its public ID in a YK-KSM database
// (--database or --db, else $YKKSM_DB, else sqlite:/var/lib/ykstack/ykksm.db;
// a SQLite file must exist) and prints a full OTP. Its numbers are decimal:
// --counter (default 1, 0–65535, bit 15 included as given), --use (default 0,
// 0–255), --timestamp (24 bits, random by default) and --random (16 bits,
// random by default). The key is found whether it is active or not, so
// OTPs of disabled keys can be minted to test that a KSM rejects them; a
// warning on standard error says so.
//
// A key sealed at rest is opened with the key-encryption key of --kek-file
// (or $YKKSM_KEK_FILE, $YKKSM_KEK, or the systemd credential ykksm-kek; see
// package ksm/seal).
//
// The output is the OTP and a newline. Differences from libyubikey's tool:
// arguments that are not hex digits are errors (the C tool decoded them to
// garbage), errors and usage exit 2 with the message on standard error, and
// random fields come from crypto/rand. An OTP is a one-time credential:
// do not paste real keys' OTPs into shared places.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykgenerate", run) }
