package sealbox_test

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sealbox"
	"github.com/ykstack/ykstack/ksm/seal"
)

// fixed is the KEK 0x00, 0x01, … 0x1f.
func fixed() []byte {
	b := make([]byte, sealbox.KEKSize)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

func newBox(t testing.TB, purpose string) *sealbox.Box {
	t.Helper()
	b, err := sealbox.NewBox(sealbox.GenerateKEK(), purpose)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyID pins the derivation: ksm/seal's kid, derived the same way under
// its purpose, and another purpose's.
func TestKeyID(t *testing.T) {
	for _, tt := range []struct{ purpose, want string }{
		{"ykstack ksm seal v1", "ff6519ae"},
		{"ykstack val seal v1", ""}, // anything else: only different
	} {
		b, err := sealbox.NewBox(fixed(), tt.purpose)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case tt.want != "" && b.ID() != tt.want:
			t.Errorf("NewBox(0..31, %q).ID() = %q, want %q", tt.purpose, b.ID(), tt.want)
		case tt.want == "" && b.ID() == "ff6519ae":
			t.Errorf("NewBox(0..31, %q).ID() = the KSM's kid", tt.purpose)
		}
	}
	k, err := seal.NewKEK(fixed())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sealbox.NewBox(fixed(), "ykstack ksm seal v1")
	if k.ID() != b.ID() {
		t.Errorf("ksm/seal kid %s, sealbox kid %s: the derivations differ", k.ID(), b.ID())
	}
	if _, err := sealbox.NewBox(fixed()[:31], "x"); !errors.Is(err, sealbox.ErrKEK) {
		t.Errorf("NewBox(31 bytes) = %v, want ErrKEK", err)
	}
	if _, err := sealbox.NewBox(fixed(), ""); err == nil {
		t.Error("NewBox(no purpose) succeeded")
	}
}

func TestParseKEK(t *testing.T) {
	raw := fixed()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"hex", hex.EncodeToString(raw), true},
		{"upper hex", strings.ToUpper(hex.EncodeToString(raw)), true},
		{"base64", base64.StdEncoding.EncodeToString(raw), true},
		{"raw base64url with space", "  " + base64.RawURLEncoding.EncodeToString(raw) + "\n", true},
		{"FormatKEK", sealbox.FormatKEK(raw), true},
		{"empty", " \n", false},
		{"short hex", hex.EncodeToString(raw[:31]), false},
		{"short base64", base64.StdEncoding.EncodeToString(raw[:16]), false},
		{"junk", "not a key!", false},
	}
	for _, tt := range tests {
		got, err := sealbox.ParseKEK(tt.in)
		switch {
		case tt.ok && (err != nil || !bytes.Equal(got, raw)):
			t.Errorf("%s: ParseKEK = %x, %v; want the key", tt.name, got, err)
		case !tt.ok && !errors.Is(err, sealbox.ErrKEK):
			t.Errorf("%s: ParseKEK = %v, want ErrKEK", tt.name, err)
		case !tt.ok && strings.Contains(err.Error(), strings.TrimSpace(tt.in)) && strings.TrimSpace(tt.in) != "":
			t.Errorf("%s: ParseKEK error %q quotes the input", tt.name, err)
		}
	}
	if got, err := sealbox.ParseKEKFile(raw); err != nil || !bytes.Equal(got, raw) {
		t.Errorf("ParseKEKFile(32 raw bytes) = %x, %v", got, err)
	}
}

func TestReadKEKFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(sealbox.FormatKEK(fixed())), mode)
		os.Chmod(p, mode)
		return p
	}
	private := write("private", 0o600)
	open := write("open", 0o644)
	cred := write("creds/ykval-kek", 0o644)
	big := filepath.Join(dir, "big")
	os.WriteFile(big, bytes.Repeat([]byte("A"), 2000), 0o600)
	tests := []struct {
		name, file, trusted, err string
	}{
		{"private", private, "", ""},
		{"readable by others", open, "", "has mode 0644"},
		{"credential", cred, filepath.Join(dir, "creds"), ""},
		{"credential outside the directory", open, filepath.Join(dir, "creds"), "has mode 0644"},
		{"missing", filepath.Join(dir, "none"), "", "no such file"},
		{"directory", dir, "", "not a regular file"},
		{"too big", big, "", "over 1024 bytes"},
	}
	for _, tt := range tests {
		got, err := sealbox.ReadKEKFile(tt.file, tt.trusted)
		switch {
		case tt.err == "" && (err != nil || !bytes.Equal(got, fixed())):
			t.Errorf("%s: ReadKEKFile = %x, %v; want the key", tt.name, got, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%s: ReadKEKFile = %v, want an error with %q", tt.name, err, tt.err)
		}
	}
}

