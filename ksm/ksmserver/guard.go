package ksmserver

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
)

// Answers to decrypt requests the server refuses before looking at the
// OTP. YK-KSM had none of these; each comes with an HTTP error status, so
// a client (YK-VAL's curl, ksm/ksmclient) takes it as "this KSM did not
// answer", never as a verdict on the OTP.
const (
	// AnswerAccessDenied is the body of HTTP 403: the source address is not
	// on Config.Allow.
	AnswerAccessDenied = "ERR Access denied"
	// AnswerRateLimited is the body of HTTP 429: the source went past
	// Config.RateLimit. A Retry-After header says when to come back.
	AnswerRateLimited = "ERR Rate limited"
	// AnswerBusy is the body of HTTP 503: Config.MaxInflight requests were
	// running and none finished within Config.InflightWait.
	AnswerBusy = "ERR Server busy"
)

// DefaultInflightWait is Config.InflightWait's default.
const DefaultInflightWait = time.Second

// Reasons of ykksm_refused_total.
var refusedLabels = [...]string{"not_allowed", "rate_limited", "busy"}

const (
	refNotAllowed = iota
	refRateLimited
	refBusy
)

var refusedBodies = [...][]byte{
	refNotAllowed:  []byte(AnswerAccessDenied + "\n"),
	refRateLimited: []byte(AnswerRateLimited + "\n"),
	refBusy:        []byte(AnswerBusy + "\n"),
}

var refusedStatus = [...]int{
	refNotAllowed:  http.StatusForbidden,
	refRateLimited: http.StatusTooManyRequests,
	refBusy:        http.StatusServiceUnavailable,
}

// guard refuses decrypt requests from sources not allowed, past their
// rate, or beyond the concurrency cap, before they reach the handler.
type guard struct {
	next       http.Handler
	allow      *netallow.List     // nil: anyone
	limit      *ratelimit.Limiter // nil: no limit
	sem        chan struct{}      // nil: no cap
	wait       time.Duration
	retryAfter []string // Retry-After of a 429
	log        *slog.Logger
	refused    [len(refusedLabels)]prometheus.Counter
}

func newGuard(next http.Handler, cfg Config, logger *slog.Logger, reg prometheus.Registerer) (http.Handler, error) {
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ykksm_refused_total",
		Help: "Decrypt requests refused before decryption, by reason.",
	}, []string{"reason"})
	if err := reg.Register(refused); err != nil {
		return nil, fmt.Errorf("ksmserver: register metrics: %w", err)
	}
	g := &guard{next: next, allow: cfg.Allow, limit: cfg.RateLimit, wait: cfg.InflightWait, log: logger}
	for i, l := range refusedLabels {
		g.refused[i] = refused.WithLabelValues(l)
	}
	if cfg.MaxInflight > 0 {
		g.sem = make(chan struct{}, cfg.MaxInflight)
	}
	if g.wait <= 0 {
		g.wait = DefaultInflightWait
	}
	if g.limit != nil {
		g.retryAfter = []string{strconv.Itoa(int(g.limit.RetryAfter() / time.Second))}
	}
	if g.allow == nil && g.limit == nil && g.sem == nil {
		return next, nil
	}
	return g, nil
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if g.allow != nil || g.limit != nil {
		addr, ok := netallow.HostAddr(r.RemoteAddr)
		if g.allow != nil && !(ok && g.allow.Contains(addr)) {
			g.refuse(w, r, refNotAllowed, slog.LevelInfo)
			return
		}
		if g.limit != nil {
			key := r.RemoteAddr
			if ok {
				key = ratelimit.AddrKey(addr)
			}
			if !g.limit.Allow(key) {
				w.Header()["Retry-After"] = g.retryAfter
				// Debug: a flood of these must not flood the log; the
				// metric counts them.
				g.refuse(w, r, refRateLimited, slog.LevelDebug)
				return
			}
		}
	}
	if g.sem != nil {
		select {
		case g.sem <- struct{}{}:
		default:
			if !g.acquireSlow(r) {
				w.Header()["Retry-After"] = []string{"1"}
				g.refuse(w, r, refBusy, slog.LevelInfo)
				return
			}
		}
		defer func() { <-g.sem }()
	}
	g.next.ServeHTTP(w, r)
}

// acquireSlow waits up to g.wait for a slot, or until the client goes.
func (g *guard) acquireSlow(r *http.Request) bool {
	t := time.NewTimer(g.wait)
	defer t.Stop()
	select {
	case g.sem <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-r.Context().Done():
		return false
	}
}

func (g *guard) refuse(w http.ResponseWriter, r *http.Request, reason int, level slog.Level) {
	g.refused[reason].Inc()
	w.Header()["Content-Type"] = contentType
	w.WriteHeader(refusedStatus[reason])
	w.Write(refusedBodies[reason])
	g.log.LogAttrs(r.Context(), level, "decrypt refused", slog.String("reason", refusedLabels[reason]), slog.String("remote", r.RemoteAddr))
}
