package otp_test

import (
	"crypto/rand"
	"encoding/binary"
	"testing"

	"github.com/conformal/yubikey"

	"github.com/ykstack/ykstack/otp"
)

// TestOracle checks valid tokens against github.com/conformal/yubikey, an
// independent implementation. It is too lax to build on (it maps bad modhex to
// zero and never compares the UID) but agrees with us on genuine tokens.
func TestOracle(t *testing.T) {
	for i := range 500 {
		var key otp.Key
		var raw [16]byte
		rand.Read(key[:])
		rand.Read(raw[:])
		tok := otp.Token{
			Counter:       binary.LittleEndian.Uint16(raw[6:8]),
			TimestampLow:  binary.LittleEndian.Uint16(raw[8:10]),
			TimestampHigh: raw[10],
			Use:           raw[11],
			Random:        binary.LittleEndian.Uint16(raw[12:14]),
		}
		copy(tok.UID[:], raw[:6])
		s := otp.Generate("cccccccccccb", key, tok)

		_, o, err := yubikey.ParseOTPString(s)
		if err != nil {
			t.Fatalf("round %d: oracle ParseOTPString(%q): %v", i, s, err)
		}
		ot, err := o.Parse(yubikey.Key(key))
		if err != nil {
			t.Fatalf("round %d: oracle Parse(%q): %v", i, s, err)
		}
		if otp.UID(ot.Uid) != tok.UID || ot.Ctr != tok.Counter || ot.Tstpl != tok.TimestampLow ||
			ot.Tstph != tok.TimestampHigh || ot.Use != tok.Use || ot.Rnd != tok.Random {
			t.Fatalf("round %d: oracle decoded %+v, want %+v", i, ot, tok)
		}
		_, token, _ := otp.Split(s)
		got, err := otp.Decrypt(key, tok.UID, token)
		if err != nil {
			t.Fatalf("round %d: Decrypt(%q): %v", i, s, err)
		}
		if got.CRC != ot.Crc {
			t.Fatalf("round %d: CRC = %04x, oracle %04x", i, got.CRC, ot.Crc)
		}
	}
}
