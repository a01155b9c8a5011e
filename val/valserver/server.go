package valserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
	"github.com/ykstack/ykstack/val"
)

// MaxBodySize is the largest POST body the handlers read. A larger body is
// ignored, as if the request had none.
const MaxBodySize = 8 << 10

// DefaultMaxSyncTimeout bounds the sync timeout a request may ask for when
// Config.MaxSyncTimeout is zero.
const DefaultMaxSyncTimeout = 30 * time.Second

// healthTimeout bounds the database ping of /healthz.
const healthTimeout = 3 * time.Second

// contentType is shared by every answer; nothing modifies it.
var contentType = []string{"text/plain; charset=utf-8"}

// Config configures NewMux.
type Config struct {
	// Store keeps clients and key states. Required.
	Store val.Store
	// KSM decrypts OTPs. Required.
	KSM val.KSM
	// Syncer replicates accepted OTPs to a sync pool; nil is a single node.
	Syncer Syncer
	// Logger receives one line per request. Nil discards.
	Logger *slog.Logger
	// Registry receives the ykval_* metrics and is what /metrics serves.
	// Nil means a new registry of its own.
	Registry *prometheus.Registry
	// Levels are the sync levels and the default sync timeout; the zero
	// value means val.DefaultConfig() (fast 1, secure 40, default 60, 1 s).
	Levels val.Config
	// MaxSyncTimeout bounds the timeout a request asks for (timeout=0, "no
	// timeout" in YK-VAL, gets it too). Zero means DefaultMaxSyncTimeout.
	MaxSyncTimeout time.Duration
	// RevokeIPs are the addresses and CIDR networks allowed to call
	// /wsapi/revoke (YK-VAL's __YKREV_IPS__, which held single addresses),
	// as package internal/netallow parses them. Empty: nobody.
	RevokeIPs []string
	// SyncAllow are the networks allowed to call /wsapi/2.0/sync (YK-VAL's
	// __YKVAL_ALLOWED_SYNC_POOL__, which held single addresses: a /32 or
	// /128 prefix). Empty: nobody.
	SyncAllow []netip.Prefix
	// ResyncAllow are the networks allowed to call /wsapi/2.0/resync
	// (YK-VAL's __YKRESYNC_IPS__). Nil means SyncAllow, as in YK-VAL; an
	// empty, non-nil list means nobody.
	ResyncAllow []netip.Prefix
	// SyncKey, when set, is the key the sync pool shares: a sync request
	// must carry h, the HMAC-SHA1 of its other parameters under this key
	// (else OPERATION_NOT_ALLOWED), and the answer is signed with it, bound
	// to the request (see BoundRequestField). Nil: requests are not signed
	// and answers are signed with the empty key, as in YK-VAL.
	SyncKey []byte
	// RateLimit, when not nil, limits the verify requests of each source
	// address (ratelimit.AddrKey: an IPv6 source by its /64). It is checked
	// first, before the request is read; past it the answer is
	// OPERATION_NOT_ALLOWED signed with the empty key.
	RateLimit *ratelimit.Limiter
	// ClientRateLimit, when not nil, limits the verify requests of each
	// client id. It is checked once the client is known and the request's
	// signature checked, before the KSM is asked; past it the answer is
	// OPERATION_NOT_ALLOWED signed with the client's key.
	ClientRateLimit *ratelimit.Limiter
	// MaxInflight, when positive, caps the verify requests answered at
	// once; one that finds no free slot within InflightWait gets HTTP 503
	// with BACKEND_ERROR signed with the empty key.
	MaxInflight int
	// MaxKSMInflight, when positive, caps the decryptions asked of the KSMs
	// at once; a verify that finds no free slot within InflightWait gets
	// HTTP 503 with BACKEND_ERROR signed with the client's key.
	MaxKSMInflight int
	// InflightWait is how long a request waits for a slot under
	// MaxInflight or MaxKSMInflight. Zero means DefaultInflightWait.
	InflightWait time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Checker, when set, reads a key's state and stores an accepted OTP's
	// counters in one call (see KeyChecker), for the verifies of a server
	// without a Syncer. Nil means Store, if it is a KeyChecker; else a
	// verify reads the state, then stores with AdvanceKeyQueued. Give it
	// when Store wraps a store that is one (a client cache): it must be a
	// view of the same database.
	Checker KeyChecker
}

