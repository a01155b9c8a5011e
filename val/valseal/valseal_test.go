package valseal_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sealbox"
	"github.com/ykstack/ykstack/val/valseal"
)

const secret = "EHmo8FMxuhumBlTinC4uYL0Mgwg="

func newKEK(t testing.TB) *valseal.KEK {
	t.Helper()
	k, err := valseal.NewKEK(valseal.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	s := valseal.New(newKEK(t))
	v, err := s.Seal(1, secret)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(v, valseal.Prefix+s.KeyID()+"$") || !valseal.IsSealed(v) || valseal.KeyIDOf(v) != s.KeyID() {
		t.Errorf("Seal = %q, want $yvs1$%s$…", v, s.KeyID())
	}
	if strings.Contains(v, secret) {
		t.Errorf("Seal = %q shows the secret", v)
	}
	if len(v) != 90 || len(v) > valseal.ColumnWidth {
		t.Errorf("Seal: %d characters, want 90 (at most %d)", len(v), valseal.ColumnWidth)
	}
	if got, err := s.Open(1, v); err != nil || got != secret {
		t.Errorf("Open = %q, %v; want the secret", got, err)
	}
	long, err := s.Seal(7, strings.Repeat("A", valseal.MaxPlaintext))
	if err != nil || len(long) > valseal.ColumnWidth {
		t.Errorf("Seal(60 characters) = %d characters, %v; want at most %d", len(long), err, valseal.ColumnWidth)
	}
	if got, err := s.Open(7, long); err != nil || got != strings.Repeat("A", valseal.MaxPlaintext) {
		t.Errorf("Open(60 characters) = %q, %v", got, err)
	}
	if _, err := s.Seal(1, strings.Repeat("A", valseal.MaxPlaintext+1)); !errors.Is(err, valseal.ErrTooLong) {
		t.Errorf("Seal(61 characters) = %v, want ErrTooLong", err)
	}
}

// TestBinding: a value opens only for its client id, under its KEK.
func TestBinding(t *testing.T) {
	k := newKEK(t)
	s := valseal.New(k)
	v, _ := s.Seal(1, secret)
	other := valseal.New(newKEK(t))
	kid, sealed, err := sealbox.Decode(v, valseal.Tag, 100)
	if err != nil {
		t.Fatal(err)
	}
	truncated := sealbox.Encode(valseal.Tag, kid, sealed[:len(sealed)-1]) // canonical base64url, a byte short
	tests := []struct {
		name string
		s    *valseal.Sealer
		id   int64
		v    string
		want error
	}{
		{"another client id", s, 2, v, valseal.ErrOpen},
		{"a negative id", s, -1, v, valseal.ErrOpen},
		{"another KEK", other, 1, v, valseal.ErrUnknownKEK},
		{"another KEK claiming the kid", valseal.New(newKEK(t), k), 1, strings.Replace(v, k.ID(), other.KeyID(), 1), valseal.ErrUnknownKEK},
		{"plaintext", s, 1, secret, valseal.ErrFormat},
		{"truncated", s, 1, truncated, valseal.ErrOpen},
		{"padded base64", s, 1, v + "=", valseal.ErrFormat},
		{"the KSM's format", s, 1, "$yks1$" + v[6:], valseal.ErrFormat},
	}
	for _, tt := range tests {
		got, err := tt.s.Open(tt.id, tt.v)
		if !errors.Is(err, tt.want) || got != "" {
			t.Errorf("%s: Open = %q, %v; want %v", tt.name, got, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error %q shows the secret", tt.name, err)
		}
	}
}

// TestRotation: a Sealer with an old KEK opens what the old KEK sealed and
// seals under the new one.
func TestRotation(t *testing.T) {
	oldK, newK := newKEK(t), newKEK(t)
	v, _ := valseal.New(oldK).Seal(3, secret)
	s := valseal.New(newK, oldK, nil, newK)
	if got, err := s.Open(3, v); err != nil || got != secret {
		t.Errorf("Open(old value) during a rotation = %q, %v", got, err)
	}
	if !s.Has(oldK.ID()) || !s.Has(newK.ID()) || s.KeyID() != newK.ID() {
		t.Errorf("Has/KeyID wrong: %v", s.KeyIDs())
	}
	if ids := s.KeyIDs(); len(ids) != 2 || ids[0] != newK.ID() {
		t.Errorf("KeyIDs() = %v, want the new one first, then the old", ids)
	}
	nv, _ := s.Seal(3, secret)
	if valseal.KeyIDOf(nv) != newK.ID() {
		t.Errorf("Seal during a rotation used kid %s, want the new %s", valseal.KeyIDOf(nv), newK.ID())
	}
}

func TestParseKEK(t *testing.T) {
	raw := valseal.GenerateKEK()
	a, err := valseal.ParseKEK(valseal.FormatKEK(raw))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := valseal.NewKEK(raw)
	if a.ID() != b.ID() {
		t.Errorf("ParseKEK(FormatKEK(k)).ID() = %s, want %s", a.ID(), b.ID())
	}
	if _, err := valseal.ParseKEK("c2hvcnQ="); !errors.Is(err, valseal.ErrKEK) {
		t.Errorf("ParseKEK(short) = %v, want ErrKEK", err)
	}
}

// FuzzOpen: Open never panics and never opens what it did not seal.
func FuzzOpen(f *testing.F) {
	s := valseal.New(newKEK(f))
	v, _ := s.Seal(1, secret)
	for _, seed := range []string{v, "", secret, "$yvs1$", v[:20], v + "A"} {
		f.Add(int64(1), seed)
	}
	f.Fuzz(func(t *testing.T, id int64, v string) {
		got, err := s.Open(id, v)
		if err == nil && !(id == 1 && got == secret) {
			t.Errorf("Open(%d, %q) = %q, want an error", id, v, got)
		}
	})
}