func TestSealOpen(t *testing.T) {
	b := newBox(t, "test")
	other := newBox(t, "test")
	sameKEKOtherPurpose, _ := sealbox.NewBox(fixed(), "other")
	fixedBox, _ := sealbox.NewBox(fixed(), "test")
	pt, ad := []byte("EHmo8FMxuhumBlTinC4uYL0Mgwg="), []byte("row 1")
	sealed := b.Seal(pt, ad)
	if len(sealed) != len(pt)+sealbox.Overhead {
		t.Errorf("Seal: %d bytes, want %d", len(sealed), len(pt)+sealbox.Overhead)
	}
	if bytes.Contains(sealed, pt) {
		t.Error("Seal: the plaintext shows")
	}
	if again := b.Seal(pt, ad); bytes.Equal(again, sealed) {
		t.Error("Seal twice gave the same bytes: the nonce is not random")
	}
	if got, err := b.Open(sealed, ad); err != nil || !bytes.Equal(got, pt) {
		t.Errorf("Open = %q, %v; want the plaintext", got, err)
	}
	for _, tt := range []struct {
		name   string
		box    *sealbox.Box
		sealed []byte
		ad     []byte
	}{
		{"other additional data", b, sealed, []byte("row 2")},
		{"other KEK", other, sealed, ad},
		{"other purpose", sameKEKOtherPurpose, fixedBox.Seal(pt, ad), ad},
		{"flipped bit", b, append(append([]byte(nil), sealed[:len(sealed)-1]...), sealed[len(sealed)-1]^1), ad},
		{"too short", b, sealed[:sealbox.Overhead-1], ad},
	} {
		if got, err := tt.box.Open(tt.sealed, tt.ad); !errors.Is(err, sealbox.ErrOpen) || got != nil {
			t.Errorf("%s: Open = %q, %v; want ErrOpen", tt.name, got, err)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	sealed := bytes.Repeat([]byte{0xfb, 0xff, 0x00}, 15)
	v := sealbox.Encode("yvs1", "0123abcd", sealed)
	if !strings.HasPrefix(v, "$yvs1$0123abcd$") || !sealbox.IsSealed(v) || sealbox.KeyIDOf(v, "yvs1") != "0123abcd" {
		t.Fatalf("Encode = %q", v)
	}
	kid, got, err := sealbox.Decode(v, "yvs1", 100)
	if err != nil || kid != "0123abcd" || !bytes.Equal(got, sealed) {
		t.Errorf("Decode(Encode) = %s, %x, %v", kid, got, err)
	}
	for _, bad := range []string{
		"", "EHmo8FMxuhumBlTinC4uYL0Mgwg=", "$yks1$0123abcd$" + v[15:], "$yvs1$0123ABCD$" + v[15:], "$yvs1$0123abc$" + v[15:],
		"$yvs1$0123abcd", "$yvs1$0123abcd$" + v[15:] + "=", "$yvs1$0123abcd$" + v[15:] + "\n", "$yvs1$0123abcd$+/" + v[17:],
		"$yvs1$0123abcd$AAAA", "$yvs1$0123abcd$" + strings.Repeat("A", 200),
	} {
		if _, _, err := sealbox.Decode(bad, "yvs1", 100); !errors.Is(err, sealbox.ErrFormat) {
			t.Errorf("Decode(%q) = %v, want ErrFormat", bad, err)
		}
	}
	if sealbox.IsSealed("EHmo8FMxuhumBlTinC4uYL0Mgwg=") || sealbox.KeyIDOf("$yvs1$nothex!!$x", "yvs1") != "" {
		t.Error("IsSealed or KeyIDOf took a plaintext or malformed value")
	}
}

// FuzzDecode: Decode never panics, and what it accepts encodes back to
// the same text.
func FuzzDecode(f *testing.F) {
	f.Add(sealbox.Encode("yvs1", "0123abcd", bytes.Repeat([]byte{1}, 40)))
	for _, s := range []string{"", "$", "$yvs1$", "$yvs1$0123abcd$", "$yvs1$0123abcd$AAAA", "$yvs1$0123abcd$AB=="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		kid, sealed, err := sealbox.Decode(v, "yvs1", 200)
		if err != nil {
			return
		}
		if back := sealbox.Encode("yvs1", kid, sealed); back != v {
			t.Errorf("Decode(%q) accepted a non-canonical value (canonical %q)", v, back)
		}
	})
}

// FuzzAppendDecoded: the strict decoder agrees with encoding/base64's
// strict unpadded base64url, except that it also refuses CR and LF.
func FuzzAppendDecoded(f *testing.F) {
	for _, s := range []string{"", "A", "AA", "AB", "AAA", "AAB", "AAAA", "-_-_", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9v\nYmE", "Zm9v=", "+/+/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := sealbox.AppendDecoded(nil, s)
		want, err := base64.RawURLEncoding.Strict().DecodeString(s)
		wantOK := err == nil && !strings.ContainsAny(s, "\r\n")
		if ok != wantOK || (ok && !bytes.Equal(got, want)) {
			t.Errorf("AppendDecoded(%q) = %x, %v; encoding/base64: %x, %v", s, got, ok, want, err)
		}
	})
}

// FuzzParseKEK: ParseKEK never panics, returns 32 bytes or ErrKEK, and
// never quotes its input.
func FuzzParseKEK(f *testing.F) {
	for _, s := range []string{hex.EncodeToString(fixed()), sealbox.FormatKEK(fixed()), "", "zz", strings.Repeat("A", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := sealbox.ParseKEK(s)
		switch {
		case err == nil && len(k) != sealbox.KEKSize:
			t.Errorf("ParseKEK(%q) = %d bytes", s, len(k))
		case err != nil && !errors.Is(err, sealbox.ErrKEK):
			t.Errorf("ParseKEK(%q) = %v, want ErrKEK", s, err)
		case err != nil && len(strings.TrimSpace(s)) > 8 && strings.Contains(err.Error(), strings.TrimSpace(s)):
			t.Errorf("ParseKEK(%q) error quotes the input", s)
		}
	})
}

func BenchmarkOpen(b *testing.B) {
	box := newBox(b, "bench")
	sealed := box.Seal([]byte("EHmo8FMxuhumBlTinC4uYL0Mgwg="), []byte("client 1"))
	for b.Loop() {
		box.Open(sealed, []byte("client 1"))
	}
}
