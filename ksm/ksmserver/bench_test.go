package ksmserver_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
)

// benchOTP is a minted OTP and the answer line the KSM owes for it.
type benchOTP struct{ otp, want string }

// benchSetup returns a store of backend be holding n random keys, and one
// OTP for each key.
func benchSetup(b *testing.B, be testdb.Backend, n int) (ksm.KeyStore, []benchOTP) {
	b.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: be.DSN(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	keys := make([]ksm.Key, n)
	otps := make([]benchOTP, n)
	for i := range keys {
		var r [28]byte
		rand.Read(r[:])
		var key otp.Key
		var uid otp.UID
		copy(key[:], r[12:])
		copy(uid[:], r[6:12])
		pub := modhex.EncodeToString(r[:6])
		keys[i] = ksm.Key{SerialNr: int64(i + 1), PublicName: pub, InternalName: hex.EncodeToString(uid[:]), AESKey: hex.EncodeToString(key[:]), Active: true}
		t := otp.Token{UID: uid, Counter: uint16(i % 0x7fff), TimestampLow: uint16(i), Use: uint8(i)}
		otps[i] = benchOTP{otp.Generate(pub, key, t), ksm.Result{Counter: t.Counter, Low: t.TimestampLow, Use: t.Use}.String() + "\n"}
	}
	if err := st.Import(ctx, keys); err != nil {
		b.Fatal(err)
	}
	return st, otps
}

// BenchmarkDecrypter times a decryption without HTTP: format check, key
// lookup in a table of 10,000 keys, AES, UID and CRC checks.
func BenchmarkDecrypter(b *testing.B) {
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			st, otps := benchSetup(b, be, 10_000)
			d := ksmserver.NewDecrypter(st, nil)
			ctx := context.Background()
			i := 0
			for b.Loop() {
				o := otps[i%len(otps)]
				i++
				if res, err := d.Decrypt(ctx, o.otp); err != nil || res.String()+"\n" != o.want {
					b.Fatalf("Decrypt = %v, %v; want %q", res, err, o.want)
				}
			}
		})
	}
}

// BenchmarkDecryptHandler times the /wsapi/decrypt handler in-process
// (request parsing, decryption, answer, metrics; no network), on SQLite.
func BenchmarkDecryptHandler(b *testing.B) {
	st, otps := benchSetup(b, testdb.Backend{Name: "sqlite", DSN: testdb.SQLite}, 10_000)
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*http.Request, len(otps))
	for i, o := range otps {
		reqs[i] = httptest.NewRequest(http.MethodGet, "/wsapi/decrypt?otp="+o.otp, nil)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, reqs[i%len(reqs)])
		if got := w.Body.String(); got != otps[i%len(otps)].want {
			b.Fatalf("answer %q, want %q", got, otps[i%len(otps)].want)
		}
		i++
	}
}
