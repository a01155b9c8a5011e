// Command ykclient checks a YubiKey OTP against validation servers, a
// drop-in for the ykclient tool of Yubico's yubico-c-client:
//
//	ykclient [--url URL]... [--ca PATH] [--apikey KEY | --apikey-file FILE]
//	         [--sl LEVEL] [--timeout D] [--debug] CLIENT_ID OTP
//
// It sends one request, signed when an API key is given, to every --url at
// once (default https://api.yubico.com/wsapi/2.0/verify, as the original)
// and prints the verdict of the first final answer as the original does in
// debug mode:
//
//	Verification output (0): Success
//
// The number is the verdict's code in yubico-c-client's numbering: 0 OK;
// 1–9 the server statuses BAD_OTP, REPLAYED_OTP, BAD_SIGNATURE,
// MISSING_PARAMETER, NO_SUCH_CLIENT, OPERATION_NOT_ALLOWED, BACKEND_ERROR,
// NOT_ENOUGH_ANSWERS, REPLAYED_REQUEST; 101 an unparsable response, 107 a bad
// response signature, 109 no server reachable, 110 an OTP that is not 32 to
// 48 modhex characters.
//
// Exit status, as the original: 0 for a valid OTP, 1 for a hard failure
// (bad arguments, unreadable CA or key file), 2 if the OTP was replayed, 3
// for any other failure to validate it.
//
// --ca takes a PEM file or a directory of PEM files of CA certificates to
// trust instead of the system's (--cai is the same, for the original's
// file option). The API key may come from --apikey-file or $YKCLIENT_APIKEY
// instead of --apikey, which other users can see in ps. --debug prints the
// inputs (never the API key), each request URL with the OTP's token
// hidden, each raw response, and the fields of the deciding one.
//
// Differences from the original: the verdict line is printed without
// --debug too; a wrong number of arguments is an error (exit 1) rather than
// the usage text with exit 0; --timeout bounds the whole check (default
// 10s); the OTP is checked locally (case and Dvorak layout are folded first);
// --proxy and --retries are not offered (the Go HTTP stack honours
// $HTTPS_PROXY).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/ykstack/ykstack/internal/cli"
)

// ykclient's exit codes do not follow cli.Main's (2 means a replayed OTP
// here), so main maps them itself.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cli.OSEnv())
	stop()
	os.Exit(exitCode(os.Stderr, err))
}
