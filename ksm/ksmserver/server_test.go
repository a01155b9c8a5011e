package ksmserver_test

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
)

// Keys of the published test vectors.
var (
	// ciKey is the key YK-KSM's own self-test imports.
	ciKey = ksm.Key{SerialNr: 0, PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
		AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}
	// docKey2 is key 2 of YK-KSM's key import documentation.
	docKey2 = ksm.Key{SerialNr: 2, PublicName: "cccccccccccd", Created: "2009-12-14T16:40:57", InternalName: "7a5ad1886b70",
		AESKey: "3091a8048524ab8407ae816457d764e5", LockCode: "8e5ab609e346", Active: true, Hardware: true}
	// inactiveKey is a valid key marked inactive.
	inactiveKey = ksm.Key{SerialNr: 3, PublicName: "ccccccccccce", InternalName: "0102030405ff",
		AESKey: "000102030405060708090a0b0c0d0e0f", Active: false}
)

const (
	ciOTP      = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"
	ciOK       = "OK counter=0001 low=8d40 high=0f use=00\n"
	corruptOTP = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv"

	noOTP    = "ERR No OTP provided\n"
	badForm  = "ERR Invalid OTP format\n"
	unknown  = "ERR Unknown yubikey\n"
	corrupt  = "ERR Corrupt OTP\n"
	database = "ERR Database error\n"
)

// syncBuffer is a log destination the handlers may write to concurrently.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// testWriter sends log lines to the test's output.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// env is a KSM under test: a real store behind a real HTTP server.
type env struct {
	srv   *httptest.Server
	store *sqlstore.Store
	reg   *prometheus.Registry
	logs  *syncBuffer
}

// newEnv starts a KSM over a new database of the backend holding keys.
// level is the logger's level.
func newEnv(t *testing.T, dsn string, level slog.Level, keys ...ksm.Key) *env {
	t.Helper()
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatalf("sqlstore.Open: %v", err)
	}
	t.Cleanup(func() { store.Close() })
	if len(keys) > 0 {
		if err := store.Import(ctx, keys); err != nil {
			t.Fatalf("Import: %v", err)
		}
	}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(io.MultiWriter(logs, testWriter{t}), &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: store, Logger: logger, Registry: reg})
	if err != nil {
		t.Fatalf("NewMux: %v", err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &env{srv: srv, store: store, reg: reg, logs: logs}
}

// do sends a request and returns the status, the body and the response.
func (e *env) do(t *testing.T, method, target, contentType, body string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, target, err)
	}
	return resp.StatusCode, string(b), resp
}

// answer sends a request that must get a protocol answer and returns its body.
func (e *env) answer(t *testing.T, method, target, contentType, body string) string {
	t.Helper()
	code, got, resp := e.do(t, method, target, contentType, body)
	if code != http.StatusOK {
		t.Errorf("%s %s: status %d, want 200", method, target, code)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
		t.Errorf("%s %s: Content-Type %q, want text/plain; charset=utf-8", method, target, ct)
	}
	return got
}

