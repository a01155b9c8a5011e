package e2e_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
)

// toDvorak writes a modhex string as a key typing on a Dvorak layout does.
func toDvorak(s string) string {
	b := []byte(s)
	for i, c := range b {
		b[i] = modhex.DvorakAlphabet[strings.IndexByte(modhex.Alphabet, c)]
	}
	return string(b)
}

// ruleCase is one verify request and its expected answer. In query and
// extras, {otp} stands for a fresh OTP of the CI key.
type ruleCase struct {
	name   string
	path   string // "" is /wsapi/2.0/verify
	query  string
	status val.Status
	extras []string // the fields between t and status, exactly
}

// ksmVerdicts are the cases whose BAD_OTP is the KSM's verdict, signed with
// the client's key; the other BAD_OTPs of the table are format errors.
var ksmVerdicts = map[string]bool{"corrupt otp": true, "unknown key": true}

// early reports whether the answer comes before the client is loaded, so is
// signed with the empty key (and carries no extras).
func (c ruleCase) early() bool {
	switch c.status {
	case val.StatusMissingParameter, val.StatusNoSuchClient:
		return true
	case val.StatusBadOTP:
		return !ksmVerdicts[c.name]
	}
	return false
}

var (
	okV2 = []string{"otp={otp}", "nonce=" + nonceKaka, "sl=0"}
	trio = []string{"timestamp=69640", "sessioncounter=3", "sessionuse=0"} // of ciToken(3, 0)
)

