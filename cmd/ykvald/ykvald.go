package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/flagfile"
	"github.com/ykstack/ykstack/internal/logging"
	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/clientcache"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// Defaults of the flags.
const (
	defaultListen          = "127.0.0.1:8080"
	defaultDSN             = "sqlite:/var/lib/ykstack/ykval.db"
	defaultKSMTimeout      = 10 * time.Second
	defaultReadTimeout     = 10 * time.Second
	defaultWriteTimeout    = 30 * time.Second
	defaultIdleTimeout     = 2 * time.Minute
	defaultShutdownTimeout = 10 * time.Second
	// defaultClientCacheTTL: API clients change rarely (new ones are not
	// cached as unknown, so they work at once).
	defaultClientCacheTTL = 5 * time.Second
	// defaultKeyCacheTTL: keys rarely change in a KSM, and revoking a
	// YubiKey at /wsapi/revoke takes effect at once whatever is cached.
	defaultKeyCacheTTL = 5 * time.Second
	readHeaderTimeout  = 5 * time.Second
	maxHeaderBytes     = 16 << 10
)

const usage = `Usage: ykvald [--config FILE] [--listen ADDR] [--database DSN] [--db-user USER] [--db-passwd-file FILE] [--max-conns N]
              [--kek-file FILE [--old-kek-file FILE]]
              [--tls-cert FILE --tls-key FILE]
              (--ksm-url URL... [--ksm-ca FILE] [--ksm-cert FILE --ksm-key FILE] |
               --ksm-db DSN [--ksm-db-user USER] [--ksm-db-passwd-file FILE] [--ksm-kek-file FILE [--ksm-old-kek-file FILE]] [--ksm-key-cache-ttl D]) [--client-cache-ttl D]
              [--ksm-route PREFIX=URL[,URL...]...] [--ksm-timeout D] [--revoke-ip ADDR|CIDR...]
              [--sync-peer URL...] [--sync-ca FILE] [--sync-allow ADDR|CIDR...] [--resync-allow ADDR|CIDR...] [--sync-key-file FILE]
              [--sync-{fast,secure,default}-level N] [--sync-default-timeout D] [--sync-max-timeout D]
              [--queue-worker=false] [--queue-interval D] [--queue-old-limit D] [--queue-timeout D]
              [--queue-parallel N] [--queue-max-backoff D]
              [--read-timeout D] [--write-timeout D] [--idle-timeout D] [--shutdown-timeout D]
              [--log-level L] [--log-format F] [--log-target T] [--syslog-addr NETWORK:ADDR] [--verbose]

Serve the YK-VAL verify API (/wsapi/2.0/verify, /wsapi/verify), the sync pool's
/wsapi/2.0/sync and /wsapi/2.0/resync, /wsapi/revoke, /healthz and /metrics.
--config FILE reads "flag-name = value" lines; the command line wins over the
file, the file over the environment.

`

// config is what the command line and the environment say.
type config struct {
	listen                                 string
	db                                     cli.DBFlags
	kek                                    cli.ValKEKFlags
	maxConns                               int
	clientCacheTTL                         time.Duration
	tls                                    tlsFlags
	ksm                                    ksmFlags
	limits                                 limitFlags
	revokeIPs                              []string
	sync                                   syncFlags
	configFile                             string
	readTimeout, writeTimeout, idleTimeout time.Duration
	shutdownTimeout                        time.Duration
	log                                    logging.Flags
	help                                   bool
}

func (c *config) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.listen, "listen", defaultListen, "listen on `ADDR` (host:port; env YKVAL_LISTEN)")
	c.db.Register(fs, "YKVAL", defaultDSN)
	c.kek.Register(fs, "YKVAL")
	fs.IntVar(&c.maxConns, "max-conns", 0, "at most `N` database connections (0: 8 for SQLite, 64 for MySQL)")
	fs.DurationVar(&c.clientCacheTTL, "client-cache-ttl", defaultClientCacheTTL, "keep API clients read from the database in memory for `D` (a client deactivated or re-keyed in the database is served for up to D; 0 disables)")
	c.tls.register(fs)
	c.ksm.register(fs)
	c.limits.register(fs)
	fs.StringArrayVar(&c.revokeIPs, "revoke-ip", nil, "allow `ADDR|CIDR` to call /wsapi/revoke (repeatable, or comma-separated; env YKVAL_REVOKE_IPS)")
	c.sync.register(fs)
	fs.StringVar(&c.configFile, "config", "", "read settings from `FILE` (lines \"flag-name = value\"; env YKVAL_CONFIG)")
	fs.DurationVar(&c.readTimeout, "read-timeout", defaultReadTimeout, "time to read a whole request")
	fs.DurationVar(&c.writeTimeout, "write-timeout", defaultWriteTimeout, "time to answer a request, from the end of its headers")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", defaultIdleTimeout, "time an idle keep-alive connection is kept")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "time requests in flight get to finish on SIGINT/SIGTERM")
	c.log.Register(fs)
	fs.BoolVarP(&c.help, "help", "h", false, "print this help")
}

