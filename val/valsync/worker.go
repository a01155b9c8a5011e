package valsync

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ykstack/ykstack/val"
)

// WorkerConfig configures RunQueue. A zero field takes YK-VAL's value.
type WorkerConfig struct {
	// Interval is the time from the start of one round to the start of the
	// next (YK-VAL's __YKVAL_SYNC_INTERVAL__, 10 s). A round that takes
	// longer is followed at once by the next.
	Interval time.Duration
	// OldLimit is how long a row queued by a verify is left to that verify
	// before the worker sends it (__YKVAL_SYNC_OLD_LIMIT__, 10 s). Rows a
	// verify gave up on are marked due at once (queued NULL).
	OldLimit time.Duration
	// Timeout bounds each request (__YKVAL_SYNC_RESYNC_TIMEOUT__, 30 s).
	Timeout time.Duration
	// Parallel is the most requests in flight per peer (4, as YK-VAL).
	Parallel int
	// Batch is the most rows sent to one peer in one round (1000, as YK-VAL).
	Batch int
	// MaxBackoff bounds the wait before a peer that failed, or a database
	// that failed, is tried again: the wait starts at Interval and
	// doubles with each failure in a row (default 5 min).
	MaxBackoff time.Duration
}

// Defaults of WorkerConfig.
const (
	DefaultInterval     = 10 * time.Second
	DefaultOldLimit     = 10 * time.Second
	DefaultQueueTimeout = 30 * time.Second
	DefaultParallel     = 4
	DefaultBatch        = 1000
	DefaultMaxBackoff   = 5 * time.Minute
)

func (c WorkerConfig) withDefaults() WorkerConfig {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	if c.OldLimit <= 0 {
		c.OldLimit = DefaultOldLimit
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultQueueTimeout
	}
	if c.Parallel <= 0 {
		c.Parallel = DefaultParallel
	}
	if c.Batch <= 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.MaxBackoff < c.Interval {
		c.MaxBackoff = c.Interval
	}
	return c
}

// Validate reports every problem of c at once: negative durations and
// counts (zero means the default).
func (c WorkerConfig) Validate() error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"interval", c.Interval}, {"old limit", c.OldLimit}, {"timeout", c.Timeout}, {"maximum back-off", c.MaxBackoff}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("valsync: queue %s %v is negative", d.name, d.v))
		}
	}
	if c.Parallel < 0 || c.Batch < 0 {
		errs = append(errs, fmt.Errorf("valsync: queue parallelism %d and batch %d must not be negative", c.Parallel, c.Batch))
	}
	return errors.Join(errs...)
}

// backoff is the state of a peer that failed.
type backoff struct {
	fails int
	until time.Time
}

// delay returns the wait after fails failures in a row.
func delay(base, limit time.Duration, fails int) time.Duration {
	d := base
	for i := 1; i < fails && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// RunQueue is the queue worker, YK-VAL's ykval-queue: until ctx ends it
// sends the queued rows to their servers (every server with rows, in the
// pool or no longer), round after round. Each round takes, per server, up
// to Batch rows queued more than OldLimit ago or marked due (queued NULL)
// and sends them with at most Parallel requests in flight. An answer with
// status OK deletes the row (rows with the same modified, server nonce and
// server go with it) and stores the peer's counters if they are higher
// than the OTP's; BAD_OTP deletes it too (the peer has the key disabled:
// retrying is pointless). Any other status keeps the row and is logged.
// A peer that does not answer (connection refused, timeout, HTTP error)
// ends that peer's round, and the peer is tried again after a back-off
// that doubles up to MaxBackoff. A failing database is logged and retried
// with the same back-off: RunQueue never gives up. It returns nil once ctx
// ends, after the requests in flight stopped and their rows were settled.
func (p *Pool) RunQueue(ctx context.Context, cfg WorkerConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	w := &worker{p: p, cfg: cfg, backoff: map[string]*backoff{}}
	p.log.Info("valsync: queue worker started", "peers", len(p.peers), "interval", cfg.Interval, "old_limit", cfg.OldLimit,
		"timeout", cfg.Timeout, "parallel", cfg.Parallel, "max_backoff", cfg.MaxBackoff)
	dbFails := 0
	for {
		start := time.Now()
		wait := cfg.Interval
		if err := w.round(ctx); err != nil && ctx.Err() == nil {
			dbFails++
			wait = delay(cfg.Interval, cfg.MaxBackoff, dbFails)
			p.log.Error("valsync: queue round failed; retrying", "err", err, "in", wait)
		} else {
			dbFails = 0
			wait -= time.Since(start)
		}
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			p.log.Info("valsync: queue worker stopped")
			return nil
		case <-t.C:
		}
	}
}

