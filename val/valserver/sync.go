package valserver

import (
	"context"
	"time"

	"github.com/ykstack/ykstack/val"
)

// Syncer replicates accepted OTPs to the other servers of a sync pool
// (YK-VAL's __YKVAL_SYNC_POOL__). For each OTP that passed the replay
// checks the verify handler asks Queue for the queue entries (one per peer),
// stores them in the same transaction as the new counters
// (val.Store.AdvanceKeyQueued), and then calls Sync and answers from its
// result: a Syncer decides how many of the pool must agree and reports how
// many did. Because the entries are committed with the counters, an
// accepted OTP is never lost for a peer, whatever happens afterwards; a
// queue worker retries the entries Sync could not deliver.
//
// The resync handler uses Queue too, to queue the stored state of keys.
//
// A nil Syncer in Config is a single node: no peers, nothing to wait for, and
// the OK answer carries sl=0, as YK-VAL does with an empty pool.
type Syncer interface {
	// Queue returns the queue entries that replicate req, one per peer,
	// each fitting the queue table (val.ValidQueueEntry). It does no I/O.
	Queue(req SyncRequest) []val.QueueEntry
	// Sync asks the peers in parallel, when the request's level requires
	// answers, until enough answered or the timeout passed, and settles
	// req.Queued (the entries stored with the counters). An error means
	// the result is unknown (the verify answer is then BACKEND_ERROR);
	// peers that do not answer are not an error, they are missing from
	// SyncResult.Valid.
	Sync(ctx context.Context, req SyncRequest) (SyncResult, error)
}

// SyncRequest is an accepted OTP to replicate.
type SyncRequest struct {
	OTP      string       // the normalized OTP
	Accepted val.KeyState // what was stored: public name, counters, modified, nonce
	Previous val.KeyState // the local state before (the queue's local_counter/local_use)
	Level    int64        // sl: percent of the pool that must agree, ≥ 1 (may exceed 100)
	Timeout  time.Duration
	Queued   []val.QueueEntry // the entries Queue returned, as stored; set for Sync
}

// SyncResult is how the pool answered.
type SyncResult struct {
	Pool     int  // peers in the pool
	Required int  // answers the level required: ceil(Pool × Level / 100)
	Valid    int  // answers agreeing the OTP is new
	Replayed bool // some peer had seen the OTP, or a later one
}

// SL returns the sl value of a response: floor(100 × Valid / Pool), and 0
// for an empty pool.
func (r SyncResult) SL() int {
	if r.Pool <= 0 {
		return 0
	}
	return 100 * r.Valid / r.Pool
}