// fromEnv fills in what the flags did not set from the environment.
func (c *config) fromEnv(fs *pflag.FlagSet, getenv func(string) string) {
	if !fs.Changed("listen") {
		if v := getenv("YKVAL_LISTEN"); v != "" {
			c.listen = v
		}
	}
	if !fs.Changed("revoke-ip") {
		c.revokeIPs = splitList(getenv("YKVAL_REVOKE_IPS"))
	}
	c.ksm.fromEnv(fs, getenv)
	c.sync.fromEnv(fs, getenv)
}

// splitList splits a list separated by spaces or commas.
func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// validate reports every problem of c's own values at once (the KSM flags
// and DSNs are checked by their owners).
func (c *config) validate() []error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.listen, err))
	}
	if c.maxConns < 0 {
		errs = append(errs, fmt.Errorf("--max-conns %d: must not be negative", c.maxConns))
	}
	if c.clientCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("--client-cache-ttl %v: must not be negative", c.clientCacheTTL))
	}
	if len(c.revokeIPs) > 0 {
		if _, err := netallow.Parse(c.revokeIPs...); err != nil {
			errs = append(errs, fmt.Errorf("--revoke-ip: %w", err))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--read-timeout", c.readTimeout}, {"--write-timeout", c.writeTimeout},
		{"--idle-timeout", c.idleTimeout}, {"--shutdown-timeout", c.shutdownTimeout},
		{"--ksm-timeout", c.ksm.timeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	errs = append(errs, c.tls.validate()...)
	errs = append(errs, c.limits.validate()...)
	if _, err := c.log.Config("ykvald"); err != nil {
		errs = append(errs, err)
	}
	return errs
}

func run(ctx context.Context, env cli.Env) error {
	return serve(ctx, env, nil)
}

// serve is run with a hook called with the bound address once the server
// listens, so tests can listen on port 0.
func serve(ctx context.Context, env cli.Env, ready func(addr string)) error {
	hup := tlsutil.CatchReload(syscall.SIGHUP) // from the start: a reload during start-up must not end the server
	defer hup.Stop()
	var c config
	fs := pflag.NewFlagSet("ykvald", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	c.register(fs)
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if c.help {
		fs.SetOutput(env.Stdout)
		io.WriteString(env.Stdout, usage)
		fs.PrintDefaults()
		return pflag.ErrHelp
	}
	var errs []error
	if !fs.Changed("config") {
		c.configFile = env.Lookup("YKVAL_CONFIG")
	}
	if c.configFile != "" {
		if err := flagfile.Apply(fs, c.configFile, flagfile.Options{Reserved: []string{"config", "help"}}); err != nil {
			errs = append(errs, err)
		}
	}
	c.fromEnv(fs, env.Lookup)

	// Every problem of the configuration, at once.
	errs = append(errs, c.validate()...)
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	dbCfg, err := c.db.Config(env.Lookup)
	if err != nil {
		errs = append(errs, err)
	}
	dbCfg.MaxOpenConns = c.maxConns
	plan, ksmErrs := c.ksm.plan(env.Lookup)
	errs = append(errs, ksmErrs...)
	pool, syncErrs := c.sync.plan()
	errs = append(errs, syncErrs...)
	if len(errs) > 0 {
		return cli.Usagef("%v (see --help)", errors.Join(errs...))
	}

	logCfg, _ := c.log.Config("ykvald") // checked by validate
	logger, closeLog, err := logging.New(logCfg, env.Stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	if plan.embedded {
		if plan.sealer, err = c.ksm.kek.Sealer(env.Lookup); err != nil {
			return err
		}
		plan.kekSource = c.ksm.kek.Source()
	}
	tlsConfig, keyPair, err := c.tls.serverConfig(logger)
	if err != nil {
		return err
	}
	sealer, err := c.kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	store, err := sqlstore.OpenOptions(ctx, dbCfg, sqlstore.Options{Sealer: sealer})
	if err != nil {
		return err
	}
	defer store.Close() // for the early returns; closing twice is harmless
	if err := checkSecrets(ctx, logger, store, sealer, c.kek.Source()); err != nil {
		return err
	}
	ksm, err := plan.open(ctx, logger)
	if err != nil {
		ksm.Close() // what open opened before the error
		return err
	}
	defer ksm.Close()

	var cached val.Store = store
	if c.clientCacheTTL > 0 {
		if cached, err = clientcache.New(store, clientcache.Config{TTL: c.clientCacheTTL}); err != nil {
			return err
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	cfg := valserver.Config{
		Store:          cached,
		Checker:        store,
		KSM:            ksm.KSM,
		Logger:         logger,
		Registry:       reg,
		RevokeIPs:      c.revokeIPs,
		Levels:         pool.levels,
		MaxSyncTimeout: pool.maxTimeout,
		SyncAllow:      pool.allow,
		ResyncAllow:    pool.resyncAllow,
		SyncKey:        pool.key,

		RateLimit:       c.limits.limiter,
		ClientRateLimit: c.limits.clientLimiter,
		MaxInflight:     c.limits.maxInflight,
		MaxKSMInflight:  c.limits.ksmMaxInflight,
	}
	var syncer *valsync.Pool
	if len(pool.peers) > 0 {
		client, err := pool.httpClient()
		if err != nil {
			return err
		}
		syncer, err = valsync.New(valsync.Config{Store: store, Peers: pool.peers, Key: pool.key, Client: client, Logger: logger, Registerer: reg})
		if err != nil {
			return err
		}
		cfg.Syncer = syncer
	}
	mux, err := valserver.NewMux(cfg)
	if err != nil {
		return err
	}
	handshakeErrors, err := newHandshakeCounter(reg)
	if err != nil {
		return err
	}

	// SIGHUP rereads the TLS certificate and key, and the KSM client
	// certificate (and is otherwise logged and ignored rather than ending
	// the server).
	var reloads []func()
	if keyPair != nil {
		reloads = append(reloads, func() { keyPair.Reload() }) // logs its own result
	}
	if plan.tls.CertFile != "" {
		reloads = append(reloads, func() { ksm.ReloadTLS(logger) })
	}
	hup.Run(ctx, logger, reloads...)

	ln, err := net.Listen("tcp", c.listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: min(readHeaderTimeout, c.readTimeout),
		ReadTimeout:       c.readTimeout,
		WriteTimeout:      c.writeTimeout,
		IdleTimeout:       c.idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          tlsutil.ErrorLog(logger, handshakeErrors.Inc),
		TLSConfig:         tlsConfig,
	}
	addr := ln.Addr().String()
	logger.Info("ykvald listening", "addr", addr, "db", store.DB().Name, "dialect", string(store.DB().Dialect), "tls", c.tls.enabled(),
		"ksm", plan.String(), "sync", pool.String())
	if ready != nil {
		ready(addr)
	}

	// The queue worker runs until the server stops.
	wctx, stopWorker := context.WithCancel(context.WithoutCancel(ctx))
	workerDone := make(chan struct{})
	if syncer != nil && pool.worker {
		go func() {
			defer close(workerDone)
			syncer.RunQueue(wctx, pool.queue) // returns only when stopped; the config was checked
		}()
	} else {
		close(workerDone)
	}
	stop := func() {
		stopWorker()
		<-workerDone
		if syncer != nil {
			syncer.Close() // late sync answers settle their queue rows
		}
	}

	served := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-served:
		stop()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("ykvald stopping")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		stop()
		return fmt.Errorf("shutdown: %w", err)
	}
	stop()
	if err := store.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	logger.Info("ykvald stopped")
	return nil
}

// checkSecrets refuses to serve a database holding sealed API secrets
// without a KEK (sqlstore.OpenOptions already refused a KEK that sealed
// none of them) and logs how the secrets are kept.
func checkSecrets(ctx context.Context, logger *slog.Logger, store *sqlstore.Store, sealer *valseal.Sealer, source string) error {
	st, err := store.SecretStatus(ctx)
	if err != nil {
		return err
	}
	if sealer == nil {
		if n := st.SealedTotal() + st.Malformed; n > 0 {
			ids := slices.Sorted(maps.Keys(st.Sealed))
			return fmt.Errorf("the database holds %d sealed API secrets (KEK key IDs %s) and no KEK is configured: "+
				"give --kek-file (or $YKVAL_KEK_FILE, $YKVAL_KEK, or the systemd credential ykval-kek)", n, strings.Join(ids, ", "))
		}
		return nil
	}
	logger.Info("ykvald: API secrets sealed at rest", "kek", sealer.KeyID(), "kek_source", source, "secrets", st.Mode(),
		"sealed", st.SealedTotal(), "plaintext", st.Plaintext)
	if st.Plaintext > 0 {
		logger.Warn("ykvald: the database still holds plaintext API secrets; they are read until ykvald restarts after ykval-seal seal has sealed them",
			"plaintext", st.Plaintext)
	}
	if st.Malformed > 0 {
		logger.Warn("ykvald: the database holds malformed sealed secrets; their clients get BACKEND_ERROR", "malformed", st.Malformed)
	}
	return nil
}
