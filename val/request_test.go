package val

import (
	"math"
	"strings"
	"testing"
	"time"
)

const (
	ciOTP   = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"
	ciNonce = "kakakakakakakakakakakaka"
	v2URI   = "/wsapi/2.0/verify"
	v1URI   = "/wsapi/verify"
)

func TestProtocolVersion(t *testing.T) {
	tests := []struct {
		uri  string
		want float64
	}{
		{"/wsapi/2.0/verify", 2.0},
		{"/wsapi/2.0/verify?id=1", 2.0},
		{"/wsapi/verify", 1.0},
		{"/wsapi/verify?x=/wsapi/2.0/", 2.0}, // anywhere in the URI, as the original's regex
		{"/wsapi/1.1/verify", 1.1},
		{"/wsapi/1.10/verify", 2.0}, // 1 + 10×0.1
		{"/wsapi/3.0/verify", 3.0},
		{"/wsapi/02.0/verify", 2.0},
		{"/wsapi/2./verify", 1.0},
		{"/wsapi/.0/verify", 1.0},
		{"/wsapi/2.0", 1.0}, // no trailing slash
		{"/wsapi/x/wsapi/2.0/verify", 2.0},
		{"/wsapi/wsapi/2.0/verify", 2.0}, // matches overlap: the second "/wsapi/" starts at the first one's last slash
		{"/wsapi//wsapi/2.0/verify", 2.0},
		{"/ws/2.0/verify", 1.0},
		{"", 1.0},
	}
	for _, tt := range tests {
		if got := protocolVersion(tt.uri); math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("protocolVersion(%q) = %v, want %v", tt.uri, got, tt.want)
		}
	}
}

// The version is computed in floating point like PHP: 1.10 lands exactly on 2.0.
func TestProtocolVersionV2Threshold(t *testing.T) {
	for uri, want := range map[string]bool{"/wsapi/1.10/verify": true, "/wsapi/1.9/verify": false, "/wsapi/2.0/verify": true} {
		if got := protocolVersion(uri) >= 2; got != want {
			t.Errorf("protocolVersion(%q) >= 2 = %v, want %v", uri, got, want)
		}
	}
}

