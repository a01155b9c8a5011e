package ksmserver

import "strings"

// formValue returns the last value of the parameter name in an
// application/x-www-form-urlencoded string, decoded the way PHP decodes
// $_GET and $_POST: pairs split on '&', '+' is a space, "%XX" is a byte and a
// '%' not followed by two hex digits stays as it is. Unlike url.ParseQuery it
// never rejects a pair (PHP does not either) and it allocates only when the
// value needs decoding.
func formValue(query, name string) (value string, ok bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k == name || (strings.ContainsAny(k, "%+") && phpDecode(k) == name) {
			value, ok = v, true
		}
	}
	if ok {
		value = phpDecode(value)
	}
	return value, ok
}

// phpDecode decodes like PHP's urldecode.
func phpDecode(s string) string {
	if !strings.ContainsAny(s, "%+") {
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
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}