// sealed encrypts plaintext with key: a token with whatever CRC the caller put in.
func sealed(t testing.TB, key string, pt [16]byte) string {
	t.Helper()
	k, err := hex.DecodeString(key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	var ct [16]byte
	c.Encrypt(ct[:], pt[:])
	return modhex.EncodeToString(ct[:])
}

// toDvorak spells a modhex string the way a YubiKey types it on a US Dvorak layout.
func toDvorak(s string) string {
	return strings.Map(func(r rune) rune {
		return rune(modhex.DvorakAlphabet[strings.IndexRune(modhex.Alphabet, r)])
	}, s)
}

func multipartBody(t *testing.T, fields ...string) (contentType, body string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		if err := w.WriteField(fields[i], fields[i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), b.String()
}

func TestDecryptAPI(t *testing.T) {
	uid, _ := otp.ParseUID(ciKey.InternalName)
	badCRC := otp.Token{UID: uid, Counter: 7, TimestampLow: 0x1234, TimestampHigh: 0x56, Use: 9, Random: 0xbeef}.Marshal()
	badCRC[15] ^= 0x01
	badCRCOTP := ciKey.PublicName + sealed(t, ciKey.AESKey, badCRC)
	inactiveOTP := inactiveKey.PublicName + sealed(t, inactiveKey.AESKey,
		otp.Token{UID: otp.UID{1, 2, 3, 4, 5, 0xff}, Counter: 1}.Marshal())
	mpType, mpBody := multipartBody(t, "otp", ciOTP)
	mpBadType, mpBadBody := multipartBody(t, "otp", corruptOTP, "otp", ciOTP)
	form := "application/x-www-form-urlencoded"
	big := "otp=" + ciOTP + "&pad=" + strings.Repeat("x", ksmserver.MaxBodySize)

	tests := []struct {
		name, method, target, contentType, body, want string
	}{
		{"published vector", "GET", "/wsapi/decrypt?otp=" + ciOTP, "", "", ciOK},
		{"published corrupt", "GET", "/wsapi/decrypt?otp=" + corruptOTP, "", "", corrupt},
		{"published unknown", "GET", "/wsapi/decrypt?otp=cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv", "", "", unknown},
		{"installation doc OTP", "GET", "/wsapi/decrypt?otp=dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh", "", "", unknown},
		{"doc key 2 UID error", "GET", "/wsapi/decrypt?otp=cccccccccccdvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", "", "", corrupt},
		{"php script name", "GET", "/wsapi/decrypt.php?otp=" + ciOTP, "", "", ciOK},
		{"trailing slash", "GET", "/wsapi/decrypt/?otp=" + ciOTP, "", "", ciOK},
		{"other parameters", "GET", "/wsapi/decrypt?id=1&otp=" + ciOTP + "&nonce=x", "", "", ciOK},
		{"percent-encoded", "GET", "/wsapi/decrypt?o%74p=%69dkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgk%75", "", "", ciOK},
		{"last value wins", "GET", "/wsapi/decrypt?otp=" + corruptOTP + "&otp=" + ciOTP, "", "", ciOK},
		{"semicolon is not a separator", "GET", "/wsapi/decrypt?otp=" + ciOTP + ";x=1", "", "", badForm},
		{"no parameters", "GET", "/wsapi/decrypt", "", "", noOTP},
		{"other parameter only", "GET", "/wsapi/decrypt?otpx=" + ciOTP, "", "", noOTP},
		{"empty", "GET", "/wsapi/decrypt?otp=", "", "", noOTP},
		{"bare name", "GET", "/wsapi/decrypt?otp", "", "", noOTP},
		{"PHP-falsy 0", "GET", "/wsapi/decrypt?otp=0", "", "", noOTP},
		{"00 is truthy", "GET", "/wsapi/decrypt?otp=00", "", "", badForm},
		{"upper case", "GET", "/wsapi/decrypt?otp=" + strings.ToUpper(ciOTP), "", "", badForm},
		{"trailing space", "GET", "/wsapi/decrypt?otp=" + ciOTP + "+", "", "", badForm},
		{"31 characters", "GET", "/wsapi/decrypt?otp=" + ciOTP[13:], "", "", badForm},
		{"32 characters, no public ID", "GET", "/wsapi/decrypt?otp=" + ciOTP[12:], "", "", unknown},
		{"49 characters", "GET", "/wsapi/decrypt?otp=ccccc" + ciOTP, "", "", badForm},
		{"48 characters, unknown", "GET", "/wsapi/decrypt?otp=cccc" + ciOTP, "", "", unknown},
		{"not modhex", "GET", "/wsapi/decrypt?otp=" + strings.Replace(ciOTP, "t", "a", 1), "", "", badForm},
		{"Dvorak not converted", "GET", "/wsapi/decrypt?otp=" + toDvorak(ciOTP), "", "", badForm},
		{"NUL byte", "GET", "/wsapi/decrypt?otp=" + ciOTP + "%00", "", "", badForm},
		{"inactive key", "GET", "/wsapi/decrypt?otp=" + inactiveOTP, "", "", unknown},
		{"right UID, bad CRC", "GET", "/wsapi/decrypt?otp=" + badCRCOTP, "", "", corrupt},
		{"POST form", "POST", "/wsapi/decrypt", form, "otp=" + ciOTP, ciOK},
		{"POST form with charset", "POST", "/wsapi/decrypt.php", form + "; charset=UTF-8", "a=b&otp=" + ciOTP, ciOK},
		{"POST multipart", "POST", "/wsapi/decrypt", mpType, mpBody, ciOK},
		{"POST multipart last wins", "POST", "/wsapi/decrypt", mpBadType, mpBadBody, ciOK},
		{"POST body replaces query", "POST", "/wsapi/decrypt?otp=" + corruptOTP, form, "otp=" + ciOTP, ciOK},
		{"POST query only", "POST", "/wsapi/decrypt?otp=" + ciOTP, form, "a=b", ciOK},
		{"POST empty body", "POST", "/wsapi/decrypt", form, "", noOTP},
		{"POST body without form type", "POST", "/wsapi/decrypt", "text/plain", "otp=" + ciOTP, noOTP},
		{"POST oversized body ignored", "POST", "/wsapi/decrypt", form, big, noOTP},
		{"POST oversized body, query kept", "POST", "/wsapi/decrypt?otp=" + ciOTP, form, big, ciOK},
		{"POST garbled multipart", "POST", "/wsapi/decrypt", "multipart/form-data; boundary=zz", "--zz\r\ngarbage", noOTP},
		{"POST multipart without boundary", "POST", "/wsapi/decrypt", "multipart/form-data", mpBody, noOTP},
		{"POST binary body", "POST", "/wsapi/decrypt", form, "otp=\xff\xfe%%", badForm},
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b.DSN(t), slog.LevelInfo, ciKey, docKey2, inactiveKey)
			for _, tt := range tests {
				if got := e.answer(t, tt.method, tt.target, tt.contentType, tt.body); got != tt.want {
					t.Errorf("%s: %s %s = %q, want %q", tt.name, tt.method, tt.target, got, tt.want)
				}
			}

			// HEAD answers like GET, without a body.
			if code, body, _ := e.do(t, "HEAD", "/wsapi/decrypt?otp="+ciOTP, "", ""); code != http.StatusOK || body != "" {
				t.Errorf("HEAD = %d %q, want 200 and no body", code, body)
			}
			for _, m := range []string{"PUT", "DELETE", "OPTIONS"} {
				code, _, resp := e.do(t, m, "/wsapi/decrypt?otp="+ciOTP, "", "")
				if allow := resp.Header.Get("Allow"); code != http.StatusMethodNotAllowed || !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
					t.Errorf("%s = %d, Allow %q; want 405, Allow GET, HEAD, POST", m, code, allow)
				}
			}
			if code, _, _ := e.do(t, "GET", "/wsapi/decrypt/x?otp="+ciOTP, "", ""); code != http.StatusNotFound {
				t.Errorf("GET /wsapi/decrypt/x = %d, want 404", code)
			}

			// The default log level shows no secret: no AES key, no full OTP,
			// no decrypted token.
			logs := e.logs.String()
			for _, secret := range []string{ciKey.AESKey, docKey2.AESKey, inactiveKey.AESKey, ciOTP, corruptOTP,
				ciOTP[12:], badCRCOTP, "609963eae7b50100408d0f004754f957", "a515841f249c"} {
				if strings.Contains(logs, secret) {
					t.Errorf("log at Info contains secret %q", secret)
				}
			}
			for _, want := range []string{"result=ok public_id=idkfefrdhtru", "result=corrupt public_id=cccccccccccd", "result=no_otp", "UID error"} {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %q", want)
				}
			}
		})
	}
}

