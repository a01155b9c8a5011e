package val

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Response is a verify (or sync) response as a server writes it.
type Response struct {
	Status Status
	// Time is the response time, written as t. The zero Time means the
	// moment Format runs.
	Time time.Time
	// Extras are the fields between t and status, in the order written.
	// Keys and values must not contain whitespace, '=' in keys, or line
	// breaks: the format cannot carry them.
	Extras []Field
}

// Format returns the response body signed with key: the lines "h=<sig>",
// "t=<time>", each extra "k=v" in order, "status=<status>" and an empty line,
// each ending in CRLF. The signature covers status, t and every extra
// (Canonical orders them). Pass nil as key for the empty key the original
// signs early errors and every sync answer with.
func (r Response) Format(key []byte) []byte {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	ts := FormatTime(t)
	fields := make([]Field, 0, len(r.Extras)+2)
	fields = append(fields, Field{"status", string(r.Status)}, Field{"t", ts})
	fields = append(fields, r.Extras...)

	var b strings.Builder
	b.WriteString("h=" + Sign(key, fields) + "\r\n")
	b.WriteString("t=" + ts + "\r\n")
	for _, f := range r.Extras {
		b.WriteString(f.Key + "=" + f.Value + "\r\n")
	}
	b.WriteString("status=" + string(r.Status) + "\r\n\r\n")
	return []byte(b.String())
}

// timeLayout is t without its milliseconds suffix.
const timeLayout = "2006-01-02T15:04:05"

// FormatTime writes t as the protocol's t field: UTC
// "YYYY-MM-DDTHH:MM:SS", then "Z0", then three digits of milliseconds, e.g.
// 2008-11-21T06:11:55Z0711.
func FormatTime(t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%sZ0%03d", t.Format(timeLayout), t.Nanosecond()/int(time.Millisecond))
}

// ParseTime parses a t field written by FormatTime (or the original server).
func ParseTime(s string) (time.Time, error) {
	date, ms, ok := strings.Cut(s, "Z")
	if !ok || len(ms) != 4 || ms[0] != '0' || !allDigits(ms) {
		return time.Time{}, fmt.Errorf("val: bad time %q", s)
	}
	t, err := time.ParseInLocation(timeLayout, date, time.UTC)
	if err != nil {
		return time.Time{}, fmt.Errorf("val: bad time %q: %w", s, err)
	}
	n, _ := strconv.Atoi(ms)
	return t.Add(time.Duration(n) * time.Millisecond), nil
}

// Extras returns the extra fields the original server sends with status in
// answer to r (spec: protocol ≥ 2.0 is "v2"):
//
//	status              v2                                  v1
//	OK                  otp, nonce, sl [, timestamp trio]   [timestamp trio]
//	REPLAYED_REQUEST    otp, nonce                          –
//	REPLAYED_OTP        otp, nonce                          –
//	NOT_ENOUGH_ANSWERS  otp, nonce, sl                      sl
//	any other           –                                   –
//
// The timestamp trio, sent only when the request asked with timestamp=1, is
// timestamp (high·65536 + low), sessioncounter and sessionuse, from d. sl is
// the sync success rate, 0 when no sync was needed. otp is the normalised OTP
// (lower case, Dvorak translated).
func (r Request) Extras(status Status, sl int, d Decrypted) []Field {
	v2 := r.V2()
	var f []Field
	switch status {
	case StatusOK:
		if v2 {
			f = append(f, Field{"otp", r.OTP}, Field{"nonce", r.Nonce}, Field{"sl", strconv.Itoa(sl)})
		}
		if r.Timestamp {
			f = append(f,
				Field{"timestamp", strconv.Itoa(int(d.High)<<16 + int(d.Low))},
				Field{"sessioncounter", strconv.Itoa(int(d.Counter))},
				Field{"sessionuse", strconv.Itoa(int(d.Use))})
		}
	case StatusReplayedRequest, StatusReplayedOTP:
		if v2 {
			f = append(f, Field{"otp", r.OTP}, Field{"nonce", r.Nonce})
		}
	case StatusNotEnoughAnswers:
		if v2 {
			f = append(f, Field{"otp", r.OTP}, Field{"nonce", r.Nonce})
		}
		f = append(f, Field{"sl", strconv.Itoa(sl)})
	}
	return f
}

// ErrMalformedResponse is returned by ParseResponse for a body that is not a
// response of the protocol.
var ErrMalformedResponse = errors.New("val: malformed response")

// Reply is a response as a client parsed it.
type Reply struct {
	// H is the signature as received.
	H string
	// Fields are all other key=value pairs, in the order received.
	Fields []Field
}

// ParseResponse parses a verify or sync response body the way
// yubico-c-client does: whitespace (space, tab, CR, LF) separates tokens;
// each token is a key (up to the first '=') and a value (up to the next
// whitespace), and every value must be followed by whitespace, so a body
// cut short is rejected. The body must have an h and a status field. If h
// occurs more than once the last one counts; other repeated keys are all
// kept (Get returns the first). Errors wrap ErrMalformedResponse.
func ParseResponse(body []byte) (Reply, error) {
	var r Reply
	hasH := false
	s := string(body)
	for {
		s = strings.TrimLeft(s, " \t\r\n")
		if s == "" {
			break
		}
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			return Reply{}, fmt.Errorf("%w: %q has no '='", ErrMalformedResponse, clip(s))
		}
		end := strings.IndexAny(rest, " \t\r\n")
		if end < 0 {
			return Reply{}, fmt.Errorf("%w: value of %q not terminated by a line break", ErrMalformedResponse, clip(k))
		}
		v := rest[:end]
		s = rest[end:]
		if k == "h" {
			r.H, hasH = v, true
			continue
		}
		r.Fields = append(r.Fields, Field{k, v})
	}
	if !hasH {
		return Reply{}, fmt.Errorf("%w: no signature (h)", ErrMalformedResponse)
	}
	if _, ok := r.Lookup("status"); !ok {
		return Reply{}, fmt.Errorf("%w: no status", ErrMalformedResponse)
	}
	return r, nil
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Lookup returns the value of the first field named key.
func (r Reply) Lookup(key string) (string, bool) {
	for _, f := range r.Fields {
		if f.Key == key {
			return f.Value, true
		}
	}
	return "", false
}

// Get returns the value of the first field named key, or "".
func (r Reply) Get(key string) string {
	v, _ := r.Lookup(key)
	return v
}

// Status returns the reply's status field.
func (r Reply) Status() Status { return Status(r.Get("status")) }

// Verify reports, in constant time, whether the reply is signed with key:
// whether H is the signature of all its other fields. An early error of the
// original server (MISSING_PARAMETER, format BAD_OTP, NO_SUCH_CLIENT,
// BACKEND_ERROR before the client lookup) is signed with the empty key, so it
// fails Verify under the client's key.
func (r Reply) Verify(key []byte) bool { return Verify(key, r.Fields, r.H) }

// Known reports whether s is one of the statuses in Statuses.
func (s Status) Known() bool {
	for _, k := range Statuses {
		if s == k {
			return true
		}
	}
	return false
}