// The checks of spec 2.3/2.6 steps 1–6 and spec 3.4, in order.
func TestParseRequestProblems(t *testing.T) {
	long := strings.Repeat("a", 41)
	tests := []struct {
		name  string
		uri   string
		query string
		want  Status // "" = accepted
	}{
		{"ok", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce, ""},
		{"no nonce", v2URI, "id=1&otp=" + ciOTP, StatusMissingParameter},
		{"empty nonce", v2URI, "id=1&otp=" + ciOTP + "&nonce=", StatusMissingParameter},
		{"nonce 0 is falsy", v2URI, "id=1&otp=" + ciOTP + "&nonce=0", StatusMissingParameter},
		{"nonce blank after trim", v2URI, "id=1&otp=" + ciOTP + "&nonce=%20%5C%20", StatusMissingParameter},
		{"short nonce", v2URI, "id=1&otp=" + ciOTP + "&nonce=short", StatusMissingParameter},
		{"nonce 15", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + strings.Repeat("a", 15), StatusMissingParameter},
		{"nonce 16", v2URI, "id=1&otp=" + ciOTP + "&nonce=bakabakabakabaka", ""},
		{"nonce 40", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + long[:40], ""},
		{"nonce 41", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + long, StatusMissingParameter},
		{"nonce not alnum", v2URI, "id=1&otp=" + ciOTP + "&nonce=kakakakakakakaka-", StatusMissingParameter},
		{"nonce backslashes removed", v2URI, "id=1&otp=" + ciOTP + "&nonce=kakakaka%5Ckakakaka", ""},
		{"missing nonce beats bad otp", v2URI, "id=1&otp=idkf", StatusMissingParameter},
		{"sl=0", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=0", StatusMissingParameter},
		{"sl=-5", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=-5", StatusMissingParameter},
		{"sl=abc", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=abc", StatusMissingParameter},
		{"sl=150", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=150", ""},
		{"sl=50abc", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=50abc", ""},
		{"sl=FAST", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=FAST", ""},
		{"sl empty is default", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&sl=", ""},
		{"bad sl beats bad otp", v2URI, "id=1&otp=x&nonce=" + ciNonce + "&sl=0", StatusMissingParameter},
		{"timeout=1.5", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&timeout=1.5", StatusMissingParameter},
		{"timeout=-1", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&timeout=-1", StatusMissingParameter},
		{"timeout=0", v2URI, "id=1&otp=" + ciOTP + "&nonce=" + ciNonce + "&timeout=0", ""},
		{"bad timeout beats bad otp", v2URI, "id=1&otp=x&nonce=" + ciNonce + "&timeout=x", StatusMissingParameter},
		{"short otp", v2URI, "id=1&otp=idkf&nonce=" + ciNonce, StatusBadOTP},
		{"no otp", v2URI, "id=1&nonce=" + ciNonce, StatusBadOTP},
		{"otp 31", v2URI, "id=1&otp=" + ciOTP[13:] + "&nonce=" + ciNonce, StatusBadOTP},
		{"otp 32", v2URI, "id=1&otp=" + ciOTP[12:] + "&nonce=" + ciNonce, ""},
		{"otp 48", v2URI, "id=1&otp=cccc" + ciOTP + "&nonce=" + ciNonce, ""},
		{"otp 49", v2URI, "id=1&otp=ccccc" + ciOTP + "&nonce=" + ciNonce, StatusBadOTP},
		{"otp not modhex", v2URI, "id=1&otp=a" + ciOTP[1:] + "&nonce=" + ciNonce, StatusBadOTP},
		{"otp upper case", v2URI, "id=1&otp=" + strings.ToUpper(ciOTP) + "&nonce=" + ciNonce, ""},
		{"otp padded", v2URI, "id=1&otp=%20%09" + ciOTP + "%0D%0A&nonce=" + ciNonce, ""},
		{"bad otp beats bad id", v2URI, "id=abc&otp=x&nonce=" + ciNonce, StatusBadOTP},
		{"upper-case otp passes, then bad id", v2URI, "id=abc&otp=" + strings.ToUpper(ciOTP) + "&nonce=" + ciNonce, StatusMissingParameter},
		{"no id", v2URI, "otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"empty id", v2URI, "id=&otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"id 0", v2URI, "id=0&otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"id 000", v2URI, "id=000&otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"id 007", v2URI, "id=007&otp=" + ciOTP + "&nonce=" + ciNonce, ""},
		{"id 10 digits", v2URI, "id=9999999999&otp=" + ciOTP + "&nonce=" + ciNonce, ""},
		{"id 11 digits", v2URI, "id=10000000000&otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"id negative", v2URI, "id=-1&otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"id 1.0", v2URI, "id=1.0&otp=" + ciOTP + "&nonce=" + ciNonce, StatusMissingParameter},
		{"bad id beats bad nonce", v2URI, "id=x&otp=" + ciOTP + "&nonce=short", StatusMissingParameter},
		// Protocol 1.x: sl, timeout and nonce are not read.
		{"v1 ok", v1URI, "id=1&otp=" + ciOTP, ""},
		{"v1 bad sl, timeout, nonce ignored", v1URI, "id=1&otp=" + ciOTP + "&sl=0&timeout=x&nonce=short", ""},
		{"v1 short otp", v1URI, "otp=xx", StatusBadOTP},
		{"v1.1 no nonce", "/wsapi/1.1/verify", "id=1&otp=" + ciOTP, ""},
		{"v3 needs nonce", "/wsapi/3.0/verify", "id=1&otp=" + ciOTP, StatusMissingParameter},
		{"empty request", v2URI, "", StatusMissingParameter},
		{"empty v1 request", v1URI, "", StatusBadOTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p := ParseRequest(tt.uri, ParseQuery(tt.query))
			var got Status
			if p != nil {
				got = p.Status
				if p.Reason == "" || !strings.Contains(p.Error(), string(p.Status)) {
					t.Errorf("Problem = %#v, want a reason and an Error naming the status", p)
				}
			}
			if got != tt.want {
				t.Errorf("ParseRequest(%q, %q) status = %q (%v), want %q", tt.uri, tt.query, got, p, tt.want)
			}
		})
	}
}

func TestParseRequestValues(t *testing.T) {
	cfg := Config{FastLevel: 2, SecureLevel: 41, DefaultLevel: 61, DefaultTimeout: 3 * time.Second}
	base := "id=0042&otp=" + ciOTP + "&nonce=" + ciNonce
	tests := []struct {
		uri, query string
		want       Request // Params and H checked separately; Nonce "" = any fresh server nonce
	}{
		{v2URI, base, Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 61, Timeout: 3 * time.Second}},
		{v2URI, base + "&sl=fast&timeout=7", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 2, Timeout: 7 * time.Second}},
		{v2URI, base + "&sl=SeCuRe", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 41, Timeout: 3 * time.Second}},
		{v2URI, base + "&sl=50abc&timeout=0", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 50, Timeout: 0}},
		{v2URI, base + "&sl=150&timestamp=1", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 150, Timeout: 3 * time.Second, Timestamp: true}},
		{v2URI, base + "&sl=1e3&timestamp=1.0", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 1000, Timeout: 3 * time.Second, Timestamp: true}},
		{v2URI, base + "&timestamp=2", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 61, Timeout: 3 * time.Second}},
		{v2URI, base + "&timestamp=on", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 61, Timeout: 3 * time.Second}},
		{v2URI, base + "&timeout=99999999999999999999", Request{Version: 2, ClientID: 42, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 61, Timeout: math.MaxInt64}},
		// Upper case and Dvorak are normalised.
		{v2URI, "id=1&otp=" + strings.ToUpper(ciOTP) + "&nonce=" + ciNonce, Request{Version: 2, ClientID: 1, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 61, Timeout: 3 * time.Second}},
		{v2URI, "id=1&otp=" + toDvorak(ciOTP) + "&nonce=" + ciNonce, Request{Version: 2, ClientID: 1, OTP: ciOTP, Nonce: ciNonce, SyncLevel: 61, Timeout: 3 * time.Second}},
		// Protocol 1.x: defaults whatever the request says, and a server nonce.
		{v1URI, "id=1&otp=" + ciOTP + "&sl=5&timeout=9&nonce=" + ciNonce + "&timestamp=01", Request{Version: 1, ClientID: 1, OTP: ciOTP, SyncLevel: 61, Timeout: 3 * time.Second, Timestamp: true}},
	}
	for _, tt := range tests {
		got, p := cfg.ParseRequest(tt.uri, ParseQuery(tt.query))
		if p != nil {
			t.Errorf("ParseRequest(%q, %q) = %v", tt.uri, tt.query, p)
			continue
		}
		if tt.want.Nonce == "" {
			if len(got.Nonce) != 32 || strings.Trim(got.Nonce, "0123456789abcdef") != "" {
				t.Errorf("ParseRequest(%q, %q).Nonce = %q, want 32 hex digits", tt.uri, tt.query, got.Nonce)
			}
			tt.want.Nonce = got.Nonce
		}
		got.Params, got.H = nil, ""
		if got.Version != tt.want.Version || got.ClientID != tt.want.ClientID || got.OTP != tt.want.OTP ||
			got.Nonce != tt.want.Nonce || got.SyncLevel != tt.want.SyncLevel || got.Timeout != tt.want.Timeout ||
			got.Timestamp != tt.want.Timestamp {
			t.Errorf("ParseRequest(%q, %q) = %+v, want %+v", tt.uri, tt.query, got, tt.want)
		}
	}
}