// KeyChecker is a store that can read a key's state, decide on it and
// store the next state in one call: CheckAndAdvance reads the state of
// publicName, calls decide with it and, if decide says so, stores the state
// it returns with the compare-and-set of val.Store.AdvanceKey. It returns
// the state decide saw and whether the compare-and-set changed the row, or
// an error wrapping val.ErrNotFound (without calling decide) when the key
// has no state. decide may be called more than once; the last call's
// answer is the one acted on. See val/sqlstore.Store.CheckAndAdvance.
type KeyChecker interface {
	CheckAndAdvance(ctx context.Context, publicName string, decide func(prev val.KeyState) (next val.KeyState, advance bool)) (prev val.KeyState, advanced bool, err error)
}

// Validate reports every problem of cfg at once.
func (cfg Config) Validate() error {
	var errs []error
	if cfg.Store == nil {
		errs = append(errs, errors.New("valserver: no store"))
	}
	if cfg.KSM == nil {
		errs = append(errs, errors.New("valserver: no KSM"))
	}
	if cfg.Levels != (val.Config{}) {
		for _, l := range []struct {
			name string
			v    int
		}{{"fast", cfg.Levels.FastLevel}, {"secure", cfg.Levels.SecureLevel}, {"default", cfg.Levels.DefaultLevel}} {
			if l.v < 1 || l.v > 100 {
				errs = append(errs, fmt.Errorf("valserver: %s sync level %d is not 1 to 100", l.name, l.v))
			}
		}
		if cfg.Levels.DefaultTimeout <= 0 {
			errs = append(errs, fmt.Errorf("valserver: default sync timeout %v is not positive", cfg.Levels.DefaultTimeout))
		}
	}
	if cfg.MaxSyncTimeout < 0 {
		errs = append(errs, fmt.Errorf("valserver: maximum sync timeout %v is negative", cfg.MaxSyncTimeout))
	}
	if len(cfg.RevokeIPs) > 0 {
		if _, err := netallow.Parse(cfg.RevokeIPs...); err != nil {
			errs = append(errs, fmt.Errorf("valserver: revoke allow-list: %w", err))
		}
	}
	if cfg.MaxInflight < 0 || cfg.MaxKSMInflight < 0 || cfg.InflightWait < 0 {
		errs = append(errs, fmt.Errorf("valserver: MaxInflight %d, MaxKSMInflight %d and InflightWait %v must not be negative",
			cfg.MaxInflight, cfg.MaxKSMInflight, cfg.InflightWait))
	}
	if cfg.SyncKey != nil && len(cfg.SyncKey) == 0 {
		errs = append(errs, errors.New("valserver: the sync key is empty"))
	}
	errs = append(errs, validPrefixes("sync", cfg.SyncAllow)...)
	errs = append(errs, validPrefixes("resync", cfg.ResyncAllow)...)
	return errors.Join(errs...)
}

// Server holds what the handlers share.
type Server struct {
	store      val.Store
	checker    KeyChecker // nil: KeyState, then AdvanceKeyQueued
	ksm        val.KSM
	syncer     Syncer
	log        *slog.Logger
	m          *metrics
	levels     val.Config
	maxTimeout time.Duration
	now        func() time.Time

	rate, clientRate       *ratelimit.Limiter // nil: no limit
	rateRetry, clientRetry []string           // their Retry-After headers
	verifySlots, ksmSlots  slots              // nil: no cap
	inflightWait           time.Duration
}

// validPrefixes reports the prefixes of a list that are not valid.
func validPrefixes(name string, ps []netip.Prefix) []error {
	var errs []error
	for _, p := range ps {
		if !p.IsValid() {
			errs = append(errs, fmt.Errorf("valserver: %s network %v is not valid", name, p))
		}
	}
	return errs
}

