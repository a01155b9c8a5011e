package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val"
)

// valConfig is what a VAL worker needs besides its keys.
type valConfig struct {
	path      string // "/wsapi/2.0/verify"
	clientID  string
	apiKey    []byte // the decoded HMAC key
	verifySig bool   // check each answer's signature
}

// runVAL loads a YK-VAL with signed verify requests. Each request carries
// a fresh OTP (a key's next one: the write path) or, with --replay, an OTP
// the server has already accepted (the REPLAYED_OTP path), and always a
// fresh random nonce.
func runVAL(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("val", env.Stderr)
	var f loadFlags
	f.register(fs, "YKBENCH_KSM")
	var vc valConfig
	fs.StringVar(&vc.path, "path", "/wsapi/2.0/verify", "verify API path")
	fs.StringVar(&vc.clientID, "client-id", "", "API client `id`")
	apiKey := fs.String("api-key", "", "API client's base64 secret (default $YKBENCH_API_KEY)")
	fs.BoolVar(&vc.verifySig, "verify-sig", true, "check the signature of every answer")
	replay := fs.Bool("replay", false, "resend OTPs the server has accepted, expecting REPLAYED_OTP")
	prime := fs.Bool("prime", false, "before measuring, send one OTP per key (unmeasured), so every key is enrolled")
	primeOnly := fs.Bool("prime-only", false, "only send one OTP per key, measure nothing, and print the next counter")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *apiKey == "" {
		*apiKey = env.Lookup("YKBENCH_API_KEY")
	}
	var problems []error
	if n, err := strconv.ParseUint(vc.clientID, 10, 32); err != nil || n == 0 {
		problems = append(problems, errors.New("--client-id must be a positive number"))
	}
	if vc.apiKey = val.DecodeKey(*apiKey); len(vc.apiKey) == 0 {
		problems = append(problems, errors.New("--api-key (or $YKBENCH_API_KEY) must be a base64 secret"))
	}
	if err := f.validate(); err != nil {
		problems = append(problems, err)
	}
	if err := errors.Join(problems...); err != nil {
		return cli.Usagef("%v", err)
	}
	base, err := loopbackURL(ctx, f.url)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	if err := f.resolveKeyDB(env); err != nil {
		return err
	}
	keys, err := f.keys.load(ctx)
	if err != nil {
		return fmt.Errorf("load keys: %w", err)
	}
	if len(keys) < f.cfg.Concurrency {
		return cli.Usagef("have %d keys for %d workers: every worker needs keys of its own", len(keys), f.cfg.Concurrency)
	}
	tc, err := f.tls.config(base)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	getters, err := newGetters(f.client, base, f.cfg.Concurrency, f.timeout, tc)
	if err != nil {
		return cli.Usagef("%v", err)
	}
	defer func() {
		for _, g := range getters {
			g.close()
		}
	}()

	// Each worker plays its own keys, so no two workers advance one key
	// and every OTP a worker sends is after the last one of that key.
	ws := make([]*valWorker, f.cfg.Concurrency)
	for i := range ws {
		ws[i] = &valWorker{cfg: vc, g: getters[i], rnd: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())), born: time.Now()}
	}
	for i, k := range keys {
		w := ws[i%len(ws)]
		bk, err := newBenchKey(k, uint16(f.counterBase), w.rnd)
		if err != nil {
			return err
		}
		w.keys = append(w.keys, bk)
	}
	mode := "val"
	if *replay {
		mode = "val-replay"
	}
	var primed uint64
	if *replay || *prime || *primeOnly {
		if err := primeAll(ctx, ws); err != nil {
			return fmt.Errorf("priming (one fresh OTP per key): %w", err)
		}
		primed = uint64(len(keys))
	}
	if *primeOnly {
		r := runResult{Kind: "prime", Label: f.label, Mode: mode, URL: f.url, Client: f.client, Concurrency: f.cfg.Concurrency, Keys: len(keys), PrimeReqs: primed}
		r.NextCounter, r.SkippedDvorak = nextCounter(ws)
		return emit(env.Stdout, f.out, r, fmt.Sprintf("primed %d keys; next counter %d", len(keys), r.NextCounter))
	}
	workers := make([]requestFunc, len(ws))
	for i, w := range ws {
		if *replay {
			workers[i] = w.replayed
		} else {
			workers[i] = w.fresh
		}
	}
	started, load1 := time.Now(), loadAverage()
	stats, err := runLoad(ctx, f.cfg, workers)
	if err != nil {
		return err
	}
	r := newRunResult(mode, f.label, f.url, f.client, f.cfg, len(keys), started, load1, stats)
	r.PrimeReqs = primed
	r.NextCounter, r.SkippedDvorak = nextCounter(ws)
	return emit(env.Stdout, f.out, r, r.human())
}