func toDvorak(s string) string {
	return strings.NewReplacer(
		"c", "j", "b", "x", "d", "e", "e", ".", "f", "u", "g", "i", "h", "d", "i", "c",
		"j", "h", "k", "t", "l", "n", "n", "b", "r", "p", "t", "y", "u", "g", "v", "k").Replace(s)
}

func TestParseRequestV1NoncesDiffer(t *testing.T) {
	a, _ := ParseRequest(v1URI, ParseQuery("id=1&otp="+ciOTP))
	b, _ := ParseRequest(v1URI, ParseQuery("id=1&otp="+ciOTP))
	if a.Nonce == b.Nonce {
		t.Errorf("two v1 requests got the same server nonce %q", a.Nonce)
	}
}

// The signature covers every raw parameter (not the normalised values) except h.
func TestParseRequestSignature(t *testing.T) {
	key := DecodeKey(ciSecret)
	// spec 5.2: id=1&nonce=…&otp=… → ehhpPyH9W/uL5v/1XGd52oN8yMg=
	signed := "id=1&nonce=" + ciNonce + "&otp=" + ciOTP + "&h=ehhpPyH9W%2FuL5v%2F1XGd52oN8yMg%3D"
	tests := []struct {
		query  string
		signed bool
		ok     bool
	}{
		{signed, true, true},
		{"id=1&nonce=" + ciNonce + "&otp=" + ciOTP, false, true}, // unsigned: always accepted
		{"h=&id=1&nonce=" + ciNonce + "&otp=" + ciOTP, false, true},
		{signed + "&timestamp=1", true, false},                     // extra parameter not signed
		{strings.Replace(signed, "id=1", "id=01", 1), true, false}, // raw value counts
		{strings.Replace(signed, "otp=idkf", "otp=IDKF", 1), true, false},
		{strings.Replace(signed, "%2F", "/", 1), true, true},      // '/' need not be escaped
		{strings.Replace(signed, "%3D", "=", 1), true, true},      // nor '='
		{strings.Replace(signed, "%3D", "%3D%5C", 1), true, true}, // h loses its backslashes…
		{strings.Replace(signed, "h=", "h=%20", 1), true, true},   // …and surrounding blanks
		{"id=1&nonce=" + ciNonce + "&otp=" + ciOTP + "&h=ehhpPyH9W/uL5v/1XGd52oN8yMg", true, false},
	}
	for _, tt := range tests {
		r, p := ParseRequest(v2URI, ParseQuery(tt.query))
		if p != nil {
			t.Fatalf("ParseRequest(%q) = %v", tt.query, p)
		}
		if r.Signed() != tt.signed {
			t.Errorf("ParseRequest(%q).Signed() = %v, want %v", tt.query, r.Signed(), tt.signed)
		}
		if got := r.SignatureOK(key); got != tt.ok {
			t.Errorf("ParseRequest(%q).SignatureOK(key) = %v, want %v", tt.query, got, tt.ok)
		}
		for _, f := range r.Params {
			if f.Key == "h" {
				t.Errorf("ParseRequest(%q).Params holds h", tt.query)
			}
		}
	}
	// Signing with the wrong key fails.
	r, _ := ParseRequest(v2URI, ParseQuery(signed))
	if r.SignatureOK(DecodeKey("Zm9v")) {
		t.Errorf("SignatureOK(wrong key) = true")
	}
	if r.PublicID() != "idkfefrdhtru" {
		t.Errorf("PublicID() = %q, want idkfefrdhtru", r.PublicID())
	}
}

