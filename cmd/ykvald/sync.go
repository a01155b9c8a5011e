package main

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// syncFlags are the flags of the sync pool: peers, allow-lists, the pool
// key, the sync levels and the queue worker.
type syncFlags struct {
	peers, allow, resyncAllow []string
	keyFile, ca               string
	fast, secure, def         int
	defTimeout, maxTimeout    time.Duration
	worker                    bool
	queue                     valsync.WorkerConfig
}

func (f *syncFlags) register(fs *pflag.FlagSet) {
	d := val.DefaultConfig()
	fs.StringArrayVar(&f.peers, "sync-peer", nil, "sync `URL` of another server of the pool, e.g. https://val2.example.com/wsapi/2.0/sync (repeatable; env YKVAL_SYNC_PEERS)")
	fs.StringArrayVar(&f.allow, "sync-allow", nil, "allow `ADDR|CIDR` to call /wsapi/2.0/sync (repeatable, or comma-separated; env YKVAL_SYNC_ALLOW)")
	fs.StringArrayVar(&f.resyncAllow, "resync-allow", nil, "allow `ADDR|CIDR` to call /wsapi/2.0/resync (repeatable, or comma-separated; default: the --sync-allow list; env YKVAL_RESYNC_ALLOW)")
	fs.StringVar(&f.ca, "sync-ca", "", "trust the CAs in PEM `FILE` for https peers instead of the system's roots")
	fs.StringVar(&f.keyFile, "sync-key-file", "", "read the pool's shared key (base64) from `FILE`: sign sync requests, require signed ones (env YKVAL_SYNC_KEY_FILE)")
	fs.IntVar(&f.fast, "sync-fast-level", d.FastLevel, "percent of the pool that must confirm an OTP for sl=fast")
	fs.IntVar(&f.secure, "sync-secure-level", d.SecureLevel, "percent of the pool that must confirm an OTP for sl=secure")
	fs.IntVar(&f.def, "sync-default-level", d.DefaultLevel, "percent of the pool that must confirm an OTP when the request gives no sl")
	fs.DurationVar(&f.defTimeout, "sync-default-timeout", d.DefaultTimeout, "time to wait for the pool when the request gives no timeout")
	fs.DurationVar(&f.maxTimeout, "sync-max-timeout", valserver.DefaultMaxSyncTimeout, "longest time a request's timeout may make it wait for the pool")
	fs.BoolVar(&f.worker, "queue-worker", true, "run the queue worker (YK-VAL's ykval-queue) in this process when there are peers; false when ykval-queue runs")
	fs.DurationVar(&f.queue.Interval, "queue-interval", valsync.DefaultInterval, "time between the queue worker's rounds")
	fs.DurationVar(&f.queue.OldLimit, "queue-old-limit", valsync.DefaultOldLimit, "age at which the worker resends a row its verify did not settle")
	fs.DurationVar(&f.queue.Timeout, "queue-timeout", valsync.DefaultQueueTimeout, "time the worker gives a peer to answer")
	fs.IntVar(&f.queue.Parallel, "queue-parallel", valsync.DefaultParallel, "the worker's requests in flight per peer")
	fs.DurationVar(&f.queue.MaxBackoff, "queue-max-backoff", valsync.DefaultMaxBackoff, "longest wait before the worker retries a failing peer or database")
}

// fromEnv fills in what the flags (and the config file) did not set from
// the environment.
func (f *syncFlags) fromEnv(fs *pflag.FlagSet, getenv func(string) string) {
	for _, v := range []struct {
		flag, env string
		dst       *[]string
	}{
		{"sync-peer", "YKVAL_SYNC_PEERS", &f.peers},
		{"sync-allow", "YKVAL_SYNC_ALLOW", &f.allow},
		{"resync-allow", "YKVAL_RESYNC_ALLOW", &f.resyncAllow},
	} {
		if !fs.Changed(v.flag) {
			*v.dst = splitList(getenv(v.env))
		}
	}
	if !fs.Changed("sync-key-file") {
		f.keyFile = getenv("YKVAL_SYNC_KEY_FILE")
	}
}

