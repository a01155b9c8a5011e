package valsync

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
)

// UserAgent is the User-Agent of sync requests, YK-VAL's.
const UserAgent = "YK-VAL"

// DefaultTimeout is the sync timeout of a request that gives none, YK-VAL's
// __YKVAL_SYNC_DEFAULT_TIMEOUT__.
const DefaultTimeout = time.Second

// maxAnswerSize bounds the body read from a peer; a sync answer is about 250 bytes.
const maxAnswerSize = 8 << 10

// settleTimeout bounds the store writes that follow a sync round.
const settleTimeout = 10 * time.Second

// Config configures a Pool.
type Config struct {
	// Store is the local store: queue rows, and counters updated from
	// peers' answers. Required.
	Store val.Store
	// Peers are the sync URLs of the other servers of the pool (YK-VAL's
	// __YKVAL_SYNC_POOL__), e.g. https://val2.example.com/wsapi/2.0/sync;
	// not this server's own. See CheckPeer.
	Peers []string
	// Key, when set, is the key the pool shares: requests carry h, the
	// HMAC-SHA1 of their parameters under it, and answers must be signed
	// with it, bound to the request (valserver.BoundRequestField). Nil:
	// YK-VAL's unsigned requests, and answers signed with the empty key.
	Key []byte
	// Client sends the requests; nil means a client of the pool's own
	// (keep-alive connections, no redirects, system TLS roots).
	Client *http.Client
	// Logger receives the pool's log lines; nil discards.
	Logger *slog.Logger
	// Registerer receives the ykval_sync_* and ykval_queue_length metrics;
	// nil registers none.
	Registerer prometheus.Registerer
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Pool is a server's view of its sync pool: the peers, how to reach them,
// and the local store. It is the valserver.Syncer of the verify handler and
// runs the queue worker (RunQueue).
type Pool struct {
	store  val.Store
	peers  []string
	key    []byte
	client *http.Client
	log    *slog.Logger
	m      *metrics
	now    func() time.Time
	rounds sync.WaitGroup // sync rounds still collecting late answers
}

var _ valserver.Syncer = (*Pool)(nil)

// New checks cfg and returns its pool. Every bad peer is reported at once.
func New(cfg Config) (*Pool, error) {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("valsync: no store"))
	}
	seen := map[string]bool{}
	for _, p := range cfg.Peers {
		if err := CheckPeer(p); err != nil {
			errs = append(errs, err)
		}
		if seen[p] {
			errs = append(errs, fmt.Errorf("valsync: peer %q listed twice", p))
		}
		seen[p] = true
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Pool{store: cfg.Store, peers: append([]string(nil), cfg.Peers...), key: cfg.Key, client: cfg.Client, log: cfg.Logger, now: cfg.Now}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.client == nil {
		p.client = NewHTTPClient()
	}
	var err error
	if p.m, err = newMetrics(cfg.Registerer, p.peers, p.store, p.log); err != nil {
		return nil, err
	}
	return p, nil
}

// NewHTTPClient returns the client a Pool uses by default: keep-alive
// connections (up to 64 idle ones per peer), system TLS roots, and
// redirects not followed (a redirect is an error, as with YK-VAL's curl).
func NewHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Peers returns the pool's peers.
func (p *Pool) Peers() []string { return append([]string(nil), p.peers...) }

// Close waits for the sync rounds still collecting answers that arrived
// after their verify was answered (each is bounded by its request's
// timeout), and closes idle connections.
func (p *Pool) Close() {
	p.rounds.Wait()
	p.client.CloseIdleConnections()
}

// newServerNonce returns 32 random hex digits: YK-VAL's server_nonce,
// one per accepted OTP.
func newServerNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Queue implements valserver.Syncer: one entry per peer, queued now, with
// YK-VAL's info string. An OTP without a public ID gets none: the sync
// protocol requires yk_publicname (Sync then reports no answers).
func (p *Pool) Queue(req valserver.SyncRequest) []val.QueueEntry {
	if len(p.peers) == 0 || req.Accepted.PublicName == "" {
		return nil
	}
	queued := p.now().Unix()
	nonce := newServerNonce()
	info := Info(req.Accepted, req.Previous)
	out := make([]val.QueueEntry, len(p.peers))
	for i, peer := range p.peers {
		out[i] = val.QueueEntry{Queued: &queued, Modified: req.Accepted.Modified, ServerNonce: nonce, OTP: req.OTP, Server: peer, Info: info}
	}
	return out
}

