package valsync

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/ykstack/ykstack/val"
)

// Query is what a sync request tells a peer of an accepted OTP: the OTP and
// the key's state once it was accepted (public name, modified, counters,
// nonce).
type Query struct {
	OTP   string
	State val.KeyState
}

// Fields returns the query's eight parameters in YK-VAL's order: otp,
// modified, yk_publicname, yk_counter, yk_use, yk_high, yk_low, nonce.
func (q Query) Fields() []val.Field {
	k := q.State
	return []val.Field{
		{Key: "otp", Value: q.OTP},
		{Key: "modified", Value: strconv.FormatInt(k.Modified, 10)},
		{Key: "yk_publicname", Value: k.PublicName},
		{Key: "yk_counter", Value: strconv.Itoa(k.Counter)},
		{Key: "yk_use", Value: strconv.Itoa(k.Use)},
		{Key: "yk_high", Value: strconv.Itoa(k.High)},
		{Key: "yk_low", Value: strconv.Itoa(k.Low)},
		{Key: "nonce", Value: k.Nonce},
	}
}

// Encode returns the query string exactly as YK-VAL's sender builds it,
//
//	otp=…&modified=…&yk_publicname=…&yk_counter=…&yk_use=…&yk_high=…&yk_low=…&nonce=…
//
// and, when key is not nil, "&h=" and the URL-escaped HMAC-SHA1 of those
// parameters under key (val.Sign). Values are URL-escaped; modhex, digits,
// -1 and alphanumeric nonces, all a valid query holds, are written as they
// are.
func (q Query) Encode(key []byte) string {
	fields := q.Fields()
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(f.Key + "=" + escape(f.Value))
	}
	if key != nil {
		b.WriteString("&h=" + escape(val.Sign(key, fields)))
	}
	return b.String()
}

// Signature returns the h Encode appends under key.
func (q Query) Signature(key []byte) string { return val.Sign(key, q.Fields()) }

// escape URL-escapes a query value, leaving what YK-VAL writes unescaped
// (letters, digits and '-') as it is.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Info returns the queue row's info field for an accepted OTP, as YK-VAL
// writes it: the OTP's state, a comma, and the local counters from before
// the OTP was accepted,
//
//	yk_publicname=<id>&yk_counter=<n>&yk_use=<n>&yk_high=<n>&yk_low=<n>&nonce=<nonce>,local_counter=<n>&local_use=<n>
func Info(accepted, previous val.KeyState) string {
	return fmt.Sprintf("yk_publicname=%s&yk_counter=%d&yk_use=%d&yk_high=%d&yk_low=%d&nonce=%s,local_counter=%d&local_use=%d",
		accepted.PublicName, accepted.Counter, accepted.Use, accepted.High, accepted.Low, accepted.Nonce,
		previous.Counter, previous.Use)
}

// ErrInfo is returned by ParseEntry for a queue row whose info field is not
// YK-VAL's.
var ErrInfo = errors.New("valsync: malformed queue info")

