package seal

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzAppendDecoded: the strict decoder agrees with encoding/base64's
// strict unpadded base64url, except that it also refuses CR and LF (which
// encoding/base64 skips).
func FuzzAppendDecoded(f *testing.F) {
	for _, s := range []string{"", "A", "AA", "AB", "AAA", "AAB", "AAAA", "-_-_", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9v\nYmE", "Zm9v=", "+/+/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := appendDecoded([]byte("x"), s)
		want, err := base64.RawURLEncoding.Strict().DecodeString(s)
		if strings.ContainsAny(s, "\r\n") {
			if ok {
				t.Fatalf("appendDecoded(%q) accepted a line break", s)
			}
			return
		}
		if ok != (err == nil) || (ok && !bytes.Equal(got, append([]byte("x"), want...))) {
			t.Fatalf("appendDecoded(%q) = %x, %v; encoding/base64 gives %x, %v", s, got, ok, want, err)
		}
	})
}
