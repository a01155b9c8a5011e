package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
)

// defaultDSN is the database used when neither --database nor $YKVAL_DB names one.
const defaultDSN = "sqlite:/var/lib/ykstack/ykval.db"

const usage = `Usage: ykval-gen-clients [OPTIONS] [num_clients]

Create num_clients new API clients (one if the last argument is not a number)
in a YK-VAL database and print "id,secret" for each.

Options:
`

// secretBytes is the length of a client's HMAC-SHA1 key.
const secretBytes = 20

// noValue is what an --email, --notes or --otp written without '=' is set to.
const noValue = "\x00"

// optional is a string flag that takes a value only after '=', as PHP's
// getopt "name::" options do.
type optional struct{ value string }

func (o *optional) String() string { return o.value }
func (o *optional) Type() string   { return "string" }
func (o *optional) Set(s string) error {
	if s == noValue {
		s = ""
	}
	o.value = s
	return nil
}

func run(ctx context.Context, env cli.Env) error {
	fs := pflag.NewFlagSet("ykval-gen-clients", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		help, urandom     bool
		email, notes, otp optional
		db                cli.DBFlags
	)
	fs.BoolVar(&urandom, "urandom", false, "accepted for compatibility; secrets always come from crypto/rand")
	for _, f := range []struct {
		v          *optional
		name, what string
	}{{&email, "email", "e-mail"}, {&notes, "notes", "notes"}, {&otp, "otp", "otp"}} {
		fs.Var(f.v, f.name, "set the "+f.what+" field of the new clients (--"+f.name+"=VALUE)")
		fs.Lookup(f.name).NoOptDefVal = noValue
	}
	fs.BoolVarP(&help, "help", "h", false, "print this help")
	db.Register(fs, "YKVAL", defaultDSN)
	var kek cli.ValKEKFlags
	kek.Register(fs, "YKVAL")
	if err := fs.Parse(env.Args); err != nil {
		return cli.Usagef("%v (see --help)", err)
	}
	if help {
		io.WriteString(env.Stdout, usage)
		fs.SetOutput(env.Stdout)
		fs.PrintDefaults()
		return pflag.ErrHelp
	}
	n, err := count(env.Args)
	if err != nil {
		return err
	}
	if fs.NArg() > 0 {
		if last := env.Args[len(env.Args)-1]; intval(last) == 0 {
			fmt.Fprintf(env.Stderr, "ykval-gen-clients: note: creating 1 client: the last argument %q is not a number (num_clients must come last, and option values need '=')\n", last)
		}
	}
	template := val.Client{Active: true, Email: email.value, Notes: notes.value, OTP: otp.value}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"email", template.Email, 255}, {"notes", template.Notes, 100}, {"otp", template.OTP, 100}} {
		if len(f.value) > f.max {
			return cli.Usagef("--%s is longer than %d bytes", f.name, f.max)
		}
	}
	cfg, err := db.Config(env.Lookup)
	if err != nil {
		return err
	}
	sealer, err := kek.Sealer(env.Lookup)
	if err != nil {
		return err
	}
	store, err := sqlstore.OpenOptions(ctx, cfg, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		return err
	}
	defer store.Close()
	return generate(ctx, store, template, n, env.Stdout, time.Now)
}

// count is the number of clients args ask for: the last argument as PHP's
// intval reads it, or 1 when that is 0.
func count(args []string) (int, error) {
	if len(args) == 0 {
		return 1, nil
	}
	n := intval(args[len(args)-1])
	switch {
	case n == 0:
		return 1, nil
	case n < 0:
		return 0, cli.Usagef("num_clients %q is negative", args[len(args)-1])
	case n > math.MaxInt32:
		return 0, cli.Usagef("num_clients %q is too large", args[len(args)-1])
	}
	return int(n), nil
}

// intval reads s as PHP's intval does: the longest prefix that is a decimal
// number (after leading white space; with sign, fraction and exponent),
// truncated toward zero and saturated, and 0 when there is none.
func intval(s string) int64 {
	s = strings.TrimLeft(s, " \t\n\r\v\f")
	digits := func(i int) int { // the end of the digits from i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i
	}
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	end := digits(i)
	whole := end > i
	float := false
	if end < len(s) && s[end] == '.' {
		if f := digits(end + 1); whole || f > end+1 {
			end, whole, float = f, true, true
		}
	}
	if !whole {
		return 0
	}
	if end < len(s) && (s[end] == 'e' || s[end] == 'E') {
		j := end + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		if k := digits(j); k > j {
			end, float = k, true
		}
	}
	if !float {
		n, _ := strconv.ParseInt(s[:end], 10, 64) // saturates on overflow
		return n
	}
	f, _ := strconv.ParseFloat(s[:end], 64) // ±Inf on overflow
	switch {
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// generate creates n clients like template, each with its own secret and
// the creation time, and writes "id,secret" for each to w once it is stored.
func generate(ctx context.Context, s val.Store, template val.Client, n int, w io.Writer, now func() time.Time) error {
	for range n {
		var b [secretBytes]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("random secret: %w", err)
		}
		c := template
		c.Secret = base64.StdEncoding.EncodeToString(b[:])
		c.Created = now().Unix()
		made, err := s.CreateClients(ctx, c, 1)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "%d,%s\n", made[0].ID, made[0].Secret); err != nil {
			return err
		}
	}
	return nil
}
