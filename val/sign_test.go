package val

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// ciSecret is the client secret of yubikey-val's CI (spec 5.1, 5.2).
const ciSecret = "EHmo8FMxuhumBlTinC4uYL0Mgwg="

// fieldsOf parses "k=v&k=v" into fields without any decoding.
func fieldsOf(s string) []Field {
	var f []Field
	for _, kv := range strings.Split(s, "&") {
		k, v, _ := strings.Cut(kv, "=")
		f = append(f, Field{k, v})
	}
	return f
}

// The HMAC vectors of spec 5.2, computed with the original sign().
func TestSignVectors(t *testing.T) {
	key := DecodeKey(ciSecret)
	tests := []struct {
		key    []byte
		fields string
		want   string
	}{
		{key, "id=1&nonce=kakakakakakakakakakakaka&otp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku", "ehhpPyH9W/uL5v/1XGd52oN8yMg="},
		{key, "nonce=kakakakakakakakakakakaka&otp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku&sl=0&status=OK&t=2020-01-01T00:00:00Z0000", "QP12HqGPhZ9I2BOum8yw/MQzCwg="},
		{nil, "status=NO_SUCH_CLIENT&t=2020-01-01T00:00:00Z0000", "xoC3X0Jo2I2veey9lcoIFSmPS60="},
		{nil, "status=MISSING_PARAMETER&t=2026-11-22T12:25:09Z0826", "CvmsjCrcmFBCTrgmC1GX6aseXXU="},
		{nil, "status=BACKEND_ERROR&t=2026-11-22T12:25:10Z0022", "i1Ghv0V05T7Vo5EGpHOMidJ009I="},
		{[]byte{}, "status=BACKEND_ERROR&t=2026-11-22T12:25:10Z0022", "i1Ghv0V05T7Vo5EGpHOMidJ009I="},
	}
	for _, tt := range tests {
		f := fieldsOf(tt.fields)
		if got := Sign(tt.key, f); got != tt.want {
			t.Errorf("Sign(%x, %s) = %s, want %s", tt.key, tt.fields, got, tt.want)
		}
		if !Verify(tt.key, f, tt.want) {
			t.Errorf("Verify(%x, %s, %s) = false, want true", tt.key, tt.fields, tt.want)
		}
		// Order of the fields and an h among them do not matter.
		rev := append([]Field{{"h", "ignored"}}, f...)
		for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
			rev[i], rev[j] = rev[j], rev[i]
		}
		if got := Sign(tt.key, rev); got != tt.want {
			t.Errorf("Sign(%x, reversed %s + h) = %s, want %s", tt.key, tt.fields, got, tt.want)
		}
		for _, bad := range []string{"", tt.want[:27], strings.ToLower(tt.want), tt.want + " "} {
			if Verify(tt.key, f, bad) {
				t.Errorf("Verify(%x, %s, %q) = true, want false", tt.key, tt.fields, bad)
			}
		}
	}
}

