package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/cmd/ykvald/ksmadapter"
	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keycache"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/seal"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/ksmroute"
)

// ksmFlags are the flags that say how to reach the KSMs.
type ksmFlags struct {
	urls, routes             []string
	db, dbUser, dbPasswdFile string
	timeout                  time.Duration
	ca, cert, key            string        // TLS to https KSMs
	kek                      cli.KEKFlags  // the embedded KSM's KEK
	keyCacheTTL              time.Duration // the embedded KSM's key cache
}

func (f *ksmFlags) register(fs *pflag.FlagSet) {
	fs.StringArrayVar(&f.urls, "ksm-url", nil, "decrypt `URL` of a KSM, e.g. http://127.0.0.1:8002/wsapi/decrypt (repeatable; env YKVAL_KSM_URL)")
	fs.StringArrayVar(&f.routes, "ksm-route", nil, "send OTPs whose public ID starts with PREFIX to these KSMs: `PREFIX=URL[,URL...]` (repeatable)")
	fs.StringVar(&f.db, "ksm-db", "", "decrypt in-process with the keys of this KSM database `DSN` (env YKVAL_KSM_DB)")
	fs.StringVar(&f.dbUser, "ksm-db-user", "", "KSM database `user` (MySQL)")
	fs.StringVar(&f.dbPasswdFile, "ksm-db-passwd-file", "", "read the KSM database password from `file` (else env YKVAL_KSM_DB_PASSWORD)")
	fs.DurationVar(&f.timeout, "ksm-timeout", defaultKSMTimeout, "time a KSM gets to decrypt an OTP")
	fs.StringVar(&f.ca, "ksm-ca", "", "trust the CAs in PEM `FILE` for https KSMs instead of the system's roots")
	fs.StringVar(&f.cert, "ksm-cert", "", "present the PEM client certificate in `FILE` to KSMs that require mutual TLS (ykksmd --tls-client-ca); reread on SIGHUP")
	fs.StringVar(&f.key, "ksm-key", "", "the PEM private key of --ksm-cert, in `FILE`")
	f.kek.RegisterAs(fs, "ksm-", "YKVAL_KSM", "ykksm")
	fs.DurationVar(&f.keyCacheTTL, "ksm-key-cache-ttl", defaultKeyCacheTTL, "with --ksm-db, keep AES keys looked up in memory for `D` (a key deactivated in the KSM database stops decrypting within D; revoke at /wsapi/revoke is immediate; 0 disables)")
}

// fromEnv fills in what the flags did not set from the environment.
func (f *ksmFlags) fromEnv(fs *pflag.FlagSet, getenv func(string) string) {
	if !fs.Changed("ksm-url") {
		f.urls = splitList(getenv("YKVAL_KSM_URL"))
	}
	if !fs.Changed("ksm-db") {
		f.db = getenv("YKVAL_KSM_DB")
	}
}

// ksmPlan is a checked KSM configuration, ready to open.
type ksmPlan struct {
	def         []string // the default route's KSM URLs, or nil
	embedded    bool     // the default route is in-process, over db
	db          sqldb.Config
	sealer      *seal.Sealer // the embedded KSM's KEKs, or nil
	kekSource   string
	keyCacheTTL time.Duration
	routes      []plannedRoute
	timeout     time.Duration
	tls         ksmclient.Config // CAFile, CertFile, KeyFile
	desc        []string
}

type plannedRoute struct {
	prefix string
	urls   []string
}

// String describes the plan for the startup log line.
func (p ksmPlan) String() string { return strings.Join(p.desc, "; ") }

