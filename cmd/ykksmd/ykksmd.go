package main

import (
	"cmp"
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
	"github.com/ykstack/ykstack/internal/logging"
	"github.com/ykstack/ykstack/internal/tlsutil"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keycache"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// Defaults of the flags.
const (
	defaultListen          = "127.0.0.1:8002"
	defaultDSN             = "sqlite:/var/lib/ykstack/ykksm.db"
	defaultReadTimeout     = 10 * time.Second
	defaultWriteTimeout    = 10 * time.Second
	defaultIdleTimeout     = 2 * time.Minute
	defaultShutdownTimeout = 10 * time.Second
	// defaultKeyCacheTTL: keys are rarely changed in a KSM; revoking a YubiKey
	// is done at the validation server, which takes effect at once.
	defaultKeyCacheTTL = 5 * time.Second
	readHeaderTimeout  = 5 * time.Second
	maxHeaderBytes     = 16 << 10
)

const usage = `Usage: ykksmd [--listen ADDR] [--database DSN] [--db-user USER] [--db-passwd-file FILE]
              [--kek-file FILE [--old-kek-file FILE] [--allow-plaintext]]
              [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]
              [--allow ADDR|CIDR]... [--rate-limit RATE [--rate-burst N]] [--max-inflight N]
              [--key-cache-ttl D] [--max-conns N] [--read-timeout D] [--write-timeout D] [--idle-timeout D]
              [--shutdown-timeout D] [--log-level L] [--log-format F] [--log-target T] [--verbose]

Serve the YK-KSM decrypt API (/wsapi/decrypt?otp=OTP), /healthz and /metrics.

`

// config is what the command line and the environment say.
type config struct {
	listen                                 string
	db                                     cli.DBFlags
	kek                                    cli.KEKFlags
	allowPlaintext                         bool
	keyCacheTTL                            time.Duration
	maxConns                               int
	readTimeout, writeTimeout, idleTimeout time.Duration
	shutdownTimeout                        time.Duration
	tls                                    tlsFlags
	limits                                 limitFlags
	log                                    logging.Flags
	help                                   bool
}

func (c *config) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.listen, "listen", defaultListen, "listen on `ADDR` (host:port; env YKKSM_LISTEN)")
	c.db.Register(fs, "YKKSM", defaultDSN)
	c.kek.Register(fs, "YKKSM")
	fs.BoolVar(&c.allowPlaintext, "allow-plaintext", false, "with a KEK, also read plaintext keys in a database that was fully sealed at startup (while ykksm-seal unseal runs)")
	fs.DurationVar(&c.keyCacheTTL, "key-cache-ttl", defaultKeyCacheTTL, "keep keys looked up in memory for `D`, sparing the database (a key deactivated in the database stops decrypting within D; 0 disables)")
	fs.IntVar(&c.maxConns, "max-conns", 0, "at most `N` database connections (0: 8 for SQLite, 64 for MySQL)")
	fs.DurationVar(&c.readTimeout, "read-timeout", defaultReadTimeout, "time to read a whole request")
	fs.DurationVar(&c.writeTimeout, "write-timeout", defaultWriteTimeout, "time to answer a request, from the end of its headers")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", defaultIdleTimeout, "time an idle keep-alive connection is kept")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "time requests in flight get to finish on SIGINT/SIGTERM")
	c.tls.register(fs)
	c.limits.register(fs)
	c.log.Register(fs)
	fs.BoolVarP(&c.help, "help", "h", false, "print this help")
}

