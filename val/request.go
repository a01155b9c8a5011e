package val

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ykstack/ykstack/otp/modhex"
)

// Lengths the verify request's parameters must respect.
const (
	MinOTPLen      = 32 // modhex characters, token only
	MaxOTPLen      = 48 // 16 characters of public ID + 32 of token
	TokenLen       = 32 // modhex characters of the token at the end of an OTP
	MinNonceLen    = 16
	MaxNonceLen    = 40
	MaxClientIDLen = 10
)

// Config holds a validation server's defaults for a verify request: the sync
// levels (percent of the sync pool that must confirm an OTP) and the sync
// timeout used when the request does not give them.
type Config struct {
	FastLevel      int           // sl=fast; default 1
	SecureLevel    int           // sl=secure; default 40
	DefaultLevel   int           // no sl, and every protocol 1.x request; default 60
	DefaultTimeout time.Duration // no timeout, and every protocol 1.x request; default 1 s
}

// DefaultConfig returns the original server's defaults.
func DefaultConfig() Config {
	return Config{FastLevel: 1, SecureLevel: 40, DefaultLevel: 60, DefaultTimeout: time.Second}
}

// Request is a verify request that passed the protocol's checks.
type Request struct {
	// Version is the protocol version as the original computes it from
	// the request URI: major + minor×0.1 from the first "/wsapi/N.M/", 1.0
	// when there is none. Versions of 2.0 and above behave as 2.0.
	Version float64
	// ClientID is the API client's id (1 to 10 digits, not zero).
	ClientID int64
	// OTP is the normalised OTP: lower case, Dvorak-translated, 32 to 48
	// modhex characters.
	OTP string
	// Nonce is the client's nonce (protocol 2.0), or for protocol 1.x a
	// fresh server nonce from NewServerNonce, as the original stores one.
	Nonce string
	// SyncLevel is the percentage of the sync pool that must confirm the
	// OTP. It may exceed 100 (the original accepts sl=150) and is at most
	// math.MaxInt64; compute with it in floating point.
	SyncLevel int64
	// Timeout is how long to wait for sync answers. A request may give 0;
	// it is kept as given, so servers should bound it.
	Timeout time.Duration
	// Timestamp reports whether the client asked for the timestamp and
	// session counters (timestamp loosely equal to 1 in PHP's sense).
	Timestamp bool
	// H is the request's signature as received (trimmed, backslashes
	// removed), "" for an unsigned request.
	H string
	// Params are all parameters received except h, sorted by key, with
	// their raw values: what the client signed.
	Params []Field
}

// V2 reports whether the request gets protocol 2.0 behaviour.
func (r Request) V2() bool { return r.Version >= 2 }

// Signed reports whether the request carries a signature.
func (r Request) Signed() bool { return r.H != "" }

// SignatureOK reports whether the request may proceed under the client's
// key: true for an unsigned request (the original accepts those), otherwise
// whether H is the signature of Params under key (constant time). A false
// answer is BAD_SIGNATURE, signed with the client's key.
func (r Request) SignatureOK(key []byte) bool {
	return !r.Signed() || Verify(key, r.Params, r.H)
}

// PublicID returns the OTP's public ID: all but its last 32 characters.
func (r Request) PublicID() string { return r.OTP[:len(r.OTP)-TokenLen] }

// Problem is why a verify request was refused before any client lookup.
// The server answers Status, signed with the empty key (nil), with no
// extras.
type Problem struct {
	Status Status // MissingParameter or BadOTP
	Reason string // for logs; never holds a secret or a full OTP
}

// Error returns "val: STATUS: reason".
func (p *Problem) Error() string { return "val: " + string(p.Status) + ": " + p.Reason }

func missing(reason string) *Problem { return &Problem{StatusMissingParameter, reason} }

// ParseRequest checks a verify request with the original server's defaults;
// see Config.ParseRequest.
func ParseRequest(uri string, q url.Values) (Request, *Problem) {
	return DefaultConfig().ParseRequest(uri, q)
}

