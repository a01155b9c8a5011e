package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/ksm"
)

// decryptPath is the KSM's decrypt API.
const decryptPath = "/wsapi/decrypt?otp="

// ksmRequest is one pre-minted decrypt request and its only right answer.
type ksmRequest struct {
	pathQuery string
	want      []byte // "OK counter=… use=…\n"
}

// runKSM loads a YK-KSM with decrypt requests for OTPs minted in advance,
// spread over many keys.
func runKSM(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("ksm", env.Stderr)
	var f loadFlags
	f.register(fs, "YKBENCH_KSM")
	otps := fs.Int("otps", 50_000, "OTPs to mint in advance; workers cycle through them")
	expect := fs.String("expect", "", "expect this `line` as every answer instead of the OTP's counters (for the baseline server)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *otps < 1 || *otps > 1_000_000 {
		return cli.Usagef("--otps must be 1 to 1000000")
	}
	if err := f.validate(); err != nil {
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
	reqs, err := mintKSMRequests(keys, uint16(f.counterBase), *otps)
	if err != nil {
		return err
	}
	if *expect != "" {
		want := []byte(*expect + "\n")
		for i := range reqs {
			reqs[i].want = want
		}
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
	workers := make([]requestFunc, f.cfg.Concurrency)
	for i := range workers {
		workers[i] = ksmWorker(getters[i], reqs, i*len(reqs)/len(workers))
	}
	started, load1 := time.Now(), loadAverage()
	stats, err := runLoad(ctx, f.cfg, workers)
	if err != nil {
		return err
	}
	r := newRunResult("ksm", f.label, f.url, f.client, f.cfg, len(keys), started, load1, stats)
	return emit(env.Stdout, f.out, r, r.human())
}

// resolveKeyDB turns the key database flags into f.keys.db, when given.
func (f *loadFlags) resolveKeyDB(env cli.Env) error {
	if f.keysDB.DSN == "" && env.Lookup(f.dbPrefix+"_DB") == "" {
		return nil
	}
	cfg, err := f.keysDB.Config(env.Getenv)
	if err != nil {
		return err
	}
	f.keys.db = cfg
	return nil
}

// mintKSMRequests mints n OTPs, round-robin over keys, each key's OTPs in
// increasing order from session counter counter.
func mintKSMRequests(keys []ksm.Key, counter uint16, n int) ([]ksmRequest, error) {
	rnd := rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	bks := make([]*benchKey, len(keys))
	for i, k := range keys {
		bk, err := newBenchKey(k, counter, rnd)
		if err != nil {
			return nil, err
		}
		bks[i] = bk
	}
	reqs := make([]ksmRequest, n)
	for i := range reqs {
		s, res, err := bks[i%len(bks)].next(uint32(i / len(bks)))
		if err != nil {
			return nil, err
		}
		reqs[i] = ksmRequest{pathQuery: decryptPath + s, want: []byte(res.String() + "\n")}
	}
	return reqs, nil
}

// ksmWorker returns a requestFunc that sends reqs in turn from index from.
func ksmWorker(g getter, reqs []ksmRequest, from int) requestFunc {
	i := from
	return func(ctx context.Context) error {
		r := &reqs[i%len(reqs)]
		i++
		status, body, err := g.get(ctx, r.pathQuery)
		if err != nil {
			return err
		}
		if status != 200 {
			return fmt.Errorf("HTTP status %d", status)
		}
		if !bytes.Equal(body, r.want) {
			return fmt.Errorf("wrong answer %q", truncate(body, 60))
		}
		return nil
	}
}

// truncate returns at most n bytes of b as a string, for error messages.
func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
