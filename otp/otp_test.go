package otp

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// Published and derived vectors from the YK-KSM / YK-VAL self tests and docs.
var vectors = []struct {
	name, key, uid, otp string
	counter, low        uint16
	high, use           uint8
}{
	{"ksm selftest", "c68c9df8cbfe7d2f994cb904046c7218", "609963eae7b5", "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku", 0x0001, 0x8d40, 0x0f, 0x00},
	{"derived use 1", "c68c9df8cbfe7d2f994cb904046c7218", "609963eae7b5", "idkfefrdhtrubfjfdhrjhtkehrntiubuvnkgeieirkfb", 0x0001, 0x8d48, 0x0f, 0x01},
	{"derived use 2", "c68c9df8cbfe7d2f994cb904046c7218", "609963eae7b5", "idkfefrdhtrurlfvluuihdhitjnriedgtfufejrlgbhu", 0x0001, 0x8d50, 0x0f, 0x02},
	{"derived counter 2", "c68c9df8cbfe7d2f994cb904046c7218", "609963eae7b5", "idkfefrdhtruvbfrdfdtrfencnvvhhernhujccbnveej", 0x0002, 0x1234, 0x00, 0x00},
	{"derived bit 15", "c68c9df8cbfe7d2f994cb904046c7218", "609963eae7b5", "idkfefrdhtrunrtedfbdbfdebgjvtfbrrcvbdghhkrhf", 0x8002, 0x0001, 0x01, 0x05},
	{"yubico doc", "ecde18dbe76fbd0c33330f1c354871db", "8792ebfe26cc", "dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh", 0x0013, 0xc230, 0x00, 0x11},
}

func TestDecryptVectors(t *testing.T) {
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			key, err := ParseKey(v.key)
			if err != nil {
				t.Fatal(err)
			}
			uid, err := ParseUID(v.uid)
			if err != nil {
				t.Fatal(err)
			}
			_, token, err := Split(v.otp)
			if err != nil {
				t.Fatalf("Split(%q) error: %v", v.otp, err)
			}
			tok, err := Decrypt(key, uid, token)
			if err != nil {
				t.Fatalf("Decrypt(%q) error: %v", token, err)
			}
			if tok.Counter != v.counter || tok.TimestampLow != v.low || tok.TimestampHigh != v.high || tok.Use != v.use {
				t.Errorf("Decrypt(%q) = counter %04x low %04x high %02x use %02x; want %04x %04x %02x %02x",
					token, tok.Counter, tok.TimestampLow, tok.TimestampHigh, tok.Use, v.counter, v.low, v.high, v.use)
			}
			// Re-encrypting the same fields with the same random gives the same OTP.
			if got := Generate(v.otp[:len(v.otp)-TokenLen], key, tok); got != v.otp {
				t.Errorf("Generate = %q, want %q", got, v.otp)
			}
		})
	}
}

func TestDecryptPlaintext(t *testing.T) {
	key, _ := ParseKey("c68c9df8cbfe7d2f994cb904046c7218")
	tests := []struct{ token, plain string }{
		{"tjduvtcjbfeuvhehdvjjlbchtlenfgku", "609963eae7b50100408d0f004754f957"},
		{"tjduvtcjbfeuvhehdvjjlbchtlenfgkv", "bb581f3f1c9a13c5f7073fd02c159ebd"},
	}
	for _, tt := range tests {
		pt, err := DecryptBlock(key, tt.token)
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(pt[:]); got != tt.plain {
			t.Errorf("DecryptBlock(%q) = %s, want %s", tt.token, got, tt.plain)
		}
	}
}

func TestDecryptErrors(t *testing.T) {
	key, _ := ParseKey("c68c9df8cbfe7d2f994cb904046c7218")
	uid, _ := ParseUID("609963eae7b5")
	good := "tjduvtcjbfeuvhehdvjjlbchtlenfgku"
	// A token whose UID matches but whose CRC does not: flip a random byte.
	tok, _ := Decrypt(key, uid, good)
	pt := tok.Marshal()
	pt[12] ^= 0xff
	badCRC := encryptBlock(key, pt) // Parse would reject pt, so encrypt it raw
	tests := []struct {
		name  string
		token string
		uid   string
		want  error
	}{
		{"uid mismatch", "tjduvtcjbfeuvhehdvjjlbchtlenfgkv", "609963eae7b5", ErrUID},
		{"wrong stored uid", good, "609963eae7b6", ErrUID},
		{"crc", badCRC, "609963eae7b5", ErrCRC},
		{"short", good[1:], "609963eae7b5", ErrFormat},
		{"upper", strings.ToUpper(good), "609963eae7b5", ErrFormat},
		{"not modhex", "a" + good[1:], "609963eae7b5", ErrFormat},
	}
	for _, tt := range tests {
		u, _ := ParseUID(tt.uid)
		if _, err := Decrypt(key, u, tt.token); !errors.Is(err, tt.want) {
			t.Errorf("%s: Decrypt(%q) error = %v, want %v", tt.name, tt.token, err, tt.want)
		}
	}
}