// ParseEntry rebuilds the sync request of a queue row from its otp,
// modified and info fields, and returns the local position the info
// records (before the OTP was accepted). Errors wrap ErrInfo.
func ParseEntry(e val.QueueEntry) (Query, val.Position, error) {
	otpPart, localPart, ok := strings.Cut(e.Info, ",")
	if !ok {
		return Query{}, val.Position{}, fmt.Errorf("%w: no comma", ErrInfo)
	}
	p := val.ParseQuery(otpPart)
	l := val.ParseQuery(localPart)
	num := func(q map[string][]string, k string) (int, error) {
		vs := q[k]
		if len(vs) == 0 {
			return 0, fmt.Errorf("%w: no %s", ErrInfo, k)
		}
		n, err := strconv.Atoi(vs[len(vs)-1])
		if err != nil || n < -1 {
			return 0, fmt.Errorf("%w: %s is not a number", ErrInfo, k)
		}
		return n, nil
	}
	str := func(q map[string][]string, k string) (string, error) {
		vs := q[k]
		if len(vs) == 0 || vs[len(vs)-1] == "" {
			return "", fmt.Errorf("%w: no %s", ErrInfo, k)
		}
		return vs[len(vs)-1], nil
	}
	var (
		q    = Query{OTP: e.OTP, State: val.KeyState{Modified: e.Modified}}
		loc  val.Position
		errs []error
	)
	var err error
	q.State.PublicName, err = str(p, "yk_publicname")
	errs = append(errs, err)
	q.State.Nonce, err = str(p, "nonce")
	errs = append(errs, err)
	for _, f := range []struct {
		q   map[string][]string
		key string
		dst *int
	}{
		{p, "yk_counter", &q.State.Counter}, {p, "yk_use", &q.State.Use}, {p, "yk_high", &q.State.High}, {p, "yk_low", &q.State.Low},
		{l, "local_counter", &loc.Counter}, {l, "local_use", &loc.Use},
	} {
		*f.dst, err = num(f.q, f.key)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return Query{}, val.Position{}, err
	}
	return q, loc, nil
}

// Answer is a peer's answer to a sync request.
type Answer struct {
	Status val.Status
	// State is, for an OK answer, the peer's state of the key before it
	// took the request: modified, nonce, yk_publicname and the counters.
	State val.KeyState
}

// ErrAnswer is returned by ParseAnswer for a body that is not a sync answer.
var ErrAnswer = errors.New("valsync: malformed sync answer")

// ParseAnswer parses a sync answer as YK-VAL's sender reads it: the lines of
// a response (val.ParseResponse), and for status OK the fields modified,
// yk_counter, yk_use, yk_high, yk_low (integers, -1 allowed), yk_publicname
// and nonce. It returns the reply as well, for its signature. Errors wrap
// ErrAnswer.
func ParseAnswer(body []byte) (Answer, val.Reply, error) {
	r, err := val.ParseResponse(body)
	if err != nil {
		return Answer{}, val.Reply{}, fmt.Errorf("%w: %w", ErrAnswer, err)
	}
	a := Answer{Status: r.Status()}
	if a.Status == "" {
		return Answer{}, val.Reply{}, fmt.Errorf("%w: empty status", ErrAnswer)
	}
	if a.Status != val.StatusOK {
		return a, r, nil
	}
	var errs []error
	num := func(k string) int64 {
		v, ok := r.Lookup(k)
		n, err := strconv.ParseInt(v, 10, 32)
		if !ok || err != nil || n < -1 {
			errs = append(errs, fmt.Errorf("%w: %s %q is not a number", ErrAnswer, k, clip(v)))
		}
		return n
	}
	a.State.Modified = num("modified")
	a.State.Counter = int(num("yk_counter"))
	a.State.Use = int(num("yk_use"))
	a.State.High = int(num("yk_high"))
	a.State.Low = int(num("yk_low"))
	var ok bool
	if a.State.PublicName, ok = r.Lookup("yk_publicname"); !ok {
		errs = append(errs, fmt.Errorf("%w: no yk_publicname", ErrAnswer))
	}
	if a.State.Nonce, ok = r.Lookup("nonce"); !ok {
		errs = append(errs, fmt.Errorf("%w: no nonce", ErrAnswer))
	}
	if err := errors.Join(errs...); err != nil {
		return Answer{}, val.Reply{}, err
	}
	return a, r, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Replayed reports whether a peer's OK answer says the OTP was replayed: the
// peer's counters (from before it took the request) are above the OTP's,
// or equal to them with another nonce, the OTP having then been accepted
// by the peer for another request.
func Replayed(peer, otp val.KeyState) bool {
	return otp.Pos().Less(peer.Pos()) || peer.Pos() == otp.Pos() && peer.Nonce != otp.Nonce
}