func TestPHPNumeric(t *testing.T) {
	tests := []struct {
		in      string
		intval  int64
		isOne   bool
		numeric bool // numeric as a whole
	}{
		{"1", 1, true, true},
		{"01", 1, true, true},
		{"1.0", 1, true, true},
		{"1e0", 1, true, true},
		{"0.1e1", 1, true, true},
		{"+1", 1, true, true},
		{" 1", 1, true, true},
		{"1 ", 1, true, true},
		{"\f1\v", 1, true, true},
		{"1.", 1, true, true},
		{".5", 0, false, true},
		{"1.9", 1, false, true},
		{"-1.9", -1, false, true},
		{"00000000000000000000001", 1, true, true},
		{"1.00000000000000000001", 1, true, true},
		{"1abc", 1, false, false},
		{"1e", 1, false, false},
		{"1e+", 1, false, false},
		{"1x0", 1, false, false},
		{"0x1", 0, false, false},
		{"50abc", 50, false, false},
		{"1e3", 1000, false, true},
		{"1e3x", 1000, false, false},
		{"150", 150, false, true},
		{"0", 0, false, true},
		{"-5", -5, false, true},
		{"", 0, false, false},
		{" ", 0, false, false},
		{".", 0, false, false},
		{"-", 0, false, false},
		{"+.e1", 0, false, false},
		{"abc", 0, false, false},
		{"on", 0, false, false},
		{"true", 0, false, false},
		{"9223372036854775807", math.MaxInt64, false, true},
		{"9223372036854775808", math.MaxInt64, false, true},
		{"99999999999999999999", math.MaxInt64, false, true},
		{"-99999999999999999999", math.MinInt64, false, true},
		{"1e1000", 0, false, true}, // infinite: 0
		{"1e-1000", 0, false, true},
	}
	for _, tt := range tests {
		if got := phpIntval(tt.in); got != tt.intval {
			t.Errorf("phpIntval(%q) = %d, want %d", tt.in, got, tt.intval)
		}
		if got := phpLooselyOne(tt.in); got != tt.isOne {
			t.Errorf("phpLooselyOne(%q) = %v, want %v", tt.in, got, tt.isOne)
		}
		num, _, whole := phpNumericPrefix(tt.in)
		if got := num != "" && whole; got != tt.numeric {
			t.Errorf("phpNumericPrefix(%q) numeric = %v, want %v", tt.in, got, tt.numeric)
		}
	}
}

