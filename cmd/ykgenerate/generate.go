package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
)

const defaultDSN = "sqlite:/var/lib/ykstack/ykksm.db"

const usage = `Usage: ykgenerate [--public-id ID] AESKEY UID COUNTER LOW HIGH USE [RND]
       ykgenerate --public-id ID [--database DSN] [--kek-file FILE] [--counter N] [--use N] [--timestamp N] [--random N]

Without --counter and --use, the database form takes them from the clock, so
OTPs minted a second or more apart are each accepted once, as touches are.

Mint a Yubico OTP.

  AESKEY   AES-128 key, 32 hex digits        LOW    timestamp low, 4 hex digits
  UID      private ID, 12 hex digits         HIGH   timestamp high, 2 hex digits
  COUNTER  session counter, 4 hex digits     USE    session use, 2 hex digits
  RND      random field, 4 hex digits (random when absent)

Without AESKEY…, the key is looked up by --public-id in a KSM database and
the numbers are given in decimal:

`

// request is what to mint.
type request struct {
	publicID string
	key      otp.Key
	tok      otp.Token
}

// lookup is the database form's command line.
type lookup struct {
	publicID                     string
	counter, use, timestamp, rnd uint64
	timestampGiven, randomGiven  bool
	positionGiven                bool // --counter or --use was given
	db                           cli.DBFlags
	kek                          cli.KEKFlags
}

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykgenerate", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		help bool
		l    lookup
	)
	fs.BoolVarP(&help, "help", "h", false, "print this help")
	fs.StringVar(&l.publicID, "public-id", "", "modhex public `ID`: the key to look up, and the OTP's prefix")
	fs.Uint64Var(&l.counter, "counter", 1, "session counter `N`, 0-65535")
	fs.Uint64Var(&l.use, "use", 0, "session use `N`, 0-255")
	fs.Uint64Var(&l.timestamp, "timestamp", 0, "timestamp `N`, 0-16777215 (default random)")
	fs.Uint64Var(&l.rnd, "random", 0, "random field `N`, 0-65535 (default random)")
	l.db.Register(fs, "YKKSM", defaultDSN)
	l.kek.Register(fs, "YKKSM")
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if help {
		fs.SetOutput(env.Stdout)
		io.WriteString(env.Stdout, usage)
		fs.PrintDefaults()
		return pflag.ErrHelp
	}
	if len(l.publicID) > otp.MaxPublicIDLen || !modhex.Valid(l.publicID) {
		return cli.Usagef("--public-id: want up to %d modhex characters (cbdefghijklnrtuv), have %q", otp.MaxPublicIDLen, l.publicID)
	}
	l.timestampGiven, l.randomGiven = fs.Changed("timestamp"), fs.Changed("random")
	l.positionGiven = fs.Changed("counter") || fs.Changed("use")

	var (
		req request
		err error
	)
	if fs.NArg() > 0 {
		for _, name := range []string{"counter", "use", "timestamp", "random", "database", "db", "db-user", "db-passwd", "db-passwd-file", "kek-file", "old-kek-file"} {
			if fs.Changed(name) {
				return cli.Usagef("--%s goes with the database form, not with AESKEY UID … (see --help)", name)
			}
		}
		req, err = parsePositional(fs.Args())
		req.publicID = l.publicID
	} else {
		req, err = fromDatabase(ctx, env, l)
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(env.Stdout, otp.Generate(req.publicID, req.key, req.tok))
	return err
}

// fromDatabase builds the request of the database form.
func fromDatabase(ctx context.Context, env cli.Env, l lookup) (request, error) {
	req := request{publicID: l.publicID}
	if l.publicID == "" {
		return req, cli.Usagef("want AESKEY UID COUNTER LOW HIGH USE, or --public-id to look the key up (see --help)")
	}
	for _, lim := range []struct {
		name string
		v    uint64
		max  uint64
	}{{"counter", l.counter, 0xffff}, {"use", l.use, 0xff}, {"timestamp", l.timestamp, 0xffffff}, {"random", l.rnd, 0xffff}} {
		if lim.v > lim.max {
			return req, cli.Usagef("--%s: want at most %d, have %d", lim.name, lim.max, lim.v)
		}
	}
	if !l.positionGiven {
		l.counter, l.use = clockPosition(time.Now())
	}
	if !l.timestampGiven {
		l.timestamp = uint64(randomUint(3))
	}
	if !l.randomGiven {
		l.rnd = uint64(randomUint(2))
	}
	cfg, err := l.db.Config(env.Lookup)
	if err != nil {
		return req, err
	}
	sealer, err := l.kek.Sealer(env.Lookup)
	if err != nil {
		return req, err
	}
	k, err := findKey(ctx, cfg, sealer, l.publicID)
	if err != nil {
		return req, err
	}
	if !k.Active {
		fmt.Fprintf(env.Stderr, "ykgenerate: warning: key %s is inactive; a KSM answers \"ERR Unknown yubikey\" to its OTPs\n", l.publicID)
	}
	if req.key, err = otp.ParseKey(k.AESKey); err != nil {
		return req, fmt.Errorf("key %s in the database: %w", l.publicID, err)
	}
	if req.tok.UID, err = otp.ParseUID(k.InternalName); err != nil {
		return req, fmt.Errorf("key %s in the database: %w", l.publicID, err)
	}
	req.tok.Counter = uint16(l.counter)
	req.tok.Use = uint8(l.use)
	req.tok.TimestampLow = uint16(l.timestamp)
	req.tok.TimestampHigh = uint8(l.timestamp >> 16)
	req.tok.Random = uint16(l.rnd)
	return req, nil
}

