// Command ykval-synchronize asks a validation server to queue its key
// states for its sync peers, a drop-in for YK-VAL's ykval-synchronize. It
// is how a new server of a pool is seeded (YK-VAL's installation guide,
// step 10): run it against each existing server, whose queue workers then
// send every key to the new one.
//
//	ykval-synchronize URL KEY
//
// KEY is "all" or a public ID (0 to 16 modhex characters). URL is the
// server's resync URL, e.g. http://val1.example.com/wsapi/2.0/resync; as in
// YK-VAL, a URL without http:// or https:// is taken as a host (with
// "/wsapi/2.0/resync" appended when it has no '/') and prefixed with
// "http://". It sends GET URL?yk=KEY (User-Agent YK-VAL) and prints the
// answer, e.g. "OK Initiated resync of all". The server must allow this
// host (ykvald --resync-allow, default its --sync-allow list).
//
// Wrong arguments print the original's usage text on standard output and
// exit 1, as YK-VAL's does. Unlike YK-VAL's, which printed "error" and
// exited 0 when the request failed, a failed request (no connection, an
// HTTP error status) prints "error" on standard output, the reason on
// standard error, and exits 1.
package main

import "github.com/ykstack/ykstack/internal/cli"

func main() { cli.Main("ykval-synchronize", run) }