// required returns ceil(n × level / 100), the answers a level requires of a
// pool of n peers, bounded to n+1 (a level above 100 cannot be met).
func required(n int, level int64) int {
	r := math.Ceil(float64(n) * float64(level) / 100)
	if r > float64(n) {
		return n + 1
	}
	if r < 0 {
		return 0
	}
	return int(r)
}

// peerAnswer is what one peer's request came to.
type peerAnswer struct {
	entry  val.QueueEntry
	answer Answer
	result string // one of the result* labels
	err    error
}

// Sync implements valserver.Syncer, as YK-VAL's sender does: it sends the
// OTP to every peer at once, each request bounded by req.Timeout, and
// counts the status=OK answers as they come: a replay vote when the peer's
// counters are above the OTP's or equal with another nonce (Replayed), a
// valid vote otherwise. It returns as soon as the required number of
// answers (ceil(pool × level / 100)) arrived, or when every peer answered or
// failed. Answers showing counters above the OTP's update the local store
// (update if higher).
//
// Unlike YK-VAL, which abandoned the requests still running, the round goes
// on in the background until every request answered or timed out; then
// the queue rows of peers that answered OK or BAD_OTP are deleted and the
// others marked for the queue worker (queued NULL), in one transaction.
func (p *Pool) Sync(ctx context.Context, req valserver.SyncRequest) (valserver.SyncResult, error) {
	res := valserver.SyncResult{Pool: len(p.peers)}
	if res.Pool == 0 {
		return res, nil
	}
	res.Required = required(res.Pool, req.Level)
	if len(req.Queued) == 0 {
		// Nothing was queued: an OTP without a public ID, which the sync
		// protocol cannot carry. Fail closed: no peer confirmed it.
		p.m.outcomes.WithLabelValues(outcomeNoPubID).Inc()
		p.log.Warn("valsync: an OTP without a public ID cannot be replicated (the sync protocol requires yk_publicname)")
		return res, nil
	}
	query := Query{OTP: req.OTP, State: req.Accepted}

	// The round outlives the verify request: late answers still settle the queue.
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	answers := make(chan peerAnswer, len(req.Queued))
	for _, e := range req.Queued {
		go func() {
			a, result, err := p.send(rctx, e.Server, query)
			answers <- peerAnswer{entry: e, answer: a, result: result, err: err}
		}()
	}

	decided := make(chan valserver.SyncResult, 1)
	p.rounds.Add(1)
	go func() {
		defer p.rounds.Done()
		defer cancel()
		r := res
		out := decided // set to nil once the result is sent
		var done, retry []val.QueueEntry
		answered := 0
		for range req.Queued {
			a := <-answers
			switch a.result {
			case resultOK:
				answered++
				if Replayed(a.answer.State, req.Accepted) {
					r.Replayed = true
					p.m.requests.WithLabelValues(a.entry.Server, resultReplayed).Inc()
					p.log.Warn("valsync: OTP replayed: a peer had seen it, or a later one",
						"peer", a.entry.Server, "public_id", req.Accepted.PublicName,
						"counter", req.Accepted.Counter, "use", req.Accepted.Use,
						"peer_counter", a.answer.State.Counter, "peer_use", a.answer.State.Use)
				} else {
					r.Valid++
					p.m.requests.WithLabelValues(a.entry.Server, resultOK).Inc()
				}
				p.applyHigher(a.answer.State, req.Accepted)
				done = append(done, a.entry)
			case resultBadOTP:
				p.m.requests.WithLabelValues(a.entry.Server, a.result).Inc()
				p.log.Warn("valsync: a peer has the key disabled (answered BAD_OTP)", "peer", a.entry.Server, "public_id", req.Accepted.PublicName)
				done = append(done, a.entry)
			default:
				p.m.requests.WithLabelValues(a.entry.Server, a.result).Inc()
				p.log.Debug("valsync: no sync answer from a peer; queued for the worker", "peer", a.entry.Server,
					"public_id", req.Accepted.PublicName, "result", a.result, "err", a.err)
				retry = append(retry, a.entry)
			}
			if answered == r.Required && out != nil {
				out <- r
				out = nil
			}
		}
		if out != nil {
			out <- r
		}
		sctx, scancel := context.WithTimeout(context.Background(), settleTimeout)
		defer scancel()
		if err := p.store.SettleQueue(sctx, done, retry); err != nil {
			p.log.Error("valsync: cannot settle the sync queue (the worker will resend)", "err", err)
		}
	}()

	select {
	case r := <-decided:
		switch {
		case r.Valid >= r.Required:
			p.m.outcomes.WithLabelValues(outcomeOK).Inc()
		case r.Replayed:
			p.m.outcomes.WithLabelValues(outcomeReplayed).Inc()
		default:
			p.m.outcomes.WithLabelValues(outcomeNotEnough).Inc()
		}
		return r, nil
	case <-ctx.Done():
		return res, fmt.Errorf("valsync: sync: %w", ctx.Err())
	}
}

