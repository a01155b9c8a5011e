// Package valsync replicates accepted OTPs between the validation servers of
// a sync pool, speaking YK-VAL's sync protocol, so that a pool may mix
// ykvald with Yubico's PHP YK-VAL: the sending side of a verify (a
// valserver.Syncer), the queue worker (YK-VAL's ykval-queue), the wire
// format (Query, Info, ParseEntry, ParseAnswer) and allow-lists. The
// receiving end, /wsapi/2.0/sync, is valserver's.
//
// # A verify in a pool
//
// When a verify has passed the replay checks, Pool.Queue makes one queue
// row per peer (YK-VAL's queue table: queued now, the OTP's modified, a
// random 32-hex server nonce, the OTP, the peer's URL, and the info string
//
//	yk_publicname=<id>&yk_counter=<n>&yk_use=<n>&yk_high=<n>&yk_low=<n>&nonce=<nonce>,local_counter=<n>&local_use=<n>
//
// ), which the store writes in the transaction that stores the new
// counters. Pool.Sync then sends every peer
//
//	GET <peer>?otp=<otp>&modified=<unix>&yk_publicname=<id>&yk_counter=<n>&yk_use=<n>&yk_high=<n>&yk_low=<n>&nonce=<nonce>
//
// in parallel, each bounded by the request's timeout (default 1 s), and
// counts the answers with status=OK as they come. The peer answers with its
// state of the key from before it took the request: if that is above the
// OTP's counters, or equal to them with another nonce, the peer had accepted
// the OTP (or a later one) itself, and the answer is a replay vote; else a
// valid vote. Once ceil(N × sl / 100) answers arrived (N peers; sl from the
// request, fast = 1, secure = 40, default 60), the verify is answered: OK
// when all of them are valid, with sl = floor(100 × valid / N); REPLAYED_OTP
// when one is a replay vote; NOT_ENOUGH_ANSWERS when too few answered
// before the timeout. Answers above the OTP's counters also update the
// local counters (update if higher).
//
// Why an OTP sent to every server of a pool at once is accepted at most
// once (with sl requiring every peer, e.g. 60 with two peers): a server
// answers OK only when every peer's "before" state was below the OTP, that
// is when its sync reached every peer before the peer accepted the OTP
// itself. Every peer's receiver then stored the OTP's counters atomically
// (val.Store.SyncKey), so the peer's own compare-and-set fails: of two
// servers, each would have had to reach the other first. With a lower sl
// (fast) only the queried peers are guaranteed to refuse; the others learn
// of the OTP from the queue, a little later.
//
// # The queue
//
// Sync leaves no request behind: unlike YK-VAL, which abandoned the
// requests still running once it had enough answers, the round goes on in
// the background until each request answered or timed out, then deletes
// the rows of the peers that answered (OK or BAD_OTP) and marks the others
// due at once (queued NULL). Pool.RunQueue, the worker, sends the due rows
// (NULL, or queued longer than OldLimit ago) to every server that has some,
// up to four requests in flight per peer, and deletes a row only when the
// peer answered OK or BAD_OTP. A peer that does not answer is retried after
// a back-off that doubles up to a limit; a database that fails is logged
// and retried the same way. The worker never exits on an error.
//
// # Peer authentication
//
// YK-VAL's only guard on /wsapi/2.0/sync is an address allow-list (exact
// addresses; here also networks in CIDR notation, package internal/netallow,
// which ParseAllowList wraps). A pool of ykvald servers may also share a key
// (Config.Key, valserver.Config.SyncKey):
// every sync request then carries h, the HMAC-SHA1 (val.Sign) of its eight
// parameters under the key, the receiver refuses requests without a valid
// one (OPERATION_NOT_ALLOWED), and it signs its answer with the key over the
// answer's fields plus the request's h (valserver.BoundRequestField), so a
// sender accepts only answers from a key holder to this very request. An
// answer from a pool without a key is checked against the empty key, which
// is what YK-VAL signs sync answers with. YK-VAL's receiver reads only its
// eight parameters and ignores an extra h; but it cannot sign answers with
// a key, so a pool with a PHP server runs without one (protect it with the
// allow-list, and TLS between the servers).
//
// # Metrics
//
//	ykval_sync_requests_total{peer,result}   ok, replayed, bad_otp, refused, bad_answer, error
//	ykval_sync_duration_seconds{peer}        time to an answer (or a failure)
//	ykval_sync_outcomes_total{result}        verify-time syncs: ok, replayed, not_enough, no_publicid
//	ykval_queue_length{peer}                 queue rows per server, counted when scraped
package valsync
