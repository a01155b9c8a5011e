package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// loadConfig bounds a load run: it stops when Warmup+Duration have passed
// or MaxRequests requests have been sent, whichever comes first, or when
// the context ends.
type loadConfig struct {
	Concurrency int
	Warmup      time.Duration // requests started before this are not measured
	Duration    time.Duration // measured time
	MaxRequests int64         // requests in all, warmup included
}

func (c loadConfig) validate() error {
	var errs []error
	if c.Concurrency < 1 || c.Concurrency > maxConcurrency {
		errs = append(errs, fmt.Errorf("--concurrency must be 1 to %d", maxConcurrency))
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		errs = append(errs, fmt.Errorf("--duration must be above 0 and at most %v", maxDuration))
	}
	if c.Warmup < 0 || c.Warmup > maxDuration {
		errs = append(errs, fmt.Errorf("--warmup must be 0 to %v", maxDuration))
	}
	if c.MaxRequests < 1 || c.MaxRequests > maxRequestsLimit {
		errs = append(errs, fmt.Errorf("--max-requests must be 1 to %d", maxRequestsLimit))
	}
	return errors.Join(errs...)
}

// Hard limits that keep a run bounded whatever the flags say.
const (
	maxConcurrency   = 1024
	maxDuration      = 10 * time.Minute
	maxRequestsLimit = 100_000_000
)

// A requestFunc sends one request and checks its answer. It returns an
// error for a failed request and for an answer that is not the expected
// one: a wrong answer is never a success.
type requestFunc func(ctx context.Context) error

// loadStats is what a run measured.
type loadStats struct {
	hist      histogram // latency of every measured request, errors included
	errors    uint64    // measured requests that failed or got a wrong answer
	warmupN   uint64    // requests sent during warmup
	warmupErr uint64    // of which failed
	elapsed   time.Duration
	cpu       time.Duration // this process's CPU time (user+system) while measuring
	samples   []string      // a few distinct error messages, with counts
}

func (s *loadStats) rps() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.hist.n) / s.elapsed.Seconds()
}

// maxErrorSamples is how many distinct error messages a run keeps.
const maxErrorSamples = 5

type workerStats struct {
	hist      histogram
	errors    uint64
	warmupN   uint64
	warmupErr uint64
	msgs      map[string]uint64
}

func (w *workerStats) noteError(err error) {
	if w.msgs == nil {
		w.msgs = make(map[string]uint64)
	}
	msg := err.Error()
	if _, ok := w.msgs[msg]; ok || len(w.msgs) < maxErrorSamples {
		w.msgs[msg]++
	}
}

// runLoad runs one requestFunc per worker, each in its own goroutine and
// one request at a time, and measures every request that starts after the
// warmup.
func runLoad(ctx context.Context, cfg loadConfig, workers []requestFunc) (*loadStats, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if len(workers) != cfg.Concurrency {
		return nil, fmt.Errorf("have %d workers for concurrency %d", len(workers), cfg.Concurrency)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	var sent atomic.Int64

	// Sample this process's CPU time when measuring starts.
	cpuAtStart := make(chan time.Duration, 1)
	go func() {
		t := time.NewTimer(time.Until(measureFrom))
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		cpuAtStart <- cpuTime()
	}()

	stats := make([]workerStats, len(workers))
	var wg sync.WaitGroup
	for i, do := range workers {
		wg.Add(1)
		go func(ws *workerStats) {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(end) || sent.Add(1) > cfg.MaxRequests {
					return
				}
				err := do(ctx)
				d := time.Since(t0)
				if t0.Before(measureFrom) {
					ws.warmupN++
					if err != nil {
						ws.warmupErr++
						ws.noteError(err)
					}
					continue
				}
				ws.hist.record(d)
				if err != nil {
					ws.errors++
					ws.noteError(err)
				}
			}
		}(&stats[i])
	}
	wg.Wait()
	stop := time.Now()
	cancel()
	cpu0 := <-cpuAtStart

	res := &loadStats{cpu: cpuTime() - cpu0}
	if stop.After(measureFrom) {
		res.elapsed = stop.Sub(measureFrom)
	}
	msgs := map[string]uint64{}
	for i := range stats {
		ws := &stats[i]
		res.hist.merge(&ws.hist)
		res.errors += ws.errors
		res.warmupN += ws.warmupN
		res.warmupErr += ws.warmupErr
		for m, n := range ws.msgs {
			msgs[m] += n
		}
	}
	for m, n := range msgs {
		res.samples = append(res.samples, fmt.Sprintf("%d× %s", n, m))
	}
	sort.Strings(res.samples)
	if len(res.samples) > maxErrorSamples {
		res.samples = res.samples[:maxErrorSamples]
	}
	return res, nil
}

// cpuTime returns the user plus system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