// ruleCases covers every row of spec 2.3's parameter table, spec 3.4's
// re-verified behaviours and 2.6's check order.
var ruleCases = []ruleCase{
	// nonce (v2 only)
	{"no nonce", "", "id=1&otp={otp}", val.StatusMissingParameter, nil},
	{"empty nonce", "", "id=1&otp={otp}&nonce=", val.StatusMissingParameter, nil},
	{"nonce 0", "", "id=1&otp={otp}&nonce=0", val.StatusMissingParameter, nil},
	{"nonce short", "", "id=1&otp={otp}&nonce=short", val.StatusMissingParameter, nil},
	{"nonce 15", "", "id=1&otp={otp}&nonce=kakakakakakakak", val.StatusMissingParameter, nil},
	{"nonce 41", "", "id=1&otp={otp}&nonce=" + strings.Repeat("k", 41), val.StatusMissingParameter, nil},
	{"nonce not alnum", "", "id=1&otp={otp}&nonce=kakakakakakaka-ka", val.StatusMissingParameter, nil},
	{"nonce 16", "", "id=1&otp={otp}&nonce=" + nonceBaka, val.StatusOK, []string{"otp={otp}", "nonce=" + nonceBaka, "sl=0"}},
	{"nonce 40", "", "id=1&otp={otp}&nonce=" + strings.Repeat("Ab9", 13) + "x", val.StatusOK, []string{"otp={otp}", "nonce=" + strings.Repeat("Ab9", 13) + "x", "sl=0"}},
	{"nonce trimmed", "", "id=1&otp={otp}&nonce=%20" + nonceKaka + "%0A", val.StatusOK, okV2},

	// sl (v2 only)
	{"sl 0", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=0", val.StatusMissingParameter, nil},
	{"sl negative", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=-5", val.StatusMissingParameter, nil},
	{"sl word", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=abc", val.StatusMissingParameter, nil},
	{"sl fast", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=fast", val.StatusOK, okV2},
	{"sl SECURE", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=SECURE", val.StatusOK, okV2},
	{"sl 1", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=1", val.StatusOK, okV2},
	{"sl 150", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=150", val.StatusOK, okV2},
	{"sl 50abc", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&sl=50abc", val.StatusOK, okV2},

	// timeout (v2 only)
	{"timeout fraction", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timeout=1.5", val.StatusMissingParameter, nil},
	{"timeout word", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timeout=abc", val.StatusMissingParameter, nil},
	{"timeout negative", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timeout=-1", val.StatusMissingParameter, nil},
	{"timeout 5", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timeout=5", val.StatusOK, okV2},
	{"timeout 0", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timeout=0", val.StatusOK, okV2},

	// otp
	{"no otp", "", "id=1&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"otp short", "", "id=1&otp=idkf&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"otp 31", "", "id=1&otp=" + line1[13:] + "&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"otp 49", "", "id=1&otp=c" + line1 + "ccccc&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"otp not modhex", "", "id=1&otp=" + strings.Replace(line1, "t", "a", 1) + "&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"otp upper case", "", "id=1&otp={OTP}&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"otp Dvorak", "", "id=1&otp={dvorak}&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"otp Dvorak upper case", "", "id=1&otp={DVORAK}&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"otp padded, backslashes", "", "id=1&otp=%20%5C{otp}%5C%09&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"corrupt otp", "", "id=1&otp=" + line1[:43] + "v&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"unknown key", "", "id=1&otp=c" + line1[1:] + "&nonce=" + nonceKaka, val.StatusBadOTP, nil},

	// id
	{"no id", "", "otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id 0", "", "id=0&otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id 00", "", "id=00&otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id word", "", "id=abc&otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id negative", "", "id=-1&otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id fraction", "", "id=1.0&otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id 11 digits", "", "id=00000000001&otp={otp}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"id 10 digits", "", "id=0000000001&otp={otp}&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"id unknown", "", "id=9999999999&otp={otp}&nonce=" + nonceKaka, val.StatusNoSuchClient, nil},

	// timestamp: on iff PHP finds it == 1
	{"timestamp 1", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timestamp=1", val.StatusOK, append(okV2[:3:3], trio...)},
	{"timestamp 01", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timestamp=01", val.StatusOK, append(okV2[:3:3], trio...)},
	{"timestamp 1.0", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timestamp=1.0", val.StatusOK, append(okV2[:3:3], trio...)},
	{"timestamp 1e0", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timestamp=1e0", val.StatusOK, append(okV2[:3:3], trio...)},
	{"timestamp 2", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timestamp=2", val.StatusOK, okV2},
	{"timestamp 1abc", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&timestamp=1abc", val.StatusOK, okV2},

	// other parameters are ignored (but signed: see TestSignedRequests)
	{"unknown parameter", "", "id=1&otp={otp}&nonce=" + nonceKaka + "&foo=bar", val.StatusOK, okV2},

	// check order: nonce-missing → sl → timeout → otp → id → nonce format
	{"no nonce before bad otp", "", "id=1&otp=idkf", val.StatusMissingParameter, nil},
	{"bad sl before bad otp", "", "id=1&otp=idkf&nonce=" + nonceKaka + "&sl=0", val.StatusMissingParameter, nil},
	{"bad timeout before bad otp", "", "id=1&otp=idkf&nonce=" + nonceKaka + "&timeout=x", val.StatusMissingParameter, nil},
	{"bad otp before bad id", "", "id=abc&otp=idkf&nonce=" + nonceKaka, val.StatusBadOTP, nil},
	{"bad otp before bad nonce", "", "id=1&otp=idkf&nonce=short", val.StatusBadOTP, nil},
	{"bad id, upper-case otp", "", "id=abc&otp={OTP}&nonce=" + nonceKaka, val.StatusMissingParameter, nil},
	{"bad nonce before unknown client", "", "id=2&otp={otp}&nonce=short", val.StatusMissingParameter, nil},

	// protocol versions
	{"v1", "/wsapi/verify", "id=1&otp={otp}", val.StatusOK, nil},
	{"v1 timestamp", "/wsapi/verify", "id=1&otp={otp}&timestamp=1", val.StatusOK, trio},
	{"v1 ignores sl, timeout, nonce", "/wsapi/verify", "id=1&otp={otp}&sl=0&timeout=1.5&nonce=short", val.StatusOK, nil},
	{"v1 bad otp", "/wsapi/verify", "id=1&otp=xx", val.StatusBadOTP, nil},
	{"v1 bad id", "/wsapi/verify", "id=x&otp={otp}", val.StatusMissingParameter, nil},
	{"v1.1", "/wsapi/1.1/verify", "id=1&otp={otp}", val.StatusOK, nil},
	{"v1 .php", "/wsapi/verify.php", "id=1&otp={otp}", val.StatusOK, nil},
	{"v2 .php", "/wsapi/2.0/verify.php", "id=1&otp={otp}&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"v3", "/wsapi/3.0/verify", "id=1&otp={otp}&nonce=" + nonceKaka, val.StatusOK, okV2},
	{"v3 needs a nonce", "/wsapi/3.0/verify", "id=1&otp={otp}", val.StatusMissingParameter, nil},
}

// expand fills in a fresh OTP.
func expand(s, fresh string) string {
	return strings.NewReplacer("{otp}", fresh, "{OTP}", strings.ToUpper(fresh),
		"{dvorak}", toDvorak(fresh), "{DVORAK}", strings.ToUpper(toDvorak(fresh))).Replace(s)
}

// TestParameterRules sends every case of ruleCases, each with a fresh OTP
// at counter 3 (every case gets a fresh server state), and checks the status,
// the key it is signed with and the exact fields.
func TestParameterRules(t *testing.T) {
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			for i, tt := range ruleCases {
				// Each case's OTP is after the previous case's.
				fresh := mint(3, uint8(i))
				path := tt.path
				if path == "" {
					path = "/wsapi/2.0/verify"
				}
				q := expand(tt.query, fresh)
				body, _ := s.get(t, path+"?"+q)
				key := clientKey
				if tt.early() {
					key = nil
				}
				var fields []string
				for _, f := range tt.extras {
					fields = append(fields, expand(f, fresh))
				}
				if tt.status == val.StatusOK && hasTrio(tt.extras) {
					fields = fixTrio(fields, i)
				}
				fields = append(fields, "status="+string(tt.status))
				want := crlfBody(sign(key, fields...), fields...)
				if body != want {
					t.Errorf("%s: GET %s?%s =\n%q\nwant\n%q", tt.name, path, q, body, want)
				}
			}
		})
	}
}

func hasTrio(fields []string) bool {
	for _, f := range fields {
		if strings.HasPrefix(f, "timestamp=") {
			return true
		}
	}
	return false
}

// fixTrio rewrites the timestamp trio for the token ciToken(3, use).
func fixTrio(fields []string, use int) []string {
	tok := ciToken(3, uint8(use))
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f, "timestamp="):
			f = "timestamp=" + itoa(int(tok.Timestamp()))
		case strings.HasPrefix(f, "sessionuse="):
			f = "sessionuse=" + itoa(use)
		}
		out = append(out, f)
	}
	return out
}

func itoa(n int) string { return strconv.Itoa(n) }
