// Package logscan finds secrets in logs. A test registers the secrets its
// flows handle — OTPs, AES keys, private IDs, decrypted tokens, API
// secrets, key-encryption keys, passwords — in a [Set], captures the logs
// of the servers and tools it runs (a [Buffer] behind an slog handler, or
// a process's standard error), and scans every line: a hit names the kind
// of secret and the line.
//
// Each secret is searched for in the forms a leak would take: hex in lower
// and upper case, base64 with and without padding and in the URL alphabet
// together with the hex of what it decodes to, an OTP whole and its
// 32-character token part alone (the public ID before it is not a secret
// and is logged on purpose). Values shorter than [MinLen] are not searched
// for: they would match by chance.
//
// The end-to-end test of this package runs the main flows of the KSM and
// the validation server, in process and as the ykksmd and ykvald binaries,
// at the default log level, and fails on any hit.
package logscan

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// MinLen is the shortest value a Set searches for.
const MinLen = 8

// Set is a set of secrets to search logs for. It is safe for concurrent
// use; the zero Set is empty.
type Set struct {
	mu      sync.Mutex
	needles map[string]string // text to search for → kind
}

// Hit is a secret found in a log line.
type Hit struct {
	Source string // which log
	Line   int    // 1-based line number in it
	Kind   string // the kind of secret, as registered
	Text   string // the whole line
}

func (h Hit) String() string {
	return fmt.Sprintf("%s:%d: %s in %q", h.Source, h.Line, h.Kind, h.Text)
}

// Text adds a secret searched for exactly as given (a password, a PEM
// marker).
func (s *Set) Text(kind, v string) {
	s.add(kind, v)
}

// Hex adds binary key material, searched for as lower- and upper-case hex.
func (s *Set) Hex(kind string, b []byte) {
	h := hex.EncodeToString(b)
	s.add(kind, h)
	s.add(kind, strings.ToUpper(h))
}

// HexString adds a secret written in hex (an AES key, a private ID), in
// either case.
func (s *Set) HexString(kind, h string) {
	s.add(kind, strings.ToLower(h))
	s.add(kind, strings.ToUpper(h))
}

// Base64 adds a secret written in base64 (an API secret, a KEK): as given,
// without its padding, in the URL alphabet, and the hex of its bytes.
func (s *Set) Base64(kind, v string) {
	s.add(kind, v)
	trimmed := strings.TrimRight(v, "=")
	s.add(kind, trimmed)
	s.add(kind, strings.NewReplacer("+", "-", "/", "_").Replace(trimmed))
	if b, err := base64.StdEncoding.DecodeString(v); err == nil {
		s.Hex(kind+" (decoded)", b)
	}
}

// OTP adds an OTP: whole, and its last 32 characters (the encrypted
// token), which a log must not show either.
func (s *Set) OTP(o string) {
	s.add("OTP", o)
	if len(o) >= 32 {
		s.add("OTP token", o[len(o)-32:])
	}
}

func (s *Set) add(kind, v string) {
	if len(v) < MinLen {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.needles == nil {
		s.needles = map[string]string{}
	}
	if _, ok := s.needles[v]; !ok {
		s.needles[v] = kind
	}
}

// Len returns the number of strings searched for.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.needles)
}

// Scan searches every line of text, the log named source, for the
// secrets, and returns a Hit for each secret found in a line. Hits come
// in line order and, within a line, longest secret first, so the most
// specific kind (a whole OTP before its token part) leads.
func (s *Set) Scan(source, text string) []Hit {
	s.mu.Lock()
	defer s.mu.Unlock()
	needles := make([]string, 0, len(s.needles))
	for v := range s.needles {
		needles = append(needles, v)
	}
	slices.SortFunc(needles, func(a, b string) int {
		if c := cmp.Compare(len(b), len(a)); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	var hits []Hit
	for i, line := range strings.Split(text, "\n") {
		for _, v := range needles {
			if strings.Contains(line, v) {
				hits = append(hits, Hit{Source: source, Line: i + 1, Kind: s.needles[v], Text: line})
			}
		}
	}
	return hits
}

// Buffer collects log output written concurrently, for an slog handler
// or a process's standard error.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