// ParseRequest checks a verify request as the original server does before it
// connects to its database. uri is the request URI as received (path and
// query, e.g. http.Request.RequestURI): the protocol version comes from its
// first "/wsapi/<digits>.<digits>/", wherever it is. q holds the parameters
// (the query's, or the form body's when the query has none; ParseQuery
// parses them like PHP); of a repeated key the last value counts.
//
// Each value is trimmed of " \t\n\r\x00\x0b" and stripped of every
// backslash; missing values default to "" (id to "0", timestamp to "0"). The
// OTP is lower-cased (ASCII) and, when it consists only of Dvorak modhex,
// translated to modhex. Then, in this order (the first failure wins):
//
//  1. protocol ≥ 2.0 and nonce "" or "0" → MISSING_PARAMETER
//  2. sl given and neither fast/secure (any case) nor a PHP intval ≥ 1 → MISSING_PARAMETER
//  3. timeout given and not all digits → MISSING_PARAMETER
//  4. OTP not 32–48 modhex characters → BAD_OTP
//  5. id not 1–10 digits, or all zeros → MISSING_PARAMETER
//  6. protocol ≥ 2.0 and nonce not 16–40 ASCII letters and digits → MISSING_PARAMETER
//
// Protocol 1.x ignores the request's sl, timeout and nonce: the levels and
// timeout are c's defaults and Nonce is a fresh NewServerNonce.
func (c Config) ParseRequest(uri string, q url.Values) (Request, *Problem) {
	get := func(key, def string) string {
		v := def
		if vs, ok := q[key]; ok && len(vs) > 0 {
			v = vs[len(vs)-1]
		}
		return strings.ReplaceAll(strings.Trim(v, " \t\n\r\x00\x0b"), `\`, "")
	}
	r := Request{
		Version:   protocolVersion(uri),
		SyncLevel: int64(c.DefaultLevel),
		Timeout:   c.DefaultTimeout,
		H:         get("h", ""),
	}
	for _, f := range FieldsFromValues(q) {
		if f.Key != "h" {
			r.Params = append(r.Params, f)
		}
	}
	id := get("id", "0")
	r.Timestamp = phpLooselyOne(get("timestamp", "0"))
	r.OTP = NormalizeOTP(get("otp", ""))

	if r.V2() {
		sl, timeout := get("sl", ""), get("timeout", "")
		r.Nonce = get("nonce", "")
		if r.Nonce == "" || r.Nonce == "0" { // PHP-falsy
			return Request{}, missing("nonce is missing")
		}
		switch {
		case sl == "":
		case strings.EqualFold(sl, "fast"):
			r.SyncLevel = int64(c.FastLevel)
		case strings.EqualFold(sl, "secure"):
			r.SyncLevel = int64(c.SecureLevel)
		default:
			r.SyncLevel = phpIntval(sl)
			if r.SyncLevel < 1 {
				return Request{}, missing("sl is not fast, secure or a number of at least 1")
			}
		}
		if timeout != "" {
			if !allDigits(timeout) {
				return Request{}, missing("timeout is not a number of seconds")
			}
			r.Timeout = secondsDuration(timeout)
		}
	}
	if !ValidOTP(r.OTP) {
		return Request{}, &Problem{StatusBadOTP, "otp is not 32 to 48 modhex characters"}
	}
	if id == "" || len(id) > MaxClientIDLen || !allDigits(id) || strings.Trim(id, "0") == "" {
		return Request{}, missing("id is not a client id")
	}
	r.ClientID, _ = strconv.ParseInt(id, 10, 64) // ≤ 10 digits: fits
	if r.V2() {
		if len(r.Nonce) < MinNonceLen || len(r.Nonce) > MaxNonceLen || !alnum(r.Nonce) {
			return Request{}, missing("nonce is not 16 to 40 letters and digits")
		}
	} else {
		r.Nonce = NewServerNonce()
	}
	return r, nil
}

// NormalizeOTP lower-cases s (ASCII only) and, when every character is of
// the Dvorak modhex alphabet, translates it to modhex, as the original server
// does before checking an OTP. It does not validate.
func NormalizeOTP(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	out, _ := modhex.FromDvorak(string(b))
	return out
}

// ValidOTP reports whether s is an OTP as the verify protocol accepts it:
// 32 to 48 lower-case modhex characters.
func ValidOTP(s string) bool {
	return len(s) >= MinOTPLen && len(s) <= MaxOTPLen && modhex.Valid(s)
}

// NewServerNonce returns 32 random lower-case hex digits: the nonce a server
// stores for a protocol 1.x request, which carries none.
func NewServerNonce() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// protocolVersion finds the first "/wsapi/<digits>.<digits>/" in uri and
// returns major + minor×0.1 computed in floating point, as PHP does (so
// "/wsapi/1.10/" is 2.0); 1.0 when there is none.
func protocolVersion(uri string) float64 {
	const prefix = "/wsapi/"
	for s := uri; ; {
		i := strings.Index(s, prefix)
		if i < 0 {
			return 1.0
		}
		s = s[i+len(prefix):]
		major := leadingDigits(s)
		if major != "" && len(s) > len(major) && s[len(major)] == '.' {
			rest := s[len(major)+1:]
			minor := leadingDigits(rest)
			if minor != "" && len(rest) > len(minor) && rest[len(minor)] == '/' {
				a, _ := strconv.ParseFloat(major, 64)
				b, _ := strconv.ParseFloat(minor, 64)
				return a + b*0.1
			}
		}
		// Not a match here; the next "/wsapi/" may start inside this one's tail.
		s = uri[len(uri)-len(s)-1:]
	}
}

func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// secondsDuration converts a string of digits to that many seconds, capped
// at the largest Duration.
func secondsDuration(digits string) time.Duration {
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n > int64(math.MaxInt64/time.Second) {
		return math.MaxInt64
	}
	return time.Duration(n) * time.Second
}

// phpWhitespace is the whitespace PHP's numeric strings may start (and, since
// PHP 8, end) with.
const phpWhitespace = " \t\n\r\v\f"

// phpNumericPrefix finds the longest prefix of s that PHP reads as a number:
// optional leading whitespace, an optional sign, then digits with an optional
// fraction (or a fraction alone, ".5") and an optional exponent. It returns
// the number's text (sign included, whitespace not), whether it is written
// as an integer (no '.', no exponent), and whether s is a numeric string as a
// whole (only whitespace follows).
func phpNumericPrefix(s string) (num string, integer, whole bool) {
	t := strings.TrimLeft(s, phpWhitespace)
	i := 0
	if i < len(t) && (t[i] == '+' || t[i] == '-') {
		i++
	}
	start := i
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	intDigits := i - start
	integer = true
	if i < len(t) && t[i] == '.' {
		j := i + 1
		for j < len(t) && t[j] >= '0' && t[j] <= '9' {
			j++
		}
		if intDigits > 0 || j > i+1 { // "1." and ".5" are numbers, "." is not
			i, integer = j, false
		}
	}
	if i == start { // no digits at all
		return "", false, false
	}
	if i < len(t) && (t[i] == 'e' || t[i] == 'E') {
		j := i + 1
		if j < len(t) && (t[j] == '+' || t[j] == '-') {
			j++
		}
		k := j
		for k < len(t) && t[k] >= '0' && t[k] <= '9' {
			k++
		}
		if k > j {
			i, integer = k, false
		}
	}
	return t[:i], integer, strings.TrimLeft(t[i:], phpWhitespace) == ""
}

// phpIntval returns PHP 8's intval() of a string: the numeric prefix as an
// integer (fractions truncated toward zero, out-of-range values capped, an
// infinite one 0), or 0 when the string does not start with a number. So
// "50abc" is 50, "1e3" is 1000 and "abc" is 0.
func phpIntval(s string) int64 {
	num, integer, _ := phpNumericPrefix(s)
	if num == "" {
		return 0
	}
	if integer {
		if n, err := strconv.ParseInt(num, 10, 64); err == nil {
			return n
		}
	}
	f, _ := strconv.ParseFloat(num, 64)
	switch {
	case math.IsInf(f, 0) || math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	case f <= math.MinInt64:
		return math.MinInt64
	}
	return int64(f)
}

// phpLooselyOne reports whether PHP 8 finds s == 1: s is a numeric string
// as a whole whose value is 1 ("1", "01", "1.0", "1e0", " 1"). A string that
// is not numeric as a whole ("1abc") is not equal.
func phpLooselyOne(s string) bool {
	num, _, whole := phpNumericPrefix(s)
	if num == "" || !whole {
		return false
	}
	f, err := strconv.ParseFloat(num, 64)
	return err == nil && f == 1
}
