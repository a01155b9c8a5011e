// Package valserver is a YK-VAL validation server: it answers the verify
// API (/wsapi/2.0/verify and /wsapi/verify) with YK-VAL's decisions over a
// val.Store and a val.KSM, and serves the sync, resync and revoke APIs,
// health checks and metrics.
//
// # Verify
//
// The parameters come from the query string when it has any, else from the
// POST form (at most MaxBodySize bytes); the protocol version from the
// request URI's /wsapi/N.M/ (none: 1.0). The decisions follow YK-VAL 2.41's
// ykval-verify.php step by step; the first that applies answers:
//
//	 1–6  malformed request (val.Config.ParseRequest)   MISSING_PARAMETER or BAD_OTP   empty key
//	 7    the store fails loading the client             BACKEND_ERROR                  empty key
//	 8    no active client with that id                  NO_SUCH_CLIENT                 empty key
//	 9    h given and not the request's signature        BAD_SIGNATURE                  client's key
//	10–11 every KSM rejects the OTP                      BAD_OTP                        client's key
//	      no KSM gives a verdict                         BACKEND_ERROR                  client's key
//	12    the key's state cannot be read or enrolled     BACKEND_ERROR                  client's key
//	13    the key is disabled                            BAD_OTP                        client's key
//	14    same (counter, use) and same nonce as stored   REPLAYED_REQUEST               client's key
//	15    (counter, use) not after the stored one        REPLAYED_OTP                   client's key
//	16–17 storing the counters and queue entries fails   BACKEND_ERROR                  client's key
//	      another request stored them first              REPLAYED_OTP                   client's key
//	18    the Syncer fails                               BACKEND_ERROR                  client's key
//	      a peer had seen the OTP                        REPLAYED_OTP                   client's key
//	      too few peers confirmed                        NOT_ENOUGH_ANSWERS             client's key
//	19    phishing test (logged only)
//	20                                                   OK                             client's key
//
// A key the KSM decrypts but the store does not know yet is enrolled (step
// 12), as YK-VAL does. The response body is YK-VAL's: CRLF lines h, t, the
// extras of val.Request.Extras, status and an empty line, with HTTP status
// 200 for every protocol status. The Content-Type is
// "text/plain; charset=utf-8" (YK-VAL's PHP sent "text/plain;charset=UTF-8").
//
// # Differences from YK-VAL
//
// Each one closes a hole of the original; none changes an answer a
// well-behaved client gets from a healthy server.
//
//   - A KSM that cannot be asked (unreachable, timeout, HTTP error, malformed
//     answer, "ERR Database error") gives BACKEND_ERROR, not BAD_OTP: the
//     original's FIXME. A KSM's verdict on the OTP stays BAD_OTP.
//   - The counter update is the store's atomic compare-and-set
//     (val.Store.AdvanceKey). YK-VAL checked, then updated without a lock,
//     so one OTP sent to a server many times at once could be accepted more
//     than once; here exactly one request wins and the others get
//     REPLAYED_OTP.
//   - Fail closed: every store error is BACKEND_ERROR, never OK. YK-VAL
//     ignored a failed counter update's result.
//   - 32-character OTPs (an empty public ID) are verified; YK-VAL 2.40+
//     answered BACKEND_ERROR for them.
//   - A panic answers BACKEND_ERROR (signed with the key known so far).
//   - Nonces are compared as strings; PHP's loose == compared numeric-looking
//     nonces as numbers.
//   - The sync timeout a request asks for is bounded by
//     Config.MaxSyncTimeout; YK-VAL's timeout=0 meant "wait for ever".
//
// # Replication
//
// A Syncer, when configured, replicates each accepted OTP (steps 16–18): its
// queue entries, one per peer, are stored in the transaction that stores the
// counters (val.Store.AdvanceKeyQueued; YK-VAL queued them afterwards, and
// a crash in between lost them), then the Syncer asks the peers. Without a
// Syncer the server is a single node: the OK answer carries sl=0, as
// YK-VAL's does with an empty sync pool. Package val/valsync is the Syncer
// and the queue worker.
//
// # Sync
//
// /wsapi/2.0/sync (also ".php", any method; only the query string is read)
// is the receiving end, checked in ykval-sync.php's order (ParseSyncRequest
// has the parameter rules):
//
//	1  empty query                                   MISSING_PARAMETER
//	2  address not in Config.SyncAllow               OPERATION_NOT_ALLOWED
//	   (ours) pool key set, h missing or wrong       OPERATION_NOT_ALLOWED
//	3  one of the 8 parameters missing or empty      MISSING_PARAMETER
//	5  modified not digits, a counter not digits/-1  MISSING_PARAMETER
//	6  otp, yk_publicname or nonce malformed         MISSING_PARAMETER
//	7–8 reading or updating the key fails            BACKEND_ERROR
//	10 the key is disabled (counters still updated)  BAD_OTP
//	11                                               OK
//
// Steps 7 and 8 are one atomic val.Store.SyncKey: the key is read (and
// enrolled with -1 values when unknown) and its counters replaced by the
// request's only if those are higher, while its row is locked, so a verify
// of the same OTP on this server runs wholly before or wholly after. The OK
// answer's extras modified, nonce, yk_publicname, yk_counter, yk_use,
// yk_high and yk_low are the local values from before the update: the
// sender counts a replay when they are above its OTP, or equal with another
// nonce. Every answer is signed with the empty key, as in YK-VAL, unless
// the pool shares a key (Config.SyncKey): then requests must be signed with
// it and answers are signed with it, bound to the request
// (BoundRequestField). The comparison logs YK-VAL's warnings (remote out of
// sync, already validated OTP, possible replay) at Warn, "request
// unnecessarily sent" at Info, without the OTP.
//
// # Resync
//
// /wsapi/2.0/resync?yk=<public id>|all queues the stored state of one key,
// or of every active key, for every peer (the queue worker sends it), with
// YK-VAL's fake OTP (public ID and 32 "c"). Only the networks of
// Config.ResyncAllow (default: Config.SyncAllow) may call it. The answers
// are YK-VAL's LF-terminated lines:
//
//	ERROR Authorization failed (logged <ip>)
//	ERROR Missing parameter
//	ERROR Unknown yk value: <yk>
//	ERROR Database connect error (1)
//	ERROR Unknown yubikey: <yk>
//	ERROR Failed resync
//	OK Initiated resync of <yk>
//
// Unlike YK-VAL it skips keys that were never accepted (still -1: every peer
// would refuse them with MISSING_PARAMETER, forever) and keys without a
// public name.
//
// # Revoke
//
// /wsapi/revoke?yk=<public id>&do=enable|disable sets a key's active flag in
// the local store. Only the addresses and CIDR networks of Config.RevokeIPs
// may call it (compared in canonical form, see internal/netallow; YK-VAL
// took single addresses only). The answers are YK-VAL's LF-terminated
// lines, with HTTP status 200:
//
//	ERROR Authorization failed (logged <ip>)
//	ERROR Missing parameter
//	ERROR Unknown yk value: <yk>
//	ERROR Unknown do value: <do>
//	ERROR Unknown yubikey: <yk>
//	ERROR Could not <do> for <yk>
//	OK Processed <yk> with <do>
//
// # Limits
//
// Config can refuse verify requests when a source or a client asks too
// often, or the server is saturated. The protocol has no status for "too
// many requests"; these are the answers, and why:
//
//	source address past Config.RateLimit        OPERATION_NOT_ALLOWED   empty key     HTTP 200, Retry-After
//	client id past Config.ClientRateLimit       OPERATION_NOT_ALLOWED   client's key  HTTP 200, Retry-After
//	no slot under Config.MaxInflight in time    BACKEND_ERROR           empty key     HTTP 503, Retry-After: 1
//	no slot under Config.MaxKSMInflight in time BACKEND_ERROR           client's key  HTTP 503, Retry-After: 1
//
// OPERATION_NOT_ALLOWED is the protocol's "this id is not allowed to
// verify"; it is a final answer for clients (yubico-c-client, valclient),
// which stop there rather than asking the pool's other servers, each of
// which would grant the same source its own rate again. The source's rate
// is checked first, before the request is read; the client's once the
// client is known and a signature, if any, checked (a request with a bad
// signature takes none of the client's rate), before the KSM is asked.
// A saturated server, on the other hand, says nothing about the OTP: its
// BACKEND_ERROR comes with HTTP 503, which yubico-c-client and valclient
// take as this server failing, so they wait for the pool's other servers.
// The source is the TCP peer's address: behind a reverse proxy, every
// request comes from the proxy, so limit there instead. These refusals
// are logged at Debug (the rate limits, so that a flood does not fill the
// log) or Info (the caps), and counted in ykval_refused_total.
// Allow-list refusals of sync, resync and revoke are counted there too.
//
// # Logging and metrics
//
// Each verify logs one audit line, "verify", at Info (Error for
// BACKEND_ERROR; see Limits for refusals) with the status, the client id
// once known, the OTP's public ID, the nonce, the protocol version, whether
// the request was signed, the reason for a refusal, the client's address
// (ip) and the time taken (took). Full OTPs, API secrets and signatures
// are never logged, at any level. A failed phishing test logs "OTP failed
// phishing test" at Warn.
//
// Metrics go to the registry the caller passes:
//
//	ykval_verify_total{status, client}   client is the client's id once the store returned it, else "unknown"
//	ykval_verify_duration_seconds
//	ykval_ksm_duration_seconds{result}   result is ok, rejected or unavailable
//	ykval_sync_received_total{status}    sync requests from peers, by answer
//	ykval_refused_total{reason}          rate_limited, client_rate_limited, busy, ksm_busy, not_allowed
package valserver
