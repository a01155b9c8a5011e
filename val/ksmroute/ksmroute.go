// Package ksmroute is a val.KSM that sends each OTP to the KSMs serving its
// public ID.
//
// YK-VAL asked a PHP function in its configuration file, otp2ksmurls, which
// KSM URLs to try for an OTP. ksmroute replaces that function with data: a
// list of routes, each a public-ID prefix and the KSMs for it. The longest
// prefix that matches the OTP's public ID wins; the prefix "" is the default
// route and matches every public ID.
//
// The KSMs of a route are asked in parallel and the first to decrypt the OTP
// wins, as YK-VAL did with its list of URLs. When none does, the error wraps
// val.ErrKSMRejected only if every one of them rejected the OTP; if any was
// unavailable the answer is val.ErrKSMUnavailable, because the KSM that
// could not be asked may be the one holding the key.
//
// An OTP no route matches is rejected (val.ErrKSMRejected): no KSM here
// knows its key, which YK-VAL reported as BAD_OTP too.
package ksmroute

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
)

// Route sends the OTPs whose public ID starts with Prefix to KSMs.
type Route struct {
	Prefix string    // modhex public-ID prefix; "" matches every public ID
	KSMs   []val.KSM // asked in parallel; at least one
}

// Router is a val.KSM routing by public-ID prefix. It is safe for
// concurrent use if its KSMs are.
type Router struct {
	routes []Route // longest prefix first
}

var _ val.KSM = (*Router)(nil)

// ErrConfig reports an invalid list of routes.
var ErrConfig = errors.New("ksmroute: invalid routes")

// New returns a Router over routes. It reports every problem at once: a
// route without KSMs, a prefix that is not modhex or longer than a public ID
// can be, and a prefix given twice.
func New(routes []Route) (*Router, error) {
	var errs []error
	seen := make(map[string]bool)
	for _, r := range routes {
		switch {
		case len(r.KSMs) == 0:
			errs = append(errs, fmt.Errorf("%w: route %q has no KSM", ErrConfig, r.Prefix))
		case slices.Contains(r.KSMs, nil):
			errs = append(errs, fmt.Errorf("%w: route %q has a nil KSM", ErrConfig, r.Prefix))
		}
		if len(r.Prefix) > otp.MaxPublicIDLen || !modhex.Valid(r.Prefix) {
			errs = append(errs, fmt.Errorf("%w: prefix %q is not 0 to %d lower-case modhex characters", ErrConfig, r.Prefix, otp.MaxPublicIDLen))
		}
		if seen[r.Prefix] {
			errs = append(errs, fmt.Errorf("%w: prefix %q given twice", ErrConfig, r.Prefix))
		}
		seen[r.Prefix] = true
	}
	if len(routes) == 0 {
		errs = append(errs, fmt.Errorf("%w: no routes", ErrConfig))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	rs := slices.Clone(routes)
	slices.SortStableFunc(rs, func(a, b Route) int { return len(b.Prefix) - len(a.Prefix) })
	return &Router{routes: rs}, nil
}

// Route returns the KSMs serving the public ID, or nil when no route matches.
func (r *Router) Route(publicID string) []val.KSM {
	for _, rt := range r.routes {
		if strings.HasPrefix(publicID, rt.Prefix) {
			return rt.KSMs
		}
	}
	return nil
}

// Decrypt implements val.KSM: it asks the KSMs of the OTP's route.
func (r *Router) Decrypt(ctx context.Context, otpString string) (val.Decrypted, error) {
	publicID := ""
	if len(otpString) > otp.TokenLen {
		publicID = otpString[:len(otpString)-otp.TokenLen]
	}
	ksms := r.Route(publicID)
	if ksms == nil {
		return val.Decrypted{}, fmt.Errorf("%w: ksmroute: no route for public ID %q", val.ErrKSMRejected, publicID)
	}
	return FanOut(ctx, ksms, otpString)
}

// FanOut asks every KSM in ksms to decrypt the OTP, in parallel, and returns
// the first result. When none succeeds, the error wraps val.ErrKSMRejected
// if every KSM rejected the OTP, and val.ErrKSMUnavailable otherwise (a KSM
// error that wraps neither counts as unavailable: fail closed); it does not
// wrap the KSMs' own errors, so it never matches both. The KSMs
// still running when one succeeds have their context cancelled.
func FanOut(ctx context.Context, ksms []val.KSM, otpString string) (val.Decrypted, error) {
	if len(ksms) == 1 {
		d, err := ksms[0].Decrypt(ctx, otpString)
		switch {
		case err == nil:
			return d, nil
		case errors.Is(err, val.ErrKSMUnavailable) != errors.Is(err, val.ErrKSMRejected):
			return val.Decrypted{}, err // exactly one verdict: pass it on
		}
		return val.Decrypted{}, fmt.Errorf("%w: ksmroute: %v", val.ErrKSMUnavailable, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		d   val.Decrypted
		err error
	}
	answers := make(chan answer, len(ksms)) // buffered: late answers never block
	for _, k := range ksms {
		go func() {
			d, err := k.Decrypt(ctx, otpString)
			answers <- answer{d, err}
		}()
	}
	var errs []error
	rejected := true
	for range ksms {
		a := <-answers
		if a.err == nil {
			return a.d, nil
		}
		errs = append(errs, a.err)
		if !errors.Is(a.err, val.ErrKSMRejected) || errors.Is(a.err, val.ErrKSMUnavailable) {
			rejected = false
		}
	}
	all := errors.Join(errs...)
	if rejected {
		return val.Decrypted{}, fmt.Errorf("%w: ksmroute: every KSM rejected the OTP: %v", val.ErrKSMRejected, all)
	}
	return val.Decrypted{}, fmt.Errorf("%w: ksmroute: %v", val.ErrKSMUnavailable, all)
}