// TestGeneratedOTPs decrypts OTPs minted for random keys and public IDs of every length.
func TestGeneratedOTPs(t *testing.T) {
	type minted struct {
		otp  string
		want ksm.Result
	}
	var keys []ksm.Key
	var otps []minted
	for n := 0; n <= otp.MaxPublicIDLen; n++ {
		var raw [otp.KeySize + otp.UIDSize + 8]byte
		rand.Read(raw[:])
		var key otp.Key
		var uid otp.UID
		copy(key[:], raw[:])
		copy(uid[:], raw[otp.KeySize:])
		pub := modhex.EncodeToString(raw[otp.KeySize+otp.UIDSize:])[:n]
		keys = append(keys, ksm.Key{SerialNr: int64(n), PublicName: pub, InternalName: uid.String(), AESKey: key.String(), Active: true})
		for i := range 3 {
			tok := otp.Token{UID: uid, Counter: uint16(n*1000+i) | uint16(i)<<15, TimestampLow: uint16(i * 777), TimestampHigh: uint8(n), Use: uint8(255 - i), Random: uint16(i)}
			otps = append(otps, minted{otp.Generate(pub, key, tok), ksm.Result{Counter: tok.Counter, Low: tok.TimestampLow, High: tok.TimestampHigh, Use: tok.Use}})
		}
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b.DSN(t), slog.LevelWarn, keys...)
			for _, m := range otps {
				want := m.want.String() + "\n"
				if got := e.answer(t, "GET", "/wsapi/decrypt?otp="+m.otp, "", ""); got != want {
					t.Errorf("GET otp=%s = %q, want %q", m.otp, got, want)
				}
				// The same token under another key's public ID is a UID error or CRC error.
				other := keys[(len(m.otp)-otp.TokenLen+1)%len(keys)].PublicName + m.otp[len(m.otp)-otp.TokenLen:]
				if got := e.answer(t, "GET", "/wsapi/decrypt?otp="+other, "", ""); got != corrupt {
					t.Errorf("GET otp=%s (wrong key) = %q, want %q", other, got, corrupt)
				}
			}
		})
	}
}