// NewMux returns the validation server's HTTP handler:
//
//	/wsapi/2.0/verify, /wsapi/N.M/verify, /wsapi/verify   verify (GET, HEAD, POST; also with ".php")
//	/wsapi/revoke                                         enable or disable a key (allow-listed IPs)
//	/wsapi/2.0/sync                                       a peer's sync request (allow-listed networks)
//	/wsapi/2.0/resync                                     queue stored key states for the peers (allow-listed networks)
//	/healthz                                              200 "OK\n", or 503 when the store does not answer
//	/metrics                                              Prometheus metrics
//
// It fails when cfg does not validate or the metrics cannot be registered
// (say, because the registry already has them).
func NewMux(cfg Config) (*http.ServeMux, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{
		store:      cfg.Store,
		checker:    cfg.Checker,
		ksm:        cfg.KSM,
		syncer:     cfg.Syncer,
		log:        cfg.Logger,
		levels:     cfg.Levels,
		maxTimeout: cfg.MaxSyncTimeout,
		now:        cfg.Now,

		rate:         cfg.RateLimit,
		clientRate:   cfg.ClientRateLimit,
		rateRetry:    retryAfter(cfg.RateLimit),
		clientRetry:  retryAfter(cfg.ClientRateLimit),
		verifySlots:  newSlots(cfg.MaxInflight),
		ksmSlots:     newSlots(cfg.MaxKSMInflight),
		inflightWait: cfg.InflightWait,
	}
	if s.checker == nil {
		s.checker, _ = cfg.Store.(KeyChecker)
	}
	if s.inflightWait == 0 {
		s.inflightWait = DefaultInflightWait
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.levels == (val.Config{}) {
		s.levels = val.DefaultConfig()
	}
	if s.maxTimeout == 0 {
		s.maxTimeout = DefaultMaxSyncTimeout
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	var err error
	if s.m, err = newMetrics(reg); err != nil {
		return nil, err
	}
	if g, ok := s.checker.(guesser); ok && s.syncer == nil {
		if err := registerGuesses(reg, g); err != nil {
			return nil, err
		}
	}
	revokeAllow, err := netallow.Parse(cfg.RevokeIPs...) // checked by Validate
	if err != nil {
		return nil, err
	}
	syncAllow, err := netallow.FromPrefixes(cfg.SyncAllow)
	if err != nil {
		return nil, err
	}
	resyncAllow := syncAllow
	if cfg.ResyncAllow != nil {
		if resyncAllow, err = netallow.FromPrefixes(cfg.ResyncAllow); err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	verify := &verifyHandler{s}
	for _, p := range []string{"/wsapi/verify", "/wsapi/{version}/verify"} {
		for _, suffix := range []string{"", ".php"} {
			mux.Handle("GET "+p+suffix, verify) // GET patterns match HEAD too
			mux.Handle("POST "+p+suffix, verify)
		}
	}
	revoke := revokeHandler{s, revokeAllow}
	for _, p := range []string{"/wsapi/revoke", "/wsapi/revoke.php"} {
		mux.Handle("GET "+p, revoke)
		mux.Handle("POST "+p, revoke)
	}
	sync := syncHandler{s: s, allow: syncAllow, key: cfg.SyncKey}
	resync := resyncHandler{s: s, allow: resyncAllow}
	for _, suffix := range []string{"", ".php"} {
		// YK-VAL read the sync parameters from the query string whatever
		// the method; resync took $_REQUEST.
		mux.Handle("GET /wsapi/2.0/sync"+suffix, sync)
		mux.Handle("POST /wsapi/2.0/sync"+suffix, sync)
		mux.Handle("GET /wsapi/2.0/resync"+suffix, resync)
		mux.Handle("POST /wsapi/2.0/resync"+suffix, resync)
	}
	mux.Handle("GET /healthz", healthHandler{s})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux, nil
}

type healthHandler struct{ s *Server }

func (h healthHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["Content-Type"] = contentType
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	if err := h.s.store.Ping(ctx); err != nil {
		h.s.log.Warn("valserver: health check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "ERROR Database error\n")
		return
	}
	io.WriteString(w, "OK\n")
}
