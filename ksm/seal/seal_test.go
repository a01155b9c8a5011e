package seal_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/ksm/seal"
)

const (
	pub    = "cccccccccccb"
	uid    = "609963eae7b5"
	aesKey = "c68c9df8cbfe7d2f994cb904046c7218"
)

// fixedKEK is a KEK with known bytes 0x00, 0x01, … 0x1f.
func fixedKEK(t testing.TB) (*seal.KEK, []byte) {
	t.Helper()
	b := make([]byte, seal.KEKSize)
	for i := range b {
		b[i] = byte(i)
	}
	k, err := seal.NewKEK(b)
	if err != nil {
		t.Fatal(err)
	}
	return k, b
}

func newKEK(t testing.TB) *seal.KEK {
	t.Helper()
	k, err := seal.NewKEK(seal.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeyID(t *testing.T) {
	k, _ := fixedKEK(t)
	// The kid is part of the stored format and must never change: pinned,
	// and recomputed here as HKDF-SHA-256 (RFC 5869) from HMAC by hand.
	if got, want := k.ID(), "ff6519ae"; got != want {
		t.Errorf("ID() = %q, want %q", got, want)
	}
	_, raw := fixedKEK(t)
	prk := hmac.New(sha256.New, make([]byte, sha256.Size)) // extract, no salt
	prk.Write(raw)
	t1 := hmac.New(sha256.New, prk.Sum(nil)) // expand, first block
	t1.Write([]byte("ykstack ksm seal v1 key id\x01"))
	if want := hex.EncodeToString(t1.Sum(nil)[:4]); k.ID() != want {
		t.Errorf("ID() = %q, want HKDF's %q", k.ID(), want)
	}
	if other := newKEK(t); other.ID() == k.ID() {
		t.Errorf("two KEKs share the key ID %s", k.ID())
	}
}

func TestParseKEK(t *testing.T) {
	_, raw := fixedKEK(t)
	want, _ := fixedKEK(t)
	for _, tt := range []struct {
		name, text string
		ok         bool
	}{
		{"hex", hex.EncodeToString(raw), true},
		{"HEX with newline", strings.ToUpper(hex.EncodeToString(raw)) + "\n", true},
		{"base64", base64.StdEncoding.EncodeToString(raw), true},
		{"base64 with spaces", "  " + base64.StdEncoding.EncodeToString(raw) + "\r\n", true},
		{"base64 unpadded", base64.RawStdEncoding.EncodeToString(raw), true},
		{"base64url", base64.URLEncoding.EncodeToString(raw), true},
		{"FormatKEK", seal.FormatKEK(raw), true},
		{"empty", "", false},
		{"blank", " \n", false},
		{"16 bytes hex", hex.EncodeToString(raw[:16]), false},
		{"hex too long", hex.EncodeToString(raw) + "00", false},
		{"base64 of 31 bytes", base64.StdEncoding.EncodeToString(raw[:31]), false},
		{"base64 of 33 bytes", base64.StdEncoding.EncodeToString(append(raw, 0)), false},
		{"garbage", "not a key at all!", false},
	} {
		k, err := seal.ParseKEK(tt.text)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: ParseKEK = %v, want the KEK", tt.name, err)
		case tt.ok && k.ID() != want.ID():
			t.Errorf("%s: ParseKEK gives key ID %s, want %s", tt.name, k.ID(), want.ID())
		case !tt.ok && (err == nil || !errors.Is(err, seal.ErrKEK)):
			t.Errorf("%s: ParseKEK = %v, want ErrKEK", tt.name, err)
		case !tt.ok && strings.TrimSpace(tt.text) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.text)):
			t.Errorf("%s: error %q quotes the text", tt.name, err)
		}
	}
}

