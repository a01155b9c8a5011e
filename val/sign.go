package val

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"net/url"
	"slices"
	"strings"
)

// Field is one key=value parameter of a request or a response.
type Field struct{ Key, Value string }

// Canonical returns the message the validation protocol signs for fields:
// every field except "h", ordered by key (byte order; fields with equal keys
// keep their relative order), written "key=value" and joined with "&",
// values exactly as given (already URL-decoded, not trimmed). Like the
// original server, which passes the message through PHP's utf8_encode, every
// byte of 0x80 or above is taken as a Latin-1 character and re-encoded as
// two UTF-8 bytes; ASCII messages are unchanged.
//
// Byte order equals PHP's ksort for every key that does not look like a
// number; the original's numeric-key ordering is not emulated.
func Canonical(fields []Field) []byte {
	sorted := make([]Field, 0, len(fields))
	for _, f := range fields {
		if f.Key != "h" {
			sorted = append(sorted, f)
		}
	}
	slices.SortStableFunc(sorted, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	var msg []byte
	for i, f := range sorted {
		if i > 0 {
			msg = append(msg, '&')
		}
		msg = appendLatin1AsUTF8(msg, f.Key)
		msg = append(msg, '=')
		msg = appendLatin1AsUTF8(msg, f.Value)
	}
	return msg
}

// appendLatin1AsUTF8 appends s to b, re-encoding bytes >= 0x80 as the UTF-8
// form of the Latin-1 character they stand for (PHP's utf8_encode).
func appendLatin1AsUTF8(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x80 {
			b = append(b, c)
			continue
		}
		b = append(b, 0xc0|c>>6, 0x80|c&0x3f)
	}
	return b
}

// Sign returns the signature of fields under key: the standard base64 (with
// padding, 28 characters) of HMAC-SHA1(key, Canonical(fields)). A nil or
// empty key is the "empty key" the original signs its early errors with.
func Sign(key []byte, fields []Field) string {
	m := hmac.New(sha1.New, key)
	m.Write(Canonical(fields))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Verify reports whether h is the signature of fields under key. It compares
// in constant time, and h must be exactly the form Sign produces (the
// original compares the base64 strings too).
func Verify(key []byte, fields []Field, h string) bool {
	return hmac.Equal([]byte(Sign(key, fields)), []byte(h))
}

// FieldsFromValues turns query or form values into the fields the original
// server sees: for a key given several times only the last value counts (as
// in PHP's $_GET), and an empty key is dropped (PHP never registers one). The
// result is sorted by key.
func FieldsFromValues(q url.Values) []Field {
	fields := make([]Field, 0, len(q))
	for k, vs := range q {
		if k == "" || len(vs) == 0 {
			continue
		}
		fields = append(fields, Field{k, vs[len(vs)-1]})
	}
	slices.SortFunc(fields, func(a, b Field) int { return strings.Compare(a.Key, b.Key) })
	return fields
}

// DecodeKey decodes an API secret (the clients table's base64 secret) into
// the HMAC key, as leniently as PHP's base64_decode in its default mode: '='
// anywhere and every byte outside the standard base64 alphabet (whitespace,
// '-', '_', …) are skipped, and a trailing group too short to make a whole
// byte is dropped. It never fails: a secret of garbage is a short or empty
// key, exactly as on the original server. A well-formed 28-character secret
// decodes to its 20 bytes.
func DecodeKey(secret string) []byte {
	out := make([]byte, 0, len(secret)*3/4)
	var acc uint32 // pending bits, most significant first
	nbits := 0
	for i := 0; i < len(secret); i++ {
		v := base64Value(secret[i])
		if v < 0 {
			continue
		}
		acc = acc<<6 | uint32(v)
		nbits += 6
		if nbits >= 8 {
			nbits -= 8
			out = append(out, byte(acc>>nbits))
			acc &= 1<<nbits - 1
		}
	}
	return out
}

// base64Value returns the 6-bit value of a standard base64 character, or -1.
func base64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}

// ParseQuery parses a URL query string (or an
// application/x-www-form-urlencoded body) the way PHP fills $_GET, so that
// no input is lost before the protocol can answer it: pairs are separated by
// '&' only (';' is an ordinary character), "+" is a space, "%XX" with two hex
// digits is that byte and any other '%' stays as it is, a pair without '=' has
// an empty value, a pair with an empty key is dropped, and of repeated keys
// the last wins. Unlike net/url.ParseQuery it never fails. PHP's renaming of
// keys holding '.', ' ' or '[' is not emulated.
func ParseQuery(raw string) url.Values {
	q := url.Values{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k = phpURLDecode(k)
		if k == "" {
			continue
		}
		q[k] = []string{phpURLDecode(v)}
	}
	return q
}

// phpURLDecode decodes like PHP's urldecode: '+' is a space, %XX is a byte,
// and a '%' not followed by two hex digits is kept literally.
func phpURLDecode(s string) string {
	if !strings.ContainsAny(s, "+%") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b = append(b, ' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}