// plan checks the KSM flags and returns every problem at once.
func (f *ksmFlags) plan(getenv func(string) string) (ksmPlan, []error) {
	p := ksmPlan{timeout: f.timeout, keyCacheTTL: f.keyCacheTTL,
		tls: ksmclient.Config{CAFile: f.ca, CertFile: f.cert, KeyFile: f.key}}
	timeout := max(f.timeout, 0) // validate reports a negative one
	var errs []error
	switch {
	case len(f.urls) > 0 && f.db != "":
		errs = append(errs, fmt.Errorf("--ksm-url and --ksm-db: give one of them, not both"))
	case len(f.urls) == 0 && f.db == "" && len(f.routes) == 0:
		errs = append(errs, fmt.Errorf("no KSM: give --ksm-url URL, --ksm-db DSN or --ksm-route PREFIX=URL"))
	}
	if (f.cert == "") != (f.key == "") {
		errs = append(errs, fmt.Errorf("--ksm-cert and --ksm-key go together"))
	}
	if (f.ca != "" || f.cert != "") && len(f.urls) == 0 && len(f.routes) == 0 {
		errs = append(errs, fmt.Errorf("--ksm-ca, --ksm-cert and --ksm-key go with --ksm-url or --ksm-route"))
	}
	if f.keyCacheTTL < 0 {
		errs = append(errs, fmt.Errorf("--ksm-key-cache-ttl %v: must not be negative", f.keyCacheTTL))
	}
	if len(f.urls) > 0 {
		// The URLs are checked here; the clients, with their TLS files,
		// are made by open.
		if _, err := ksmclient.New(ksmclient.Config{URLs: f.urls, Timeout: timeout}); err != nil {
			errs = append(errs, fmt.Errorf("--ksm-url: %w", err))
		}
		p.def = f.urls
		p.desc = append(p.desc, "default: "+strings.Join(f.urls, ", "))
	}
	if f.db != "" {
		cfg, err := f.dbConfig(getenv)
		if err != nil {
			errs = append(errs, err)
		}
		p.embedded, p.db = true, cfg
		p.desc = append(p.desc, "default: in-process")
	}
	// The embedded KSM's KEK: a KEK that is named but cannot be read is a
	// runtime error (reported by open), as in ykksmd.
	if f.db == "" && (f.kek.File != "" || f.kek.OldFile != "") {
		errs = append(errs, fmt.Errorf("--ksm-kek-file and --ksm-old-kek-file go with --ksm-db"))
	}
	seen := map[string]bool{"": len(p.def) > 0 || p.embedded}
	for _, r := range f.routes {
		prefix, list, ok := strings.Cut(r, "=")
		if !ok || list == "" {
			errs = append(errs, fmt.Errorf("--ksm-route %q: want PREFIX=URL[,URL...]", r))
			continue
		}
		if len(prefix) > otp.MaxPublicIDLen || !modhex.Valid(prefix) {
			errs = append(errs, fmt.Errorf("--ksm-route %q: prefix is not 0 to %d lower-case modhex characters", r, otp.MaxPublicIDLen))
		}
		if seen[prefix] {
			errs = append(errs, fmt.Errorf("--ksm-route %q: a route for prefix %q is already given", r, prefix))
		}
		seen[prefix] = true
		urls := strings.Split(list, ",")
		if _, err := ksmclient.New(ksmclient.Config{URLs: urls, Timeout: timeout}); err != nil {
			errs = append(errs, fmt.Errorf("--ksm-route %q: %w", r, err))
		}
		p.routes = append(p.routes, plannedRoute{prefix, urls})
		p.desc = append(p.desc, fmt.Sprintf("%q: %s", prefix, strings.Join(urls, ", ")))
	}
	return p, errs
}