func TestParseKEKFile(t *testing.T) {
	want, raw := fixedKEK(t)
	random := seal.GenerateKEK()
	rk, err := seal.NewKEK(random)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		data []byte
		id   string
	}{
		{"raw", random, rk.ID()},
		{"raw fixed", raw, want.ID()}, // bytes 0..31 are not text
		{"hex", []byte(hex.EncodeToString(raw) + "\n"), want.ID()},
		{"base64", []byte(seal.FormatKEK(raw)), want.ID()},
		{"32 text bytes", []byte(strings.Repeat("a", 32)), ""}, // a 16-byte key in hex is refused, not taken raw
		{"31 raw bytes", random[:31], ""},
	} {
		k, err := seal.ParseKEKFile(tt.data)
		switch {
		case tt.id == "" && !errors.Is(err, seal.ErrKEK):
			t.Errorf("%s: ParseKEKFile = %v, want ErrKEK", tt.name, err)
		case tt.id != "" && err != nil:
			t.Errorf("%s: ParseKEKFile = %v", tt.name, err)
		case tt.id != "" && k.ID() != tt.id:
			t.Errorf("%s: ParseKEKFile gives key ID %s, want %s", tt.name, k.ID(), tt.id)
		}
	}
}

func TestReadKEKFile(t *testing.T) {
	want, raw := fixedKEK(t)
	dir := t.TempDir()
	creds := filepath.Join(dir, "creds")
	if err := os.Mkdir(creds, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // umask
			t.Fatal(err)
		}
		return p
	}
	text := []byte(seal.FormatKEK(raw))
	for _, tt := range []struct {
		name, path, trusted string
		ok                  bool
	}{
		{"0600", write("kek600", text, 0o600), "", true},
		{"0400 raw", write("kek400", raw, 0o400), "", true},
		{"0640", write("kek640", text, 0o640), "", false},
		{"0604", write("kek604", text, 0o604), "", false},
		{"0644 in credentials", write("creds/ykksm-kek", text, 0o644), creds, true},
		{"0644 beside credentials", write("creds-kek", text, 0o644), creds, false},
		{"0644 via .. out of credentials", write("kek644", text, 0o644), creds, false},
		{"missing", filepath.Join(dir, "nope"), "", false},
		{"directory", creds, "", false},
		{"too big", write("big", bytes.Repeat([]byte("A"), 2000), 0o600), "", false},
		{"bad contents", write("bad", []byte("short\n"), 0o600), "", false},
	} {
		path := tt.path
		if tt.name == "0644 via .. out of credentials" {
			path = filepath.Join(creds, "..", "kek644")
		}
		k, err := seal.ReadKEKFile(path, tt.trusted)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: ReadKEKFile = %v", tt.name, err)
		case tt.ok && k.ID() != want.ID():
			t.Errorf("%s: ReadKEKFile gives key ID %s, want %s", tt.name, k.ID(), want.ID())
		case !tt.ok && err == nil:
			t.Errorf("%s: ReadKEKFile succeeded, want an error", tt.name)
		}
	}
	_, err := seal.ReadKEKFile(filepath.Join(dir, "kek640"), "")
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("ReadKEKFile(0640) = %v, want advice to chmod 600", err)
	}
}

func TestSealOpen(t *testing.T) {
	s := seal.New(newKEK(t))
	for _, key := range []string{aesKey, strings.ToUpper(aesKey), "", "x", strings.Repeat("f", seal.MaxPlaintext)} {
		v, err := s.Seal(pub, uid, key)
		if err != nil {
			t.Fatalf("Seal(%q): %v", key, err)
		}
		if len(v) > seal.ColumnWidth || !seal.IsSealed(v) || !strings.HasPrefix(v, seal.Prefix+s.KeyID()+"$") {
			t.Errorf("Seal(%q) = %q: want %s%s$…, at most %d characters", key, v, seal.Prefix, s.KeyID(), seal.ColumnWidth)
		}
		if len(key) >= 16 && strings.Contains(strings.ToLower(v), strings.ToLower(key)) {
			t.Errorf("Seal(%q) = %q holds the key", key, v)
		}
		got, err := s.Open(pub, uid, v)
		if err != nil || got != key {
			t.Errorf("Open(Seal(%q)) = %q, %v", key, got, err)
		}
	}
	v1, _ := s.Seal(pub, uid, aesKey)
	v2, _ := s.Seal(pub, uid, aesKey)
	if v1 == v2 {
		t.Errorf("two seals of one key are equal (%q): the nonce must be random", v1)
	}
	if len(v1) != 95 {
		t.Errorf("a sealed 32-digit key is %d characters, want 95", len(v1))
	}
	if _, err := s.Seal(pub, uid, strings.Repeat("f", seal.MaxPlaintext+1)); !errors.Is(err, seal.ErrTooLong) {
		t.Errorf("Seal(too long) = %v, want ErrTooLong", err)
	}
}

