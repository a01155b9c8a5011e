package modhex

import (
	"bytes"
	"errors"
	"testing"
)

var pairs = []struct {
	dec []byte
	enc string
}{
	{nil, ""},
	{[]byte{0x00}, "cc"},
	{[]byte{0x01}, "cb"},
	{[]byte{0xff}, "vv"},
	{[]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}, "cbdefghijklnrtuv"},
	{[]byte{0x00, 0x00, 0x00, 0x00, 0x00, 0x01}, "cccccccccccb"},
	{[]byte{0x2d, 0x34, 0x4e, 0x83}, "dteffuje"}, // Yubico doc public ID
}

func TestEncode(t *testing.T) {
	for _, p := range pairs {
		if got := EncodeToString(p.dec); got != p.enc {
			t.Errorf("EncodeToString(%x) = %q, want %q", p.dec, got, p.enc)
		}
	}
}

func TestDecode(t *testing.T) {
	for _, p := range pairs {
		got, err := DecodeString(p.enc)
		if err != nil {
			t.Errorf("DecodeString(%q) error: %v", p.enc, err)
			continue
		}
		if !bytes.Equal(got, p.dec) {
			t.Errorf("DecodeString(%q) = %x, want %x", p.enc, got, p.dec)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		in      string
		wantN   int
		wantErr error
	}{
		{"c", 0, ErrLength},
		{"ccc", 1, ErrLength},
		{"ca", 0, InvalidByteError('a')},
		{"ac", 0, InvalidByteError('a')},
		{"ccCC", 1, InvalidByteError('C')},
		{"cc c", 1, InvalidByteError(' ')},
		{"ccz", 1, InvalidByteError('z')},
		{"cc\x00c", 1, InvalidByteError(0)},
		{"cc\xffc", 1, InvalidByteError(0xff)},
	}
	for _, tt := range tests {
		dst := make([]byte, DecodedLen(len(tt.in)))
		n, err := Decode(dst, []byte(tt.in))
		if n != tt.wantN || !errors.Is(err, tt.wantErr) {
			t.Errorf("Decode(%q) = %d, %v; want %d, %v", tt.in, n, err, tt.wantN, tt.wantErr)
		}
	}
}

func TestValid(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"", true},
		{Alphabet, true},
		{"cbdefghijklnrtuvw", false},
		{"CBDE", false},
		{"cb de", false},
	}
	for _, tt := range tests {
		if got := Valid(tt.in); got != tt.want {
			t.Errorf("Valid(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFromDvorak(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{DvorakAlphabet, Alphabet, true},
		{"jjjjjjjjjjjx", "cccccccccccb", true},
		{Alphabet, Alphabet, false}, // 'c','b','l','n','r','v' are not all Dvorak
		{"", "", false},
		{"jjx?", "jjx?", false},
	}
	for _, tt := range tests {
		got, ok := FromDvorak(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("FromDvorak(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range pairs {
		f.Add(p.enc)
	}
	f.Add("ca")
	f.Add("ccc")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := DecodeString(s)
		if err != nil {
			if Valid(s) && len(s)%2 == 0 {
				t.Fatalf("DecodeString(%q) failed on valid input: %v", s, err)
			}
			return
		}
		if !Valid(s) || len(s)%2 != 0 {
			t.Fatalf("DecodeString(%q) accepted invalid input", s)
		}
		if re := EncodeToString(b); re != s {
			t.Fatalf("round trip %q -> %x -> %q", s, b, re)
		}
	})
}