// applyHigher stores a peer's state when it is ahead of the OTP (and so,
// possibly, of the local state): update if higher, as YK-VAL does with
// every answer.
func (p *Pool) applyHigher(peer, otp val.KeyState) {
	if !otp.Pos().Less(peer.Pos()) || peer.PublicName != otp.PublicName {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	next := otp
	next.Modified, next.Counter, next.Use, next.Low, next.High, next.Nonce = peer.Modified, peer.Counter, peer.Use, peer.Low, peer.High, peer.Nonce
	if _, err := p.store.AdvanceKey(ctx, next); err != nil {
		p.log.Error("valsync: cannot store a peer's higher counters", "public_id", otp.PublicName, "err", err)
	}
}

// send sends one sync request and classifies the outcome: resultOK with
// the parsed answer, resultBadOTP, resultRefused (another status),
// resultBadAnswer (malformed, or not signed as expected) or resultError
// (no answer). It counts the request's duration, not its result.
func (p *Pool) send(ctx context.Context, peer string, q Query) (Answer, string, error) {
	start := time.Now()
	defer func() { p.m.duration.WithLabelValues(peer).Observe(time.Since(start).Seconds()) }()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, peer+"?"+q.Encode(p.key), nil)
	if err != nil {
		return Answer{}, resultError, err
	}
	req.Header.Set("User-Agent", UserAgent)
	resp, err := p.client.Do(req)
	if err != nil {
		// The URL holds the OTP: keep it out of errors, which get logged.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return Answer{}, resultError, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerSize))
	if err != nil {
		return Answer{}, resultError, err
	}
	if resp.StatusCode != http.StatusOK {
		return Answer{}, resultError, fmt.Errorf("HTTP %s", resp.Status)
	}
	a, reply, err := ParseAnswer(body)
	if err != nil {
		return Answer{}, resultBadAnswer, err
	}
	if !p.signedAnswer(reply, q) {
		return Answer{}, resultBadAnswer, errors.New("answer not signed with the pool key")
	}
	switch a.Status {
	case val.StatusOK:
		if a.State.PublicName != q.State.PublicName {
			return Answer{}, resultBadAnswer, fmt.Errorf("answer for key %q, not %q", a.State.PublicName, q.State.PublicName)
		}
		return a, resultOK, nil
	case val.StatusBadOTP:
		return a, resultBadOTP, nil
	}
	return a, resultRefused, fmt.Errorf("peer answered %s", clip(string(a.Status)))
}

// signedAnswer reports whether an answer is signed as the pool expects:
// with the empty key (as YK-VAL signs every sync answer) when the pool has
// no key, else with the pool key, bound to the request.
func (p *Pool) signedAnswer(r val.Reply, q Query) bool {
	if p.key == nil {
		return r.Verify(nil)
	}
	fields := append(append([]val.Field(nil), r.Fields...), val.Field{Key: valserver.BoundRequestField, Value: q.Signature(p.key)})
	return val.Verify(p.key, fields, r.H)
}