// syncPlan is a checked sync configuration.
type syncPlan struct {
	peers       []string
	allow       []netip.Prefix
	resyncAllow []netip.Prefix // nil: the sync allow-list
	key         []byte
	ca          string // CA file for https peers, or ""
	levels      val.Config
	maxTimeout  time.Duration
	worker      bool
	queue       valsync.WorkerConfig
}

// plan checks the sync flags and returns every problem at once.
func (f *syncFlags) plan() (syncPlan, []error) {
	p := syncPlan{
		peers:      f.peers,
		levels:     val.Config{FastLevel: f.fast, SecureLevel: f.secure, DefaultLevel: f.def, DefaultTimeout: f.defTimeout},
		maxTimeout: f.maxTimeout,
		ca:         f.ca,
		worker:     f.worker,
		queue:      f.queue,
	}
	var errs []error
	seen := map[string]bool{}
	for _, peer := range f.peers {
		if err := valsync.CheckPeer(peer); err != nil {
			errs = append(errs, fmt.Errorf("--sync-peer: %w", err))
		}
		if seen[peer] {
			errs = append(errs, fmt.Errorf("--sync-peer %q: listed twice", peer))
		}
		seen[peer] = true
	}
	var err error
	if len(f.allow) > 0 {
		l, err := netallow.Parse(f.allow...)
		if err != nil {
			errs = append(errs, fmt.Errorf("--sync-allow: %w", err))
		}
		p.allow = l.Prefixes()
	}
	if len(f.resyncAllow) > 0 { // else nil: the sync allow-list
		l, err := netallow.Parse(f.resyncAllow...)
		if err != nil {
			errs = append(errs, fmt.Errorf("--resync-allow: %w", err))
		}
		p.resyncAllow = l.Prefixes()
	}
	if f.keyFile != "" {
		if p.key, err = valsync.ReadKeyFile(f.keyFile); err != nil {
			errs = append(errs, fmt.Errorf("--sync-key-file: %w", err))
		}
	}
	for _, l := range []struct {
		name string
		v    int
	}{{"--sync-fast-level", f.fast}, {"--sync-secure-level", f.secure}, {"--sync-default-level", f.def}} {
		if l.v < 1 || l.v > 100 {
			errs = append(errs, fmt.Errorf("%s %d: must be 1 to 100", l.name, l.v))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--sync-default-timeout", f.defTimeout}, {"--sync-max-timeout", f.maxTimeout},
		{"--queue-interval", f.queue.Interval}, {"--queue-old-limit", f.queue.OldLimit},
		{"--queue-timeout", f.queue.Timeout}, {"--queue-max-backoff", f.queue.MaxBackoff},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	if f.ca != "" && len(f.peers) == 0 {
		errs = append(errs, fmt.Errorf("--sync-ca goes with --sync-peer"))
	}
	if f.queue.Parallel < 1 {
		errs = append(errs, fmt.Errorf("--queue-parallel %d: must be at least 1", f.queue.Parallel))
	}
	return p, errs
}

// String describes the pool for the startup log line.
func (p syncPlan) String() string {
	if len(p.peers) == 0 {
		return "single node"
	}
	s := fmt.Sprintf("%d peers", len(p.peers))
	if p.key != nil {
		s += ", pool key"
	}
	if p.worker {
		s += ", queue worker"
	}
	return s
}

// httpClient returns the client for the peers: nil (valsync's own, with
// the system's roots) without --sync-ca.
func (p syncPlan) httpClient() (*http.Client, error) {
	if p.ca == "" {
		return nil, nil
	}
	tc, _, err := tlsutil.NewClient(tlsutil.ClientConfig{CAFile: p.ca})
	if err != nil {
		return nil, fmt.Errorf("--sync-ca: %w", err)
	}
	c := valsync.NewHTTPClient()
	c.Transport.(*http.Transport).TLSClientConfig = tc
	return c, nil
}
