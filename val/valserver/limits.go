package valserver

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
)

// DefaultInflightWait is Config.InflightWait's default.
const DefaultInflightWait = time.Second

// Reasons of ykval_refused_total.
const (
	refusedRateLimited       = "rate_limited"        // the source went past Config.RateLimit
	refusedClientRateLimited = "client_rate_limited" // the client went past Config.ClientRateLimit
	refusedBusy              = "busy"                // no slot under Config.MaxInflight in time
	refusedKSMBusy           = "ksm_busy"            // no slot under Config.MaxKSMInflight in time
	refusedNotAllowed        = "not_allowed"         // not on the sync, resync or revoke allow-list
)

var refusedReasons = []string{refusedRateLimited, refusedClientRateLimited, refusedBusy, refusedKSMBusy, refusedNotAllowed}

// slots caps how many callers hold a slot at once; a nil slots has no cap.
type slots chan struct{}

func newSlots(n int) slots {
	if n <= 0 {
		return nil
	}
	return make(slots, n)
}

// acquire takes a slot, waiting up to wait for one, or until ctx is done;
// it reports whether it got one. Every successful acquire needs a release.
func (s slots) acquire(ctx context.Context, wait time.Duration) bool {
	if s == nil {
		return true
	}
	select {
	case s <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func (s slots) release() {
	if s != nil {
		<-s
	}
}

// sourceKey is the rate-limit key of a request's source: its address (an
// IPv6 address by its /64, see ratelimit.AddrKey), or the raw RemoteAddr
// when that is not an address.
func sourceKey(r *http.Request) string {
	if a, ok := netallow.HostAddr(r.RemoteAddr); ok {
		return ratelimit.AddrKey(a)
	}
	return r.RemoteAddr
}

// retryAfter is the Retry-After header of a refusal by l.
func retryAfter(l *ratelimit.Limiter) []string {
	if l == nil {
		return nil
	}
	return []string{strconv.Itoa(int(l.RetryAfter() / time.Second))}
}