func TestEmptyDatabase(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b.DSN(t), slog.LevelInfo)
			for _, o := range []string{"dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh", ciOTP, ciOTP[12:]} {
				if got := e.answer(t, "GET", "/wsapi/decrypt?otp="+o, "", ""); got != unknown {
					t.Errorf("GET otp=%s on an empty database = %q, want %q", o, got, unknown)
				}
			}
		})
	}
}

// TestDatabaseDown closes the database under a running server: every
// well-formed OTP gets "ERR Database error", never a verdict, and /healthz
// turns 503.
func TestDatabaseDown(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			e := newEnv(t, b.DSN(t), slog.LevelInfo, ciKey)
			if code, body, _ := e.do(t, "GET", "/healthz", "", ""); code != http.StatusOK || body != "OK\n" {
				t.Errorf("GET /healthz = %d %q, want 200 \"OK\\n\"", code, body)
			}
			if err := e.store.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			for _, tt := range []struct{ otp, want string }{
				{ciOTP, database},
				{"cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv", database},
				{"", noOTP},            // checked before the database
				{"x" + ciOTP, badForm}, // checked before the database
			} {
				if got := e.answer(t, "GET", "/wsapi/decrypt?otp="+tt.otp, "", ""); got != tt.want {
					t.Errorf("GET otp=%s with the database closed = %q, want %q", tt.otp, got, tt.want)
				}
			}
			if code, body, _ := e.do(t, "GET", "/healthz", "", ""); code != http.StatusServiceUnavailable || body != database {
				t.Errorf("GET /healthz with the database closed = %d %q, want 503 %q", code, body, database)
			}
			if logs := e.logs.String(); !strings.Contains(logs, "level=ERROR msg=decrypt result=database_error public_id=idkfefrdhtru") {
				t.Errorf("log lacks the database error line:\n%s", logs)
			}
		})
	}
}

