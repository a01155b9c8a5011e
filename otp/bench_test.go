package otp_test

import (
	"testing"

	"github.com/ykstack/ykstack/otp"
)

// benchKey and benchUID are arbitrary; the benchmarks time the work, not
// the values.
var (
	benchKey = otp.Key{0xec, 0xde, 0x18, 0xdb, 0xe7, 0x6f, 0xbd, 0x0c, 0x33, 0x33, 0x0f, 0x1c, 0x35, 0x48, 0x71, 0xdb}
	benchUID = otp.UID{0x87, 0x92, 0xeb, 0xfe, 0x26, 0xcc}
)

// BenchmarkDecrypt times one token's decryption: modhex decoding, AES,
// the constant-time UID comparison and the CRC check.
func BenchmarkDecrypt(b *testing.B) {
	token := otp.Encrypt(benchKey, otp.Token{UID: benchUID, Counter: 19, TimestampLow: 0x8d40, TimestampHigh: 0x0f, Use: 3})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := otp.Decrypt(benchKey, benchUID, token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSplit times the OTP format check every server does first.
func BenchmarkSplit(b *testing.B) {
	s := otp.Generate("cccccccccccb", benchKey, otp.Token{UID: benchUID, Counter: 1})
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := otp.Split(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGenerate times minting an OTP, as load generators and tests do.
func BenchmarkGenerate(b *testing.B) {
	t := otp.Token{UID: benchUID, Counter: 1}
	b.ReportAllocs()
	for b.Loop() {
		t.Use++
		otp.Generate("cccccccccccb", benchKey, t)
	}
}
