package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Op is one unit of work for a GroupCommitter. It runs inside a transaction
// it shares with other callers' ops, and may run more than once (after a
// rolled-back batch, it is re-run alone), so it must only record its results
// in variables it owns, overwriting them on every run.
type Op func(ctx context.Context, tx *sql.Tx) error

// GroupCommitter runs write operations submitted concurrently in shared
// transactions: a single writer takes every pending operation (up to a
// batch limit), runs them one after another in one transaction, commits,
// and only then tells each caller its result. Many acknowledgements share one
// fsync, yet none is given before its write is durable.
//
// Each op is still atomic on its own terms (a conditional UPDATE stays a
// compare-and-set: two ops on one row in a batch run one after the other).
// If an op fails, the batch is rolled back and every op of it is re-run in a
// transaction of its own, so one bad op cannot fail the others.
//
// The writer keeps one connection of db's pool for itself (it gives it back
// after an error, and takes another for the next batch), unless the pool
// holds fewer than minKeepConns connections, where it takes one per batch.
// On SQLite this keeps that connection's page cache valid from one batch to
// the next: a connection drops its cache whenever another one has committed,
// so a writer that took any idle connection would read every page afresh.
type GroupCommitter struct {
	db      *sql.DB
	conn    *sql.Conn // the writer's connection; nil until needed or after an error
	keep    bool      // whether conn outlives its batch (the pool is not too small)
	max     int
	reqs    chan *gcRequest
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when the writer has exited
	once    sync.Once
}

type gcRequest struct {
	op  Op
	err chan error
}

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("sqldb: group committer closed")

// NewGroupCommitter starts a writer on db that commits up to maxBatch ops at a time.
func NewGroupCommitter(db *sql.DB, maxBatch int) *GroupCommitter {
	if maxBatch < 1 {
		maxBatch = 1
	}
	g := &GroupCommitter{db: db, max: maxBatch, reqs: make(chan *gcRequest, 4*maxBatch),
		done: make(chan struct{}), stopped: make(chan struct{})}
	go g.loop()
	return g
}

// Do runs op in a shared transaction and returns once that transaction has
// committed (nil) or failed (an error). If ctx ends first Do returns ctx's
// error, but op may still commit later: callers must treat that error as
// "outcome unknown" and fail closed.
func (g *GroupCommitter) Do(ctx context.Context, op Op) error {
	select {
	case <-g.done:
		return ErrClosed
	default:
	}
	r := &gcRequest{op: op, err: make(chan error, 1)}
	select {
	case g.reqs <- r:
	case <-g.done:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.err:
		return err
	case <-g.stopped:
		select {
		case err := <-r.err: // answered just before the writer exited
			return err
		default:
			return ErrClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops the writer after the ops already accepted have run.
func (g *GroupCommitter) Close() {
	g.once.Do(func() { close(g.done) })
}

func (g *GroupCommitter) loop() {
	defer close(g.stopped)
	defer g.release()
	batch := make([]*gcRequest, 0, g.max)
	for {
		batch = batch[:0]
		select {
		case r := <-g.reqs:
			batch = append(batch, r)
		case <-g.done:
			g.drain()
			return
		}
	fill:
		for len(batch) < g.max {
			select {
			case r := <-g.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		g.run(batch)
	}
}

// drain fails the ops still queued at Close.
func (g *GroupCommitter) drain() {
	for {
		select {
		case r := <-g.reqs:
			r.err <- ErrClosed
		default:
			return
		}
	}
}

func (g *GroupCommitter) run(batch []*gcRequest) {
	ctx := context.Background()
	if err := g.runTx(ctx, batch); err == nil {
		for _, r := range batch {
			r.err <- nil
		}
		return
	}
	// Something failed and the batch rolled back: run each op alone so that
	// every caller gets its own outcome.
	for _, r := range batch {
		r.err <- g.runTx(ctx, []*gcRequest{r})
	}
}

func (g *GroupCommitter) runTx(ctx context.Context, batch []*gcRequest) error {
	if g.conn == nil {
		c, err := g.db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("sqldb: connect: %w", err)
		}
		g.conn = c
		n := g.db.Stats().MaxOpenConnections
		g.keep = n == 0 || n >= minKeepConns
	}
	tx, err := g.conn.BeginTx(ctx, nil)
	if err != nil {
		g.release() // perhaps a broken connection: take another next time
		return fmt.Errorf("sqldb: begin: %w", err)
	}
	for _, r := range batch {
		if err := r.op(ctx, tx); err != nil {
			tx.Rollback()
			g.release()
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		g.release()
		return fmt.Errorf("sqldb: commit: %w", err)
	}
	if !g.keep {
		g.release() // a small pool: the others need this connection
	}
	return nil
}

// minKeepConns is the smallest pool the writer keeps a connection of
// between batches.
const minKeepConns = 4

// release gives the writer's connection back to the pool.
func (g *GroupCommitter) release() {
	if g.conn != nil {
		g.conn.Close()
		g.conn = nil
	}
}
