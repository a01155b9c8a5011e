package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/ratelimit"
)

// limitFlags are the flags that refuse verify requests: the rate limits
// per source and per client, and the caps on verifies and KSM calls at
// once.
type limitFlags struct {
	rate, clientRate            string
	burst, clientBurst          int
	maxInflight, ksmMaxInflight int

	// What validate made of them.
	limiter, clientLimiter *ratelimit.Limiter // nil: no limit
}

func (f *limitFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.rate, "rate-limit", "0", "allow each source address (IPv6: each /64) at most `RATE` verify requests, as N, N/s, N/m or N/h; past it OPERATION_NOT_ALLOWED (0: no limit)")
	fs.IntVar(&f.burst, "rate-burst", 0, "let a source exceed --rate-limit by a burst of `N` requests (0: the rate per second, rounded up)")
	fs.StringVar(&f.clientRate, "client-rate-limit", "0", "allow each API client id at most `RATE` verify requests, as N, N/s, N/m or N/h; past it OPERATION_NOT_ALLOWED (0: no limit)")
	fs.IntVar(&f.clientBurst, "client-rate-burst", 0, "let a client exceed --client-rate-limit by a burst of `N` requests (0: the rate per second, rounded up)")
	fs.IntVar(&f.maxInflight, "max-inflight", 0, "answer at most `N` verify requests at once; others wait up to a second, then get HTTP 503 BACKEND_ERROR (0: no cap)")
	fs.IntVar(&f.ksmMaxInflight, "ksm-max-inflight", 0, "ask the KSMs at most `N` decryptions at once; others wait up to a second, then get HTTP 503 BACKEND_ERROR (0: no cap)")
}

// validate parses the flags and returns every problem.
func (f *limitFlags) validate() []error {
	var errs []error
	var err error
	if f.limiter, err = parseLimit("--rate-limit", "--rate-burst", f.rate, f.burst); err != nil {
		errs = append(errs, err)
	}
	if f.clientLimiter, err = parseLimit("--client-rate-limit", "--client-rate-burst", f.clientRate, f.clientBurst); err != nil {
		errs = append(errs, err)
	}
	if f.maxInflight < 0 {
		errs = append(errs, fmt.Errorf("--max-inflight %d: must not be negative", f.maxInflight))
	}
	if f.ksmMaxInflight < 0 {
		errs = append(errs, fmt.Errorf("--ksm-max-inflight %d: must not be negative", f.ksmMaxInflight))
	}
	return errs
}

// parseLimit makes the limiter of a rate flag and its burst flag: nil for
// a rate of 0.
func parseLimit(rateFlag, burstFlag, rate string, burst int) (*ratelimit.Limiter, error) {
	r, err := ratelimit.ParseRate(rate)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%s: %w", rateFlag, err)
	case burst < 0:
		return nil, fmt.Errorf("%s %d: must not be negative", burstFlag, burst)
	case r == 0 && burst > 0:
		return nil, fmt.Errorf("%s goes with %s", burstFlag, rateFlag)
	case r == 0:
		return nil, nil
	}
	l, err := ratelimit.New(ratelimit.Config{Rate: r, Burst: burst})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rateFlag, err)
	}
	return l, nil
}
