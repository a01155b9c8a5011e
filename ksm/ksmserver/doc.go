// Package ksmserver is a YK-KSM decryption server: it turns a Yubico OTP
// into its counters with the AES key a ksm.KeyStore holds, and serves the
// answer over YK-KSM's HTTP API.
//
// # Decryption
//
// [Decrypter] does the work, independent of HTTP, so YK-VAL can also run it
// in-process. It checks an OTP in the order YK-KSM did, and each failure has
// its answer line:
//
//  1. empty OTP                                    ERR No OTP provided
//  2. not 0–16 + 32 lower-case modhex characters   ERR Invalid OTP format
//  3. storage failure, or a malformed stored key   ERR Database error
//  4. no active key with that public ID            ERR Unknown yubikey
//  5. decrypted private ID ≠ stored internalname   ERR Corrupt OTP
//  6. CRC-16 residue wrong                         ERR Corrupt OTP
//  7. success                                      OK counter=0001 low=8d40 high=0f use=00
//
// The private ID comparison runs in constant time, on bytes: unlike YK-KSM's
// string comparison, a stored internalname in upper-case hex matches. Fail
// closed: a storage failure is never reported as a verdict on the OTP, and
// never as OK.
//
// # HTTP API
//
// [NewMux] serves:
//
//	/wsapi/decrypt, /wsapi/decrypt/, /wsapi/decrypt.php   the decrypt API (GET, HEAD, POST)
//	/healthz                                             200 "OK\n", or 503 when the database does not answer
//	/metrics                                             Prometheus metrics
//
// The decrypt API takes one parameter, otp, from the query string or from a
// POST body (application/x-www-form-urlencoded or multipart/form-data) of at
// most 4 KiB. Like PHP's $_REQUEST, a value in the body replaces one in the
// query, and of repeated parameters the last one counts. An OTP of "0" is
// PHP-falsy and, as in YK-KSM, counts as no OTP at all.
//
// Every protocol answer has HTTP status 200 and a body of exactly one line
// ended by "\n". The Content-Type is "text/plain; charset=utf-8"; YK-KSM's
// PHP script sent PHP's default "text/html; charset=UTF-8", which no known
// client looks at. Methods other than GET, HEAD and POST get 405.
//
// Like YK-KSM, the API has no authentication of its own: anyone who can
// reach it can test OTPs. Keep it behind a firewall or on the loopback
// interface, and use what this package and cmd/ykksmd add:
//
// # Refusals
//
// [Config] can refuse decrypt requests before their OTP is looked at. The
// checks use the TCP peer's address (behind a reverse proxy, that of the
// proxy: filter there instead), in this order:
//
//	not on Config.Allow                         HTTP 403   ERR Access denied
//	past Config.RateLimit for its source         HTTP 429   ERR Rate limited   (with Retry-After)
//	no slot under Config.MaxInflight in time     HTTP 503   ERR Server busy    (with Retry-After: 1)
//
// YK-KSM's protocol has no such answers. Each has an HTTP error status,
// which YK-VAL and ksm/ksmclient treat as "this KSM did not answer" (the
// ERR lines are not among those ksmclient takes as verdicts either): a
// refused request is never a verdict on the OTP. ykvald, whose KSMs all
// refuse, answers BACKEND_ERROR, never OK or BAD_OTP (YK-VAL said BAD_OTP
// whenever no KSM said OK). /healthz and /metrics are not limited.
// Mutual TLS, which cmd/ykksmd offers (--tls-client-ca), refuses
// unauthenticated callers earlier still, in the TLS handshake.
//
// # Logging and metrics
//
// Each request logs one audit line, "decrypt", at Info (Error for storage
// failures) with its result, the public ID when the OTP was well-formed,
// the client's address (remote), the common name of its verified client
// certificate under mutual TLS (client), and the time taken (duration); a
// corrupt OTP's line says whether the private ID (YK-KSM's "UID error") or
// the CRC was wrong. A refused request logs "decrypt refused" with its
// reason and address, at Info, or at Debug when rate limited (so that a
// flood does not fill the log; the metric counts every one). AES keys,
// decrypted tokens and full OTPs are never logged, at any level. The
// Decrypter itself logs a private-ID mismatch or CRC failure at Debug
// only, and a stored key it cannot use at Error, naming the public ID and
// serial number, never the key.
//
// Metrics go to the registry the caller passes:
//
//	ykksm_decrypt_total{result="ok|no_otp|invalid_format|unknown_key|corrupt|database_error"}
//	ykksm_decrypt_duration_seconds
//	ykksm_refused_total{reason="not_allowed|rate_limited|busy"}
package ksmserver