// dbConfig is the embedded KSM's database configuration.
func (f *ksmFlags) dbConfig(getenv func(string) string) (sqldb.Config, error) {
	cfg := sqldb.Config{DSN: f.db, User: f.dbUser, CacheKiB: ksmsqlstore.ServerCacheKiB}
	if f.dbPasswdFile != "" {
		b, err := os.ReadFile(f.dbPasswdFile)
		if err != nil {
			return cfg, fmt.Errorf("--ksm-db-passwd-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		cfg.Password = strings.TrimRight(line, "\r")
	}
	if cfg.Password == "" {
		cfg.Password = getenv("YKVAL_KSM_DB_PASSWORD")
	}
	if _, err := sqldb.ParseDSN(cfg.DSN); err != nil {
		return cfg, fmt.Errorf("--ksm-db: %w", err)
	}
	return cfg, nil
}

// openedKSM is the val.KSM of a plan and what goes with it.
type openedKSM struct {
	val.KSM
	clients []*ksmclient.Client // the HTTP clients, for closing and TLS reloads
	closers []func()
}

// Close releases what open opened.
func (o *openedKSM) Close() {
	for _, c := range o.clients {
		c.CloseIdleConnections()
	}
	for _, c := range o.closers {
		c()
	}
}

// ReloadTLS reads the KSM client certificate again (SIGHUP), logging the
// result; a failed reload keeps the current certificate.
func (o *openedKSM) ReloadTLS(logger *slog.Logger) {
	if len(o.clients) == 0 {
		return
	}
	for _, c := range o.clients {
		if err := c.ReloadTLS(); err != nil {
			logger.Error("tls: reload of the KSM client certificate failed; keeping the current one", "err", err)
			return
		}
	}
	logger.Info("tls: KSM client certificate reloaded")
}

// client makes the HTTP client of urls.
func (p ksmPlan) client(urls []string) (*ksmclient.Client, error) {
	cfg := p.tls
	cfg.URLs, cfg.Timeout = urls, p.timeout
	c, err := ksmclient.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("KSM client: %w", err)
	}
	return c, nil
}

// open builds the val.KSM of the plan; Close releases what it opened,
// also after an error.
func (p ksmPlan) open(ctx context.Context, logger *slog.Logger) (*openedKSM, error) {
	o := &openedKSM{}
	var def val.KSM
	if p.def != nil {
		c, err := p.client(p.def)
		if err != nil {
			return o, err
		}
		o.clients = append(o.clients, c)
		def = ksmadapter.New(c)
	}
	if p.embedded {
		st, err := ksmsqlstore.OpenOptions(ctx, p.db, ksmsqlstore.Options{Sealer: p.sealer})
		if err != nil {
			return o, fmt.Errorf("open KSM database: %w", err)
		}
		o.closers = append(o.closers, func() { st.Close() })
		if err := checkSealed(ctx, logger, st, p.sealer, p.kekSource); err != nil {
			return o, err
		}
		var keys ksm.KeyStore = st
		if p.keyCacheTTL > 0 {
			if keys, err = keycache.New(st, keycache.Config{TTL: p.keyCacheTTL}); err != nil {
				return o, err
			}
		}
		def = timeoutKSM{ksmadapter.New(ksmserver.NewDecrypter(keys, logger.With("ksm", "in-process"))), p.timeout}
	}
	if len(p.routes) == 0 {
		o.KSM = def
		return o, nil
	}
	var routes []ksmroute.Route
	if def != nil {
		routes = append(routes, ksmroute.Route{Prefix: "", KSMs: []val.KSM{def}})
	}
	for _, r := range p.routes {
		c, err := p.client(r.urls)
		if err != nil {
			return o, err
		}
		o.clients = append(o.clients, c)
		routes = append(routes, ksmroute.Route{Prefix: r.prefix, KSMs: []val.KSM{ksmadapter.New(c)}})
	}
	router, err := ksmroute.New(routes)
	if err != nil { // unreachable: plan checked the routes
		return o, err
	}
	o.KSM = router
	return o, nil
}

// checkSealed refuses an embedded KSM database holding sealed keys when no
// KEK is configured (ksm/sqlstore already refused a KEK that sealed none of
// them) and logs how its keys are kept, as ykksmd does.
func checkSealed(ctx context.Context, logger *slog.Logger, st *ksmsqlstore.Store, sealer *seal.Sealer, source string) error {
	status, err := st.Status(ctx)
	if err != nil {
		return fmt.Errorf("KSM database: %w", err)
	}
	if sealer == nil {
		if n := status.SealedTotal() + status.Malformed; n > 0 {
			ids := slices.Sorted(maps.Keys(status.Sealed))
			return fmt.Errorf("the KSM database holds %d sealed keys (KEK key IDs %s) and no KEK is configured: "+
				"give --ksm-kek-file (or $YKVAL_KSM_KEK_FILE, $YKVAL_KSM_KEK, or the systemd credential ykksm-kek)", n, strings.Join(ids, ", "))
		}
		return nil
	}
	logger.Info("ykvald: the in-process KSM's AES keys are sealed at rest", "kek", sealer.KeyID(), "kek_source", source,
		"keys", status.Mode(), "sealed", status.SealedTotal(), "plaintext", status.Plaintext)
	if status.Plaintext > 0 {
		logger.Warn("ykvald: the KSM database still holds plaintext keys; they are read until ykvald restarts after ykksm-seal seal has sealed them",
			"plaintext", status.Plaintext)
	}
	return nil
}

// timeoutKSM bounds each decryption of an in-process KSM, as ksmclient
// bounds its requests.
type timeoutKSM struct {
	k val.KSM
	d time.Duration
}

func (t timeoutKSM) Decrypt(ctx context.Context, otp string) (val.Decrypted, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.k.Decrypt(ctx, otp)
}