// validate reports every problem of c at once.
func (c *config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: %w", c.listen, err))
	}
	if c.maxConns < 0 {
		errs = append(errs, fmt.Errorf("--max-conns %d: must not be negative", c.maxConns))
	}
	if c.keyCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("--key-cache-ttl %v: must not be negative", c.keyCacheTTL))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"--read-timeout", c.readTimeout}, {"--write-timeout", c.writeTimeout},
		{"--idle-timeout", c.idleTimeout}, {"--shutdown-timeout", c.shutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s %v: must be positive", d.name, d.v))
		}
	}
	errs = append(errs, c.tls.validate()...)
	errs = append(errs, c.limits.validate()...)
	if _, err := c.log.Config("ykksmd"); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return cli.Usagef("%v", err)
	}
	return nil
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
	fs := pflag.NewFlagSet("ykksmd", pflag.ContinueOnError)
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
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected argument %q (see --help)", fs.Arg(0))
	}
	if !fs.Changed("listen") {
		if v := env.Lookup("YKKSM_LISTEN"); v != "" {
			c.listen = v
		}
	}
	if err := c.validate(); err != nil {
		return err
	}
	dbCfg, err := c.db.Config(env.Lookup)
	if err != nil {
		return err
	}
	dbCfg.MaxOpenConns = c.maxConns
	if dbCfg.CacheKiB == 0 {
		dbCfg.CacheKiB = sqlstore.ServerCacheKiB
	}
	sealer, err := c.kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	if c.allowPlaintext && sealer == nil {
		return cli.Usagef("--allow-plaintext goes with a KEK (--kek-file)")
	}
	logCfg, _ := c.log.Config("ykksmd") // checked by validate
	logger, closeLog, err := logging.New(logCfg, env.Stderr)
	if err != nil {
		return err
	}
	defer closeLog()
	tlsConfig, keyPair, err := c.tls.serverConfig(logger)
	if err != nil {
		return err
	}

	opts := sqlstore.Options{Sealer: sealer}
	if c.allowPlaintext {
		opts.Plaintext = sqlstore.PlaintextAllow
	}
	store, err := sqlstore.OpenOptions(ctx, dbCfg, opts)
	if err != nil {
		return err
	}
	defer store.Close() // for the early returns; closing twice is harmless
	if err := checkKeys(ctx, logger, store, sealer, c.kek.Source()); err != nil {
		return err
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var keys ksm.KeyStore = store
	if c.keyCacheTTL > 0 {
		if keys, err = keycache.New(store, keycache.Config{TTL: c.keyCacheTTL}); err != nil {
			return err
		}
	}
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: keys, Logger: logger, Registry: reg,
		Allow: c.limits.allowList, RateLimit: c.limits.limiter, MaxInflight: c.limits.maxInflight})
	if err != nil {
		return err
	}
	handshakeErrors, err := newHandshakeCounter(reg)
	if err != nil {
		return err
	}

	// SIGHUP rereads the TLS certificate and key (and is otherwise logged
	// and ignored rather than ending the server).
	var reloads []func()
	if keyPair != nil {
		reloads = append(reloads, func() { keyPair.Reload() }) // logs its own result
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
	logger.Info("ykksmd listening", "addr", addr, "db", store.DB().Name, "dialect", string(store.DB().Dialect),
		"tls", c.tls.enabled(), "mutual_tls", c.tls.clientCA != "", "allow", cmp.Or(c.limits.allowList.String(), "any"))
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() && c.tls.clientCA == "" && c.limits.allowList == nil {
		logger.Warn("ykksmd: anyone who reaches this address can test OTPs; use --allow, --tls-client-ca or a firewall", "addr", addr)
	}
	if ready != nil {
		ready(addr)
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
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("ykksmd stopping")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := store.Close(); err != nil {
		return fmt.Errorf("close database: %w", err)
	}
	logger.Info("ykksmd stopped")
	return nil
}

// checkKeys refuses to serve a database holding sealed keys without a KEK
// (sqlstore.OpenOptions already refused a KEK that sealed none of them) and
// logs how the keys are kept.
func checkKeys(ctx context.Context, logger *slog.Logger, store *sqlstore.Store, sealer *seal.Sealer, source string) error {
	st, err := store.Status(ctx)
	if err != nil {
		return err
	}
	if sealer == nil {
		if n := st.SealedTotal() + st.Malformed; n > 0 {
			ids := slices.Sorted(maps.Keys(st.Sealed))
			return fmt.Errorf("the database holds %d sealed keys (KEK key IDs %s) and no KEK is configured: "+
				"give --kek-file (or $YKKSM_KEK_FILE, $YKKSM_KEK, or the systemd credential ykksm-kek)", n, strings.Join(ids, ", "))
		}
		return nil
	}
	logger.Info("ykksmd: AES keys sealed at rest", "kek", sealer.KeyID(), "kek_source", source, "keys", st.Mode(),
		"sealed", st.SealedTotal(), "plaintext", st.Plaintext)
	if st.Plaintext > 0 {
		logger.Warn("ykksmd: the database still holds plaintext keys; they are read until ykksmd restarts after ykksm-seal seal has sealed them",
			"plaintext", st.Plaintext)
	}
	if st.Malformed > 0 {
		logger.Warn("ykksmd: the database holds malformed sealed values; their keys answer ERR Database error", "malformed", st.Malformed)
	}
	return nil
}