// TestMalformedStoredKey: a key row the KSM cannot use is a database
// problem, logged at Error without the key.
func TestMalformedStoredKey(t *testing.T) {
	badAES := ciKey
	badAES.AESKey = "c68c9df8cbfe7d2f994cb904046c72zz"
	shortAES := docKey2
	shortAES.AESKey = "3091a8048524ab8407ae816457d764"
	badUID := inactiveKey
	badUID.Active = true
	badUID.InternalName = "0102030405g5"
	e := newEnv(t, testdb.SQLite(t), slog.LevelInfo, badAES, shortAES, badUID)
	for _, o := range []string{ciOTP, "cccccccccccdvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvvv", "ccccccccccce" + ciOTP[12:]} {
		if got := e.answer(t, "GET", "/wsapi/decrypt?otp="+o, "", ""); got != database {
			t.Errorf("GET otp=%s with a malformed stored key = %q, want %q", o, got, database)
		}
	}
	logs := e.logs.String()
	for _, want := range []string{"stored aeskey is not 32 hex digits\" public_id=idkfefrdhtru", "stored internalname is not 12 hex digits\" public_id=ccccccccccce"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	for _, secret := range []string{badAES.AESKey, shortAES.AESKey, "zz", "'z'"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains key material %q", secret)
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), slog.LevelWarn, ciKey)
	for range 3 {
		e.answer(t, "GET", "/wsapi/decrypt?otp="+ciOTP, "", "")
	}
	e.answer(t, "GET", "/wsapi/decrypt?otp="+corruptOTP, "", "")
	e.answer(t, "GET", "/wsapi/decrypt", "", "")
	e.answer(t, "POST", "/wsapi/decrypt", "application/x-www-form-urlencoded", "otp=x")
	e.answer(t, "GET", "/wsapi/decrypt?otp=ccccccccccccccccccccccccccccccccc", "", "")

	code, body, _ := e.do(t, "GET", "/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics = %d", code)
	}
	for _, want := range []string{
		`ykksm_decrypt_total{result="ok"} 3`,
		`ykksm_decrypt_total{result="corrupt"} 1`,
		`ykksm_decrypt_total{result="no_otp"} 1`,
		`ykksm_decrypt_total{result="invalid_format"} 1`,
		`ykksm_decrypt_total{result="unknown_key"} 1`,
		`ykksm_decrypt_total{result="database_error"} 0`,
		`ykksm_decrypt_duration_seconds_count 7`,
	} {
		if !strings.Contains(body, want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// The metrics live on the registry the caller passed, so a second
	// handler on it is refused.
	if _, err := ksmserver.NewMux(ksmserver.Config{Store: e.store, Registry: e.reg}); err == nil {
		t.Error("NewMux on a registry that already has the metrics succeeded, want an error")
	}
	if _, err := ksmserver.NewMux(ksmserver.Config{}); err == nil {
		t.Error("NewMux without a store succeeded, want an error")
	}
}

// panicStore is a KeyStore that panics on Lookup: the handler's last line of defence.
type panicStore struct{ ksm.KeyStore }

func (panicStore) Lookup(context.Context, string) (ksm.Key, error) { panic("lookup exploded") }

// breachStore is a KeyStore that returns an error outside its contract.
type breachStore struct{ ksm.KeyStore }

func (breachStore) Lookup(context.Context, string) (ksm.Key, error) {
	return ksm.Key{}, fmt.Errorf("surprise")
}

func TestMisbehavingStore(t *testing.T) {
	for _, tt := range []struct {
		name  string
		store ksm.KeyStore
	}{
		{"panic", panicStore{}},
		{"error outside the contract", breachStore{}},
	} {
		mux, err := ksmserver.NewMux(ksmserver.Config{Store: tt.store, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/wsapi/decrypt?otp="+ciOTP, nil))
		if rec.Code != http.StatusOK || rec.Body.String() != database {
			t.Errorf("%s: GET = %d %q, want 200 %q", tt.name, rec.Code, rec.Body.String(), database)
		}
		// A store without Ping is healthy as long as the process runs.
		rec = httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "OK\n" {
			t.Errorf("%s: GET /healthz = %d %q, want 200 \"OK\\n\"", tt.name, rec.Code, rec.Body.String())
		}
	}
}

// hungStore is a KeyStore whose database never answers: Lookup waits for its
// context, as database/sql does on a hung server.
type hungStore struct{ ksm.KeyStore }

func (hungStore) Lookup(ctx context.Context, _ string) (ksm.Key, error) {
	<-ctx.Done()
	return ksm.Key{}, fmt.Errorf("%w: %w", ksm.ErrDatabase, ctx.Err())
}

// TestLookupContext: a client hanging up does not turn the lookup into a
// database error (YK-VAL hangs up on the KSMs that lose the race), while a
// database that does not answer within LookupTimeout does give one.
func TestLookupContext(t *testing.T) {
	e := newEnv(t, testdb.SQLite(t), slog.LevelInfo, ciKey)
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: e.store, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/wsapi/decrypt?otp="+ciOTP, nil).WithContext(ctx))
	if rec.Body.String() != ciOK {
		t.Errorf("GET from a client that went away = %q, want %q", rec.Body.String(), ciOK)
	}

	mux, err = ksmserver.NewMux(ksmserver.Config{Store: hungStore{}, LookupTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/wsapi/decrypt?otp="+ciOTP, nil))
	if rec.Code != http.StatusOK || rec.Body.String() != database {
		t.Errorf("GET with a hung database = %d %q, want 200 %q", rec.Code, rec.Body.String(), database)
	}
}

// TestUpperCaseStoredKey: hex read from the database is decoded, not compared
// as text, so upper-case digits work (YK-KSM's string comparison of the
// private ID failed on them).
func TestUpperCaseStoredKey(t *testing.T) {
	k := ciKey
	k.InternalName = strings.ToUpper(k.InternalName)
	k.AESKey = strings.ToUpper(k.AESKey)
	e := newEnv(t, testdb.SQLite(t), slog.LevelInfo, k)
	if got := e.answer(t, "GET", "/wsapi/decrypt?otp="+ciOTP, "", ""); got != ciOK {
		t.Errorf("GET otp=%s with an upper-case stored key = %q, want %q", ciOTP, got, ciOK)
	}
}