func TestCanonical(t *testing.T) {
	tests := []struct {
		in   []Field
		want string
	}{
		{nil, ""},
		{[]Field{{"h", "x"}}, ""},
		{[]Field{{"b", "1"}, {"a", "2"}, {"c", "3"}, {"h", "V5Fk"}}, "a=2&b=1&c=3"},
		// Values are raw: spaces, '+', '&' and '=' stay as they are.
		{[]Field{{"otp", " CCCC\\ "}, {"x", "a+b&c=d"}}, "otp= CCCC\\ &x=a+b&c=d"},
		// Equal keys keep their order.
		{[]Field{{"k", "2"}, {"a", "0"}, {"k", "1"}}, "a=0&k=2&k=1"},
		// Bytes >= 0x80 are Latin-1, re-encoded as UTF-8 (utf8_encode).
		{[]Field{{"n", "\xe9"}}, "n=\xc3\xa9"},
		{[]Field{{"n", "é"}}, "n=\xc3\x83\xc2\xa9"},
		{[]Field{{"\xff", "\x80"}}, "\xc3\xbf=\xc2\x80"},
		// Byte order: upper case before lower case, "a" before "ab".
		{[]Field{{"ab", "1"}, {"a", "2"}, {"B", "3"}}, "B=3&a=2&ab=1"},
	}
	for _, tt := range tests {
		if got := Canonical(tt.in); string(got) != tt.want {
			t.Errorf("Canonical(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestDecodeKey(t *testing.T) {
	ci, _ := base64.StdEncoding.DecodeString(ciSecret)
	tests := []struct {
		in   string
		want []byte
	}{
		{ciSecret, ci},
		{"", []byte{}},
		{"Zm9v", []byte("foo")},
		{"YmxhaG9uZ2E=", []byte("blahonga")},
		{"YmxhaG9uZ2E", []byte("blahonga")},       // padding optional
		{"Ym xh\naG9u\tZ2E=", []byte("blahonga")}, // whitespace skipped
		{"Ym=xh=aG9uZ2E==", []byte("blahonga")},   // '=' anywhere skipped
		{"Zm9v!", []byte("foo")},                  // junk skipped
		{"Zm9v-_", []byte("foo")},                 // URL-safe letters are junk to PHP
		{"Z", []byte{}},                           // 6 bits: no whole byte
		{"Zm", []byte("f")},
		{"Zm9", []byte("fo")},
		{"Zh", []byte("f")}, // non-zero trailing bits are dropped, not an error
		{"!!!", []byte{}},
	}
	for _, tt := range tests {
		if got := DecodeKey(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("DecodeKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestFieldsFromValues(t *testing.T) {
	q := url.Values{"otp": {"first", "last"}, "id": {"1"}, "": {"dropped"}, "empty": {}, "h": {"sig"}}
	want := []Field{{"h", "sig"}, {"id", "1"}, {"otp", "last"}}
	if got := FieldsFromValues(q); !reflect.DeepEqual(got, want) {
		t.Errorf("FieldsFromValues(%v) = %q, want %q", q, got, want)
	}
}

func TestParseQuery(t *testing.T) {
	tests := []struct {
		in   string
		want url.Values
	}{
		{"", url.Values{}},
		{"id=1&otp=x", url.Values{"id": {"1"}, "otp": {"x"}}},
		{"id=1&id=2", url.Values{"id": {"2"}}},                         // last wins
		{"a=1;b=2", url.Values{"a": {"1;b=2"}}},                        // ';' is not a separator
		{"h=ab+cd%2B%3d", url.Values{"h": {"ab cd+="}}},                // '+' is a space
		{"a=%zz%4&b=%", url.Values{"a": {"%zz%4"}, "b": {"%"}}},        // bad escapes kept
		{"flag&=x&&k%3D=v=w", url.Values{"flag": {""}, "k=": {"v=w"}}}, // no '=', empty key, '=' in value
		{"n=%E9", url.Values{"n": {"\xe9"}}},                           // raw bytes
	}
	for _, tt := range tests {
		if got := ParseQuery(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseQuery(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// A client signs what it sends; the server recomputes over what it parsed.
// The "+" of a base64 signature must reach the server URL-escaped.
func TestSignOverTheWire(t *testing.T) {
	key := DecodeKey(ciSecret)
	sent := []Field{{"id", "1"}, {"nonce", "kakakakakakakakakakakaka"}, {"otp", "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"}, {"x", "a b+c&d"}}
	h := Sign(key, sent)
	q := url.Values{}
	for _, f := range sent {
		q.Set(f.Key, f.Value)
	}
	q.Set("h", h)
	got := ParseQuery(q.Encode())
	if !Verify(key, FieldsFromValues(got), got.Get("h")) {
		t.Errorf("signature of %v does not verify after ParseQuery(%q)", sent, q.Encode())
	}
}

func FuzzCanonical(f *testing.F) {
	f.Add(ciSecret, "id=1&nonce=kakakakakakakakakakakaka&otp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku", uint64(1))
	f.Add("", "status=NO_SUCH_CLIENT&t=2020-01-01T00:00:00Z0000", uint64(2))
	f.Add("Zm9v", "b=1&a=2&c=3&h=V5FkMYr9GCG9tQA9ihuuybWl99U=", uint64(3))
	f.Add("!", "\xff=\x80&k=&=v", uint64(4))
	f.Fuzz(func(t *testing.T, secret, query string, seed uint64) {
		key := DecodeKey(secret)
		// Distinct keys: the order of equal keys is significant by design.
		seen := map[string]bool{}
		var fields []Field
		for _, kv := range strings.Split(query, "&") {
			k, v, _ := strings.Cut(kv, "=")
			if !seen[k] {
				seen[k] = true
				fields = append(fields, Field{k, v})
			}
		}
		h := Sign(key, fields)
		if len(h) != 28 {
			t.Fatalf("Sign = %q, want 28 characters", h)
		}
		if !Verify(key, fields, h) {
			t.Fatalf("Verify(Sign(%q)) = false", fields)
		}
		perm := append([]Field(nil), fields...)
		rand.New(rand.NewPCG(seed, seed)).Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		if got := Sign(key, perm); got != h {
			t.Fatalf("Sign(%q) = %s, but Sign(%q) = %s", perm, got, fields, h)
		}
		if c := Canonical(fields); len(fields) > 1 || len(fields) == 1 && fields[0].Key != "h" {
			if !bytes.Contains(c, []byte("=")) {
				t.Fatalf("Canonical(%q) = %q has no '='", fields, c)
			}
		}
		_ = ParseQuery(query)
	})
}