// clockPosition derives a (counter, use) position from the clock for the
// database form when neither --counter nor --use is given, so that OTPs
// minted a second or more apart come in increasing order, like a YubiKey's
// touches, and a validation server accepts each of them. The counter steps
// every 256 s and the use every second; the sequence restarts after about
// 97 days (then give --counter explicitly, higher than the key's last).
func clockPosition(now time.Time) (counter, use uint64) {
	t := uint64(now.Unix())
	return 1 + (t>>8)%0x7ffe, t & 0xff
}

// parsePositional reads libyubikey's arguments: AESKEY UID COUNTER LOW HIGH USE [RND], all hex.
func parsePositional(args []string) (request, error) {
	var req request
	if len(args) < 6 || len(args) > 7 {
		return req, cli.Usagef("want 6 or 7 arguments (AESKEY UID COUNTER LOW HIGH USE [RND]), have %d (see --help)", len(args))
	}
	var err error
	if req.key, err = otp.ParseKey(args[0]); err != nil {
		return req, cli.Usagef("AESKEY: want 32 hex digits")
	}
	if req.tok.UID, err = otp.ParseUID(args[1]); err != nil {
		return req, cli.Usagef("UID: want 12 hex digits, have %q", args[1])
	}
	fields := []struct {
		name   string
		digits int
		set    func(uint64)
	}{
		{"COUNTER", 4, func(v uint64) { req.tok.Counter = uint16(v) }},
		{"LOW", 4, func(v uint64) { req.tok.TimestampLow = uint16(v) }},
		{"HIGH", 2, func(v uint64) { req.tok.TimestampHigh = uint8(v) }},
		{"USE", 2, func(v uint64) { req.tok.Use = uint8(v) }},
		{"RND", 4, func(v uint64) { req.tok.Random = uint16(v) }},
	}
	req.tok.Random = uint16(randomUint(2))
	for i, a := range args[2:] {
		f := fields[i]
		v, err := strconv.ParseUint(a, 16, 4*f.digits)
		if err != nil || len(a) != f.digits {
			return req, cli.Usagef("%s: want %d hex digits, have %q", f.name, f.digits, a)
		}
		f.set(v)
	}
	return req, nil
}

// findKey returns the key named publicID, active or not.
func findKey(ctx context.Context, cfg sqldb.Config, sealer *seal.Sealer, publicID string) (ksm.Key, error) {
	if err := sqldb.RequireExisting(cfg.DSN); err != nil {
		return ksm.Key{}, err
	}
	st, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return ksm.Key{}, err
	}
	defer st.Close()
	k, err := st.Lookup(ctx, publicID)
	if err == nil {
		k.Active = true
		return k, nil
	}
	if !errors.Is(err, ksm.ErrUnknownKey) {
		return ksm.Key{}, err
	}
	// Lookup sees active keys only; walk the table for an inactive one.
	errFound := errors.New("found")
	err = st.Each(ctx, func(e ksm.Key) error {
		if e.PublicName == publicID {
			k = e
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		if k.AESKey == "" {
			return ksm.Key{}, fmt.Errorf("key %s has no AES key in the database", publicID)
		}
		return k, nil
	case err != nil:
		return ksm.Key{}, err
	}
	return ksm.Key{}, fmt.Errorf("no key with public ID %s in the database", publicID)
}

// randomUint returns n random bytes as a little-endian number.
func randomUint(n int) uint32 {
	var b [4]byte
	rand.Read(b[:n]) // never fails (crypto/rand crashes the program instead)
	return binary.LittleEndian.Uint32(b[:])
}