// TestBinding: a sealed value opens only for its own row and under its own KEK.
func TestBinding(t *testing.T) {
	kek := newKEK(t)
	s := seal.New(kek)
	v, err := s.Seal(pub, uid, aesKey)
	if err != nil {
		t.Fatal(err)
	}
	kid, data, err := seal.Parse(v)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) string {
		d := bytes.Clone(data)
		d[i] ^= 1
		return seal.Prefix + kid + "$" + base64.RawURLEncoding.EncodeToString(d)
	}
	other := seal.New(newKEK(t))
	for _, tt := range []struct {
		name     string
		s        *seal.Sealer
		pub, uid string
		v        string
		want     error
	}{
		{"other public name", s, "cccccccccccd", uid, v, seal.ErrOpen},
		{"empty public name", s, "", uid, v, seal.ErrOpen},
		{"other UID", s, pub, "609963eae7b6", v, seal.ErrOpen},
		{"other KEK", other, pub, uid, v, seal.ErrUnknownKEK},
		{"kid rewritten to the other KEK's", other, pub, uid, strings.Replace(v, kid, other.KeyID(), 1), seal.ErrOpen},
		{"nonce bit", s, pub, uid, flip(0), seal.ErrOpen},
		{"ciphertext bit", s, pub, uid, flip(12), seal.ErrOpen},
		{"tag bit", s, pub, uid, flip(len(data) - 1), seal.ErrOpen},
		{"truncated", s, pub, uid, v[:len(v)-4], seal.ErrOpen},
		{"plaintext", s, pub, uid, aesKey, seal.ErrFormat},
	} {
		got, err := tt.s.Open(tt.pub, tt.uid, tt.v)
		if !errors.Is(err, tt.want) || got != "" {
			t.Errorf("%s: Open = %q, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	// The UID binds in either case.
	if got, err := s.Open(pub, strings.ToUpper(uid), v); err != nil || got != aesKey {
		t.Errorf("Open with the UID in upper case = %q, %v; want the key", got, err)
	}
}

func TestRotation(t *testing.T) {
	oldK, newK := newKEK(t), newKEK(t)
	old := seal.New(oldK)
	v, _ := old.Seal(pub, uid, aesKey)
	both := seal.New(newK, oldK, nil, newK)
	if both.KeyID() != newK.ID() || !both.Has(oldK.ID()) || !both.Has(newK.ID()) || both.Has("00000000") {
		t.Errorf("New(new, old): KeyID %s, Has(old) %v", both.KeyID(), both.Has(oldK.ID()))
	}
	if ids := both.KeyIDs(); len(ids) != 2 || ids[0] != newK.ID() {
		t.Errorf("KeyIDs() = %v, want [%s %s]", ids, newK.ID(), oldK.ID())
	}
	if got, err := both.Open(pub, uid, v); err != nil || got != aesKey {
		t.Errorf("Open(old value) with the old KEK held = %q, %v", got, err)
	}
	nv, _ := both.Seal(pub, uid, aesKey)
	if seal.KeyIDOf(nv) != newK.ID() {
		t.Errorf("Seal during rotation used key ID %s, want the new %s", seal.KeyIDOf(nv), newK.ID())
	}
	if _, err := old.Open(pub, uid, nv); !errors.Is(err, seal.ErrUnknownKEK) {
		t.Errorf("Open(new value) with the old KEK only = %v, want ErrUnknownKEK", err)
	}
}

// parseTests are sealed-value shapes; ok says whether Parse accepts them.
var parseTests = []struct {
	v   string
	ok  bool
	kid string
}{
	{"$yks1$0123abcd$" + strings.Repeat("A", 39), true, "0123abcd"},  // 29 bytes
	{"$yks1$0123abcd$" + strings.Repeat("A", 38), true, "0123abcd"},  // 28 bytes: nonce and tag only
	{"$yks1$0123abcd$" + strings.Repeat("A", 37), false, "0123abcd"}, // not a base64 length
	{"$yks1$0123abcd$" + strings.Repeat("A", 36), false, "0123abcd"}, // 27 bytes: shorter than nonce and tag
	{"$yks1$0123abcd$" + strings.Repeat("A", 112), true, "0123abcd"}, // 84 bytes: the longest
	{"$yks1$0123abcd$" + strings.Repeat("A", 114), false, "0123abcd"},
	{"$yks1$0123abcd$" + strings.Repeat("A", 37) + "B", false, "0123abcd"}, // trailing bits set
	{"$yks1$0123abcd$" + strings.Repeat("A", 20) + "\r\n" + strings.Repeat("A", 18), false, "0123abcd"},
	{"$yks1$0123abcd$" + strings.Repeat("A", 37) + "=", false, "0123abcd"},
	{"$yks1$0123abcd$" + strings.Repeat("A", 36) + "+/", false, "0123abcd"},
	{"$yks1$0123ABCD$" + strings.Repeat("A", 38), false, ""},
	{"$yks1$0123abc$" + strings.Repeat("A", 38), false, ""},
	{"$yks1$0123abcde$" + strings.Repeat("A", 38), false, ""},
	{"$yks1$0123abcd", false, ""},
	{"$yks2$0123abcd$" + strings.Repeat("A", 38), false, ""},
	{"$yks1$", false, ""},
	{"$", false, ""},
	{"", false, ""},
	{aesKey, false, ""},
}

func TestParse(t *testing.T) {
	for _, tt := range parseTests {
		kid, data, err := seal.Parse(tt.v)
		if tt.ok != (err == nil) || (err == nil && kid != tt.kid) {
			t.Errorf("Parse(%q) = %q, %d bytes, %v; want ok=%v kid %q", tt.v, kid, len(data), err, tt.ok, tt.kid)
		}
		if err != nil && !errors.Is(err, seal.ErrFormat) {
			t.Errorf("Parse(%q) error %v does not wrap ErrFormat", tt.v, err)
		}
		if got := seal.KeyIDOf(tt.v); got != tt.kid {
			t.Errorf("KeyIDOf(%q) = %q, want %q", tt.v, got, tt.kid)
		}
		if got, want := seal.IsSealed(tt.v), strings.HasPrefix(tt.v, "$"); got != want {
			t.Errorf("IsSealed(%q) = %v, want %v", tt.v, got, want)
		}
	}
}

// FuzzParse: Parse never panics, accepts only the format, and a value that
// parses never opens unless it is a real sealed value.
func FuzzParse(f *testing.F) {
	kek, _ := fixedKEK(f)
	s := seal.New(kek)
	v, err := s.Seal(pub, uid, aesKey)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(v)
	for _, tt := range parseTests {
		f.Add(tt.v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		kid, data, err := seal.Parse(v)
		if err != nil {
			if !errors.Is(err, seal.ErrFormat) || kid != "" || data != nil {
				t.Fatalf("Parse(%q) = %q, %x, %v", v, kid, data, err)
			}
			if _, oerr := s.Open(pub, uid, v); !errors.Is(oerr, seal.ErrFormat) {
				t.Fatalf("Open(%q) = %v after Parse failed with %v", v, oerr, err)
			}
			return
		}
		if !strings.HasPrefix(v, seal.Prefix+kid+"$") || seal.KeyIDOf(v) != kid || len(data) < 28 || !seal.IsSealed(v) {
			t.Fatalf("Parse(%q) = %q, %d bytes", v, kid, len(data))
		}
		if want := seal.Prefix + kid + "$" + base64.RawURLEncoding.EncodeToString(data); want != v {
			t.Fatalf("Parse(%q) is not canonical: re-encodes to %q", v, want)
		}
		got, err := s.Open(pub, uid, v)
		if err == nil && got != aesKey {
			t.Fatalf("Open(%q) = %q: a forged value opened", v, got)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	s := seal.New(newKEK(b))
	v, err := s.Seal(pub, uid, aesKey)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.Open(pub, uid, v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	s := seal.New(newKEK(b))
	for b.Loop() {
		if _, err := s.Seal(pub, uid, aesKey); err != nil {
			b.Fatal(err)
		}
	}
}
