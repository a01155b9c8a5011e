package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/flagfile"
	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valsync"
)

// defaultDSN is ykvald's default database.
const defaultDSN = "sqlite:/var/lib/ykstack/ykval.db"

const usage = `Usage: ykval-queue [--config FILE] [--database DSN] [--db-user USER] [--db-passwd-file FILE]
                   [--sync-peer URL...] [--sync-ca FILE] [--sync-key-file FILE] [--listen ADDR]
                   [--queue-interval D] [--queue-old-limit D] [--queue-timeout D]
                   [--queue-parallel N] [--queue-max-backoff D] [--verbose]

Send the sync queue's rows to the peers of the pool until stopped (YK-VAL's
ykval-queue). Exits at once when there are no peers and the queue is empty.

`

type config struct {
	db              cli.DBFlags
	peers           []string
	keyFile, listen string
	ca              string
	configFile      string
	queue           valsync.WorkerConfig
	verbose, help   bool
}

func (c *config) register(fs *pflag.FlagSet) {
	c.db.Register(fs, "YKVAL", defaultDSN)
	fs.StringArrayVar(&c.peers, "sync-peer", nil, "sync `URL` of a peer (repeatable; env YKVAL_SYNC_PEERS)")
	fs.StringVar(&c.keyFile, "sync-key-file", "", "the pool's shared key, base64, in `FILE` (env YKVAL_SYNC_KEY_FILE)")
	fs.StringVar(&c.ca, "sync-ca", "", "trust the CAs in PEM `FILE` for https peers instead of the system's roots")
	fs.StringVar(&c.listen, "listen", "", "serve /metrics on `ADDR`")
	fs.StringVar(&c.configFile, "config", "", "read settings from `FILE` (ykvald's; env YKVAL_CONFIG)")
	fs.DurationVar(&c.queue.Interval, "queue-interval", valsync.DefaultInterval, "time between rounds")
	fs.DurationVar(&c.queue.OldLimit, "queue-old-limit", valsync.DefaultOldLimit, "age at which a row its verify did not settle is resent")
	fs.DurationVar(&c.queue.Timeout, "queue-timeout", valsync.DefaultQueueTimeout, "time a peer gets to answer")
	fs.IntVar(&c.queue.Parallel, "queue-parallel", valsync.DefaultParallel, "requests in flight per peer")
	fs.DurationVar(&c.queue.MaxBackoff, "queue-max-backoff", valsync.DefaultMaxBackoff, "longest wait before retrying a failing peer or database")
	fs.BoolVarP(&c.verbose, "verbose", "v", false, "log at Debug level")
	fs.BoolVarP(&c.help, "help", "h", false, "print this help")
}

func run(ctx context.Context, env cli.Env) error {
	return work(ctx, env, nil)
}

// work is run with a hook called with the metrics address once it listens.
func work(ctx context.Context, env cli.Env, ready func(addr string)) error {
	var c config
	fs := pflag.NewFlagSet("ykval-queue", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c.register(fs)
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if c.help {
		io.WriteString(env.Stdout, usage)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		return pflag.ErrHelp
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if !fs.Changed("config") {
		c.configFile = env.Lookup("YKVAL_CONFIG")
	}
	if c.configFile != "" {
		// ykvald's file: its other settings are not ours.
		if err := flagfile.Apply(fs, c.configFile, flagfile.Options{IgnoreUnknown: true, Reserved: []string{"config", "help"}}); err != nil {
			errs = append(errs, err)
		}
	}
	if !fs.Changed("sync-peer") {
		c.peers = strings.FieldsFunc(env.Lookup("YKVAL_SYNC_PEERS"), func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	}
	if !fs.Changed("sync-key-file") {
		c.keyFile = env.Lookup("YKVAL_SYNC_KEY_FILE")
	}
	for _, p := range c.peers {
		if err := valsync.CheckPeer(p); err != nil {
			errs = append(errs, fmt.Errorf("--sync-peer: %w", err))
		}
	}
	var key []byte
	if c.keyFile != "" {
		var err error
		if key, err = valsync.ReadKeyFile(c.keyFile); err != nil {
			errs = append(errs, fmt.Errorf("--sync-key-file: %w", err))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--queue-interval", c.queue.Interval}, {"--queue-old-limit", c.queue.OldLimit}, {"--queue-timeout", c.queue.Timeout}, {"--queue-max-backoff", c.queue.MaxBackoff}} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	if c.queue.Parallel < 1 {
		errs = append(errs, fmt.Errorf("--queue-parallel %d: must be at least 1", c.queue.Parallel))
	}
	if c.listen != "" {
		if _, _, err := net.SplitHostPort(c.listen); err != nil {
			errs = append(errs, fmt.Errorf("--listen %q: %w", c.listen, err))
		}
	}
	dbCfg, err := c.db.Config(env.Lookup)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return cli.Usagef("%v (see --help)", errors.Join(errs...))
	}

	logger := cli.NewLogger(env.Stderr, c.verbose)
	store, err := sqlstore.OpenExisting(ctx, dbCfg)
	if err != nil {
		return err
	}
	defer store.Close()
	n, err := store.QueueLength(ctx)
	if err != nil {
		return err
	}
	if len(c.peers) == 0 && n == 0 {
		logger.Info("ykval-queue: the sync pool is empty and so is the queue: a single node; nothing to do")
		return nil
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var client *http.Client // nil: valsync's own, with the system's roots
	if c.ca != "" {
		tc, _, err := tlsutil.NewClient(tlsutil.ClientConfig{CAFile: c.ca})
		if err != nil {
			return fmt.Errorf("--sync-ca: %w", err)
		}
		client = valsync.NewHTTPClient()
		client.Transport.(*http.Transport).TLSClientConfig = tc
	}
	pool, err := valsync.New(valsync.Config{Store: store, Peers: c.peers, Key: key, Client: client, Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	defer pool.Close()
	if c.listen != "" {
		ln, err := net.Listen("tcp", c.listen)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
		go srv.Serve(ln)
		defer srv.Close()
		logger.Info("ykval-queue metrics listening", "addr", ln.Addr().String())
		if ready != nil {
			ready(ln.Addr().String())
		}
	}
	logger.Info("ykval-queue running", "db", store.DB().Name, "peers", len(c.peers), "queued", n)
	return pool.RunQueue(ctx, c.queue)
}
