package main

import (
	"fmt"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/ratelimit"
)

// limitFlags are the flags that refuse decrypt requests: the allow-list,
// the rate limit per source and the in-flight cap.
type limitFlags struct {
	allow       []string
	rate        string
	burst       int
	maxInflight int

	// What validate made of them.
	allowList *netallow.List     // nil: anyone
	limiter   *ratelimit.Limiter // nil: no limit
}

func (f *limitFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.allow, "allow", nil, "allow decrypt requests only from `ADDR|CIDR` (repeatable, or comma-separated; default: anyone)")
	fs.StringVar(&f.rate, "rate-limit", "0", "allow each source address (IPv6: each /64) at most `RATE` decrypt requests, as N, N/s, N/m or N/h (0: no limit)")
	fs.IntVar(&f.burst, "rate-burst", 0, "let a source exceed --rate-limit by a burst of `N` requests (0: the rate per second, rounded up)")
	fs.IntVar(&f.maxInflight, "max-inflight", 0, "answer at most `N` decrypt requests at once; others wait up to a second, then get 503 (0: no cap)")
}

// validate parses the flags and returns every problem.
func (f *limitFlags) validate() []error {
	var errs []error
	if len(f.allow) > 0 {
		l, err := netallow.Parse(f.allow...)
		if err != nil {
			errs = append(errs, fmt.Errorf("--allow: %w", err))
		}
		f.allowList = l
	}
	r, err := ratelimit.ParseRate(f.rate)
	if err != nil {
		errs = append(errs, fmt.Errorf("--rate-limit: %w", err))
	}
	if f.burst < 0 {
		errs = append(errs, fmt.Errorf("--rate-burst %d: must not be negative", f.burst))
	}
	if r > 0 && f.burst >= 0 {
		if f.limiter, err = ratelimit.New(ratelimit.Config{Rate: r, Burst: f.burst}); err != nil {
			errs = append(errs, fmt.Errorf("--rate-limit: %w", err))
		}
	} else if r == 0 && err == nil && f.burst > 0 {
		errs = append(errs, fmt.Errorf("--rate-burst goes with --rate-limit"))
	}
	if f.maxInflight < 0 {
		errs = append(errs, fmt.Errorf("--max-inflight %d: must not be negative", f.maxInflight))
	}
	return errs
}