// worker is RunQueue's state.
type worker struct {
	p       *Pool
	cfg     WorkerConfig
	mu      sync.Mutex
	backoff map[string]*backoff
}

// round works every server's due rows, the servers in parallel, and
// returns the store's errors.
func (w *worker) round(ctx context.Context) error {
	lengths, err := w.p.store.QueueLengths(ctx)
	if err != nil {
		return err
	}
	now := w.p.now()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for server, n := range lengths {
		if n == 0 {
			continue
		}
		w.mu.Lock()
		b := w.backoff[server]
		w.mu.Unlock()
		if b != nil && now.Before(b.until) {
			continue
		}
		wg.Go(func() {
			if err := w.server(ctx, server, now); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tally counts one server's round.
type tally struct {
	sent, ok, replayed, badOTP, refused, badAnswer, failed, malformed int
	lastErr                                                           error
}

// item is one request of a server's round: the row with the highest
// position of one key, standing for every row of that key it covers.
type item struct {
	entry   val.QueueEntry
	query   Query
	local   val.Position
	covered []val.QueueEntry // rows of the same key at or below query's position, entry included
}

// plan parses a server's due rows and keeps, per key, the row with the
// highest position: once the peer has it, the peer's counters are at least
// those of every other row of the key (a sync only ever raises them), so
// those rows are done too. Sending only that row also keeps the peer from
// seeing a key's OTPs out of order. It returns the items and the rows that
// cannot be parsed.
func plan(rows []val.QueueEntry) ([]*item, []val.QueueEntry, []error) {
	byKey := map[string]*item{}
	var (
		order     []string
		malformed []val.QueueEntry
		errs      []error
	)
	for _, e := range rows {
		q, local, err := ParseEntry(e)
		if err != nil {
			malformed = append(malformed, e)
			errs = append(errs, err)
			continue
		}
		it := byKey[q.State.PublicName]
		switch {
		case it == nil:
			it = &item{entry: e, query: q, local: local}
			byKey[q.State.PublicName] = it
			order = append(order, q.State.PublicName)
		case it.query.State.Pos().Less(q.State.Pos()):
			it.entry, it.query, it.local = e, q, local
		}
		it.covered = append(it.covered, e)
	}
	items := make([]*item, len(order))
	for i, name := range order {
		items[i] = byKey[name]
	}
	return items, malformed, errs
}

// server sends one server's due rows.
func (w *worker) server(ctx context.Context, server string, now time.Time) error {
	rows, err := w.p.store.DueEntries(ctx, server, now.Add(-w.cfg.OldLimit).Unix(), w.cfg.Batch)
	if err != nil || len(rows) == 0 {
		return err
	}
	items, malformed, perrs := plan(rows)
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		mu   sync.Mutex
		done []val.QueueEntry
		t    = tally{malformed: len(malformed)}
		wg   sync.WaitGroup
		work = make(chan *item)
	)
	if len(perrs) > 0 {
		t.lastErr = perrs[0]
	}
	for range min(w.cfg.Parallel, len(items)) {
		wg.Go(func() {
			for it := range work {
				if sctx.Err() != nil {
					continue
				}
				result, err := w.one(sctx, it)
				mu.Lock()
				t.sent++
				switch result {
				case resultOK, resultReplayed:
					t.ok++
					if result == resultReplayed {
						t.replayed++
					}
					done = append(done, it.covered...)
				case resultBadOTP:
					t.badOTP++
					done = append(done, it.covered...)
				case resultRefused:
					t.refused++
					t.lastErr = err
				case resultBadAnswer:
					t.badAnswer++
					t.lastErr = err
				default:
					if sctx.Err() == nil { // not a request cut short by stop or shutdown
						t.failed++
						t.lastErr = err
					}
					stop() // the peer does not answer: end its round
				}
				mu.Unlock()
			}
		})
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-sctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()

	// Settle even when ctx ended: the answers were received.
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	serr := w.p.store.SettleQueue(settle, done, nil)

	w.mu.Lock()
	b := w.backoff[server]
	var retryIn time.Duration
	switch {
	case t.failed > 0:
		if b == nil {
			b = &backoff{}
			w.backoff[server] = b
		}
		b.fails++
		retryIn = delay(w.cfg.Interval, w.cfg.MaxBackoff, b.fails)
		b.until = now.Add(retryIn)
	case t.ok+t.badOTP > 0:
		delete(w.backoff, server)
	}
	w.mu.Unlock()

	log := w.p.log.With("peer", server, "due", len(rows), "sent", t.sent, "done", len(done), "ok", t.ok, "replay_votes", t.replayed,
		"bad_otp", t.badOTP, "refused", t.refused, "bad_answer", t.badAnswer, "failed", t.failed, "malformed_rows", t.malformed)
	switch {
	case t.failed > 0:
		log.Warn("valsync: peer does not answer; backing off", "err", t.lastErr, "retry_in", retryIn)
	case t.refused+t.badAnswer+t.malformed > 0:
		log.Error("valsync: peer refused sync requests, or rows are malformed; they stay queued (check the peer's log)", "err", t.lastErr)
	case t.sent > 0:
		log.Info("valsync: queue round")
	}
	if serr != nil {
		return fmt.Errorf("settle %d rows of %s: %w", len(done), server, serr)
	}
	return nil
}

// one sends an item's row and returns its result label (resultOK,
// resultReplayed, resultBadOTP, resultRefused, resultBadAnswer,
// resultError).
func (w *worker) one(ctx context.Context, it *item) (string, error) {
	rctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	e, q := it.entry, it.query
	a, result, err := w.p.send(rctx, e.Server, q)
	if result == resultOK && Replayed(a.State, q.State) {
		result = resultReplayed
	}
	w.p.m.requests.WithLabelValues(e.Server, result).Inc()
	switch result {
	case resultOK, resultReplayed:
		w.p.applyHigher(a.State, q.State)
		w.compare(e.Server, a.State, q.State, it.local)
	case resultBadOTP:
		w.p.log.Warn("valsync: peer has the key disabled (BAD_OTP); dropping its rows", "peer", e.Server, "public_id", q.State.PublicName, "rows", len(it.covered))
	}
	return result, err
}

// compare logs what YK-VAL's queue logs when comparing an answer with the
// OTP and with the local counters at validation time.
func (w *worker) compare(peer string, remote, otp val.KeyState, local val.Position) {
	log := w.p.log.With("peer", peer, "public_id", otp.PublicName, "counter", otp.Counter, "use", otp.Use,
		"peer_counter", remote.Counter, "peer_use", remote.Use)
	switch {
	case otp.Pos().Less(remote.Pos()):
		log.Warn("valsync: peer has higher counters than the OTP: this answer would have marked the OTP as replayed")
	case remote.Pos() == otp.Pos() && remote.Nonce != otp.Nonce:
		log.Warn("valsync: peer has the OTP's counters with another nonce: this answer would have marked the OTP as replayed")
	case remote.Pos() == otp.Pos():
		log.Debug("valsync: peer had received the OTP already")
	case remote.Pos().Less(local):
		log.Debug("valsync: peer was behind our counters at validation time")
	}
}