// nextCounter returns the first session counter no key has used yet, and
// how many OTPs the workers skipped.
func nextCounter(ws []*valWorker) (next int, skipped uint64) {
	for _, w := range ws {
		for _, k := range w.keys {
			next = max(next, int(k.nextCounter()))
		}
		skipped += w.skipped
	}
	return next, skipped
}

// valWorker sends verify requests for its own keys, one at a time.
type valWorker struct {
	cfg  valConfig
	g    getter
	rnd  *rand.Rand
	born time.Time // the keys' power-up time, for their timestamps
	keys []*benchKey
	next int      // index of the key the next request uses
	last []string // per key, the last OTP the server accepted (replay mode)
	// skipped counts minted OTPs not sent because the server would read
	// them as Dvorak modhex.
	skipped uint64
}

// primeAll has every worker send one fresh OTP for each of its keys and
// remember it.
func primeAll(ctx context.Context, ws []*valWorker) error {
	errc := make(chan error, len(ws))
	for _, w := range ws {
		go func() { errc <- w.prime(ctx) }()
	}
	var errs []error
	for range ws {
		if err := <-errc; err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (w *valWorker) prime(ctx context.Context) error {
	w.last = make([]string, len(w.keys))
	for i, k := range w.keys {
		o, err := w.mint(k)
		if err != nil {
			return err
		}
		if err := w.verify(ctx, o, val.StatusOK); err != nil {
			return fmt.Errorf("key %s: %w", k.publicID, err)
		}
		w.last[i] = o
	}
	return nil
}

// mint returns k's next OTP that the server will read as it is. An OTP
// made only of letters that modhex shares with Dvorak modhex (about 1 in
// 10,000) is transliterated by YK-VAL, as by the original, and then fails
// as an unknown key; such OTPs are skipped (their positions stay unused)
// and counted, so that the runs measure the accept path.
func (w *valWorker) mint(k *benchKey) (string, error) {
	for {
		o, _, err := k.next(uint32(time.Since(w.born) / (time.Second / 8)))
		if err != nil || val.NormalizeOTP(o) == o {
			return o, err
		}
		w.skipped++
	}
}

// fresh sends the next key's next OTP and expects OK.
func (w *valWorker) fresh(ctx context.Context) error {
	k := w.keys[w.next%len(w.keys)]
	w.next++
	o, err := w.mint(k)
	if err != nil {
		return err
	}
	return w.verify(ctx, o, val.StatusOK)
}

// replayed resends the next key's last accepted OTP and expects REPLAYED_OTP.
func (w *valWorker) replayed(ctx context.Context) error {
	i := w.next % len(w.keys)
	w.next++
	return w.verify(ctx, w.last[i], val.StatusReplayedOTP)
}

// verify sends one signed verify request for o with a fresh nonce and
// checks the answer: the wanted status, the OTP and nonce echoed, and (if
// configured) the signature.
func (w *valWorker) verify(ctx context.Context, o string, want val.Status) error {
	nonce := w.nonce()
	fields := []val.Field{{Key: "id", Value: w.cfg.clientID}, {Key: "nonce", Value: nonce}, {Key: "otp", Value: o}}
	h := val.Sign(w.cfg.apiKey, fields)
	pq := w.cfg.path + "?id=" + w.cfg.clientID + "&nonce=" + nonce + "&otp=" + o + "&h=" + url.QueryEscape(h)
	status, body, err := w.g.get(ctx, pq)
	if err != nil {
		return err
	}
	if status != 200 {
		return fmt.Errorf("HTTP status %d", status)
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		return err
	}
	if got := r.Status(); got != want {
		return fmt.Errorf("status=%s, want %s", got, want)
	}
	if r.Get("otp") != o || r.Get("nonce") != nonce {
		return errors.New("answer does not echo the request's otp and nonce")
	}
	if w.cfg.verifySig && !r.Verify(w.cfg.apiKey) {
		return errors.New("answer's signature does not verify with the client's key")
	}
	return nil
}

// nonce returns 32 random lower-case letters, as yubico-c-client sends.
func (w *valWorker) nonce() string {
	var b [32]byte
	for i := 0; i < len(b); i += 8 {
		v := w.rnd.Uint64()
		for j := range 8 {
			b[i+j] = 'a' + byte(v%26)
			v /= 26
		}
	}
	return string(b[:])
}