func TestNormalizeOTP(t *testing.T) {
	tests := []struct{ in, want string }{
		{ciOTP, ciOTP},
		{strings.ToUpper(ciOTP), ciOTP},
		{toDvorak(ciOTP), ciOTP},
		{strings.ToUpper(toDvorak(ciOTP)), ciOTP},
		{"", ""},
		{"ÉCCC", "Éccc"}, // non-ASCII untouched
		{"jxe.", "cbde"},
		{"jxe.z", "jxe.z"}, // not all Dvorak: unchanged
	}
	for _, tt := range tests {
		if got := NormalizeOTP(tt.in); got != tt.want {
			t.Errorf("NormalizeOTP(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(v2URI, "id=1&otp="+ciOTP+"&nonce="+ciNonce)
	f.Add(v2URI, "id=1&otp="+ciOTP+"&nonce="+ciNonce+"&sl=50abc&timeout=3&timestamp=1e0&h=ehhpPyH9W%2FuL5v%2F1XGd52oN8yMg%3D")
	f.Add(v1URI, "id=1&otp="+strings.ToUpper(ciOTP)+"&sl=0")
	f.Add("/wsapi/1.10/verify", "id=000&otp=x&nonce=0")
	f.Add("/wsapi/2.0/verify?x", "a=1;b=2&%zz=%&otp=%E9")
	f.Fuzz(func(t *testing.T, uri, query string) {
		r, p := ParseRequest(uri, ParseQuery(query))
		if p != nil {
			if p.Status != StatusMissingParameter && p.Status != StatusBadOTP {
				t.Fatalf("ParseRequest(%q, %q) status %q", uri, query, p.Status)
			}
			return
		}
		if !ValidOTP(r.OTP) || r.ClientID < 1 || r.ClientID > 9999999999 || r.SyncLevel < 1 || r.Timeout < 0 {
			t.Fatalf("ParseRequest(%q, %q) accepted %+v", uri, query, r)
		}
		if len(r.Nonce) < MinNonceLen || len(r.Nonce) > MaxNonceLen || !alnum(r.Nonce) {
			t.Fatalf("ParseRequest(%q, %q) accepted nonce %q", uri, query, r.Nonce)
		}
		_ = r.PublicID()
		_ = r.SignatureOK(nil)
		_ = r.Extras(StatusOK, 0, Decrypted{})
	})
}