func TestSplit(t *testing.T) {
	tok := strings.Repeat("c", 32)
	tests := []struct {
		in      string
		pub     string
		wantErr bool
	}{
		{tok, "", false},
		{"cccccccccccb" + tok, "cccccccccccb", false},
		{strings.Repeat("v", 16) + tok, strings.Repeat("v", 16), false},
		{strings.Repeat("v", 17) + tok, "", true},
		{tok[1:], "", true},
		{"", "", true},
		{"CCCCCCCCCCCB" + tok, "", true},
		{"ccccccccccc " + tok, "", true},
		{"cccccccccccb" + tok + "\n", "", true},
	}
	for _, tt := range tests {
		pub, token, err := Split(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("Split(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && (pub != tt.pub || token != tok) {
			t.Errorf("Split(%q) = %q, %q; want %q, %q", tt.in, pub, token, tt.pub, tok)
		}
	}
}

func TestParseKeyUID(t *testing.T) {
	for _, s := range []string{"", "c68c9df8cbfe7d2f994cb904046c721", "c68c9df8cbfe7d2f994cb904046c721g", "c68c9df8cbfe7d2f994cb904046c72180"} {
		if _, err := ParseKey(s); !errors.Is(err, ErrKey) {
			t.Errorf("ParseKey(%q) error = %v, want ErrKey", s, err)
		}
	}
	for _, s := range []string{"", "609963eae7b", "609963eae7bz", "609963eae7b500"} {
		if _, err := ParseUID(s); !errors.Is(err, ErrUID) {
			t.Errorf("ParseUID(%q) error = %v, want ErrUID", s, err)
		}
	}
	k, err := ParseKey("C68C9DF8CBFE7D2F994CB904046C7218")
	if err != nil || k.String() != "c68c9df8cbfe7d2f994cb904046c7218" {
		t.Errorf("ParseKey(upper) = %v, %v", k, err)
	}
}

func TestCRC16(t *testing.T) {
	// The residue property: appending the complemented CRC gives CRCResidue.
	for _, v := range vectors {
		key, _ := ParseKey(v.key)
		_, token, _ := Split(v.otp)
		pt, _ := DecryptBlock(key, token)
		if got := CRC16(pt[:]); got != CRCResidue {
			t.Errorf("CRC16(%x) = %04x, want %04x", pt, got, CRCResidue)
		}
	}
}

func TestTimestamp(t *testing.T) {
	tok := Token{TimestampLow: 0x8d48, TimestampHigh: 0x0f}
	if got := tok.Timestamp(); got != 1019208 {
		t.Errorf("Timestamp() = %d, want 1019208", got)
	}
}

func FuzzSplit(f *testing.F) {
	for _, v := range vectors {
		f.Add(v.otp)
	}
	f.Add("")
	f.Add(strings.Repeat("c", 49))
	f.Fuzz(func(t *testing.T, s string) {
		pub, tok, err := Split(s)
		if err != nil {
			return
		}
		if pub+tok != s || len(tok) != TokenLen || len(pub) > MaxPublicIDLen {
			t.Fatalf("Split(%q) = %q, %q", s, pub, tok)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	for _, v := range vectors {
		_, tok, _ := Split(v.otp)
		f.Add(v.key, v.uid, tok)
	}
	f.Fuzz(func(t *testing.T, keyHex, uidHex, token string) {
		key, err := ParseKey(keyHex)
		if err != nil {
			return
		}
		uid, err := ParseUID(uidHex)
		if err != nil {
			return
		}
		tok, err := Decrypt(key, uid, token)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUID) && !errors.Is(err, ErrCRC) {
				t.Fatalf("Decrypt: unexpected error %v", err)
			}
			return
		}
		if tok.UID != uid {
			t.Fatalf("Decrypt accepted UID %v, want %v", tok.UID, uid)
		}
		if got := Encrypt(key, tok); got != token {
			t.Fatalf("Encrypt(Decrypt(%q)) = %q", token, got)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add(make([]byte, 16))
	pt, _ := hex.DecodeString("609963eae7b50100408d0f004754f957")
	f.Add(pt)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) != BlockSize {
			return
		}
		var blk [BlockSize]byte
		copy(blk[:], b)
		tok, err := Parse(blk)
		if err != nil {
			return
		}
		if tok.Marshal() != blk {
			t.Fatalf("Marshal(Parse(%x)) = %x", blk, tok.Marshal())
		}
	})
}
