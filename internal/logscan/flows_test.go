package logscan_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ykstack/ykstack/cmd/ykvald/ksmadapter"
	"github.com/ykstack/ykstack/internal/logscan"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keycache"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/seal"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// world holds the secrets of a test, registered in set as they are made.
type world struct {
	t   testing.TB
	set *logscan.Set
}

func newWorld(t testing.TB) *world {
	w := &world{t: t, set: &logscan.Set{}}
	w.set.Text("private key (PEM)", "PRIVATE KEY")
	return w
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// key returns a new YubiKey with random public ID, private ID and AES key.
func (w *world) key() ksm.Key {
	k := ksm.Key{SerialNr: 4711, PublicName: modhex.EncodeToString(randBytes(6)), Created: "2026-01-01T00:00:00", InternalName: hex.EncodeToString(randBytes(6)),
		AESKey: hex.EncodeToString(randBytes(16)), LockCode: hex.EncodeToString(randBytes(6)), Active: true}
	w.register(k)
	return k
}

func (w *world) register(k ksm.Key) {
	w.set.HexString("AES key", k.AESKey)
	w.set.HexString("private ID", k.InternalName)
	w.set.HexString("lock code", k.LockCode)
}

// otp mints an OTP of k at (counter, use) and registers it and its
// decrypted token.
func (w *world) otp(k ksm.Key, counter uint16, use uint8) string {
	aes, err := otp.ParseKey(k.AESKey)
	if err != nil {
		w.t.Fatal(err)
	}
	uid, err := otp.ParseUID(k.InternalName)
	if err != nil {
		w.t.Fatal(err)
	}
	tok := otp.Token{UID: uid, Counter: counter, Use: use, TimestampLow: uint16(use) * 8, TimestampHigh: 3, Random: 0x1234}
	o := otp.Generate(k.PublicName, aes, tok)
	w.set.OTP(o)
	pt := tok.Marshal()
	w.set.Hex("token plaintext", pt[:])
	return o
}

// secret returns a new API secret (base64 of 20 bytes).
func (w *world) secret() string {
	s := base64.StdEncoding.EncodeToString(randBytes(20))
	w.set.Base64("API secret", s)
	return s
}

// kek returns a new KEK's raw bytes, registered in its text and raw forms.
func (w *world) kek(kind string) []byte {
	raw := seal.GenerateKEK()
	w.set.Base64(kind, strings.TrimSpace(seal.FormatKEK(raw)))
	w.set.Hex(kind, raw)
	return raw
}

// check scans a log and fails the test on every hit.
func (w *world) check(source, text string) {
	w.t.Helper()
	for _, h := range w.set.Scan(source, text) {
		w.t.Errorf("secret in a log: %s", h)
	}
}

// signedQuery returns q with its signature under the API secret.
func signedQuery(secret, q string) string {
	sig := val.Sign(val.DecodeKey(secret), val.FieldsFromValues(val.ParseQuery(q)))
	return q + "&h=" + url.QueryEscape(sig)
}

// verify GETs a verify request and returns the answer's status.
func verify(t testing.TB, c *http.Client, base, query string) val.Status {
	t.Helper()
	resp, err := c.Get(base + "/wsapi/2.0/verify?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r, err := val.ParseResponse(b)
	if err != nil {
		t.Fatalf("verify?%s: %q: %v", query, b, err)
	}
	return r.Status()
}

// get GETs a URL and returns the body.
func get(t testing.TB, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func expect[T comparable](t testing.TB, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// TestInProcessFlows runs the KSM and two validation servers of a sync
// pool in process, sealed at rest, at the default log level (Info), through
// the protocol's main flows, and scans every record, as text and as JSON,
// for the secrets used.
func TestInProcessFlows(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	var text, js logscan.Buffer
	logger := slog.New(slog.NewMultiHandler(slog.NewTextHandler(&text, nil), slog.NewJSONHandler(&js, nil)))

	ksmKEK, err := seal.NewKEK(w.kek("KSM KEK"))
	if err != nil {
		t.Fatal(err)
	}
	valKEK, err := valseal.NewKEK(w.kek("VAL KEK"))
	if err != nil {
		t.Fatal(err)
	}
	poolKey := randBytes(32)
	w.set.Base64("pool key", base64.StdEncoding.EncodeToString(poolKey))

	// The KSM: a sealed key database, imported, behind a key cache.
	k1, k2, stranger := w.key(), w.key(), w.key()
	ci := ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5", AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}
	w.register(ci)
	ksmStore, err := ksmsqlstore.OpenOptions(ctx, sqldb.Config{DSN: testdb.SQLite(t)}, ksmsqlstore.Options{Sealer: seal.New(ksmKEK)})
	if err != nil {
		t.Fatal(err)
	}
	defer ksmStore.Close()
	if err := ksmStore.Import(ctx, []ksm.Key{k1, k2, ci}); err != nil {
		t.Fatal(err)
	}
	cache, err := keycache.New(ksmStore, keycache.Config{TTL: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ksmMux, err := ksmserver.NewMux(ksmserver.Config{Store: cache, Logger: logger.With("server", "ksm")})
	if err != nil {
		t.Fatal(err)
	}
	ksmSrv := httptest.NewServer(ksmMux)
	defer ksmSrv.Close()
	kc, err := ksmclient.New(ksmclient.Config{URLs: []string{ksmSrv.URL + "/wsapi/decrypt"}, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}

	// Two validation servers with sealed secrets: A over HTTP to the KSM,
	// syncing to B and to a peer that is down; B with the KSM in process.
	s1, s2 := w.secret(), w.secret()
	openVAL := func() *valsqlstore.Store {
		st, err := valsqlstore.OpenOptions(ctx, sqldb.Config{DSN: testdb.SQLite(t)}, valsqlstore.Options{Sealer: valseal.New(valKEK)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.ImportClients(ctx, []val.Client{{ID: 1, Active: true, Created: 1, Secret: s1}, {ID: 2, Active: true, Created: 1, Secret: s2}}); err != nil {
			t.Fatal(err)
		}
		return st
	}
	loopback := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	storeB := openVAL()
	muxB, err := valserver.NewMux(valserver.Config{Store: storeB, KSM: ksmadapter.New(ksmserver.NewDecrypter(cache, logger.With("server", "ksm-b"))),
		Logger: logger.With("server", "val-b"), Registry: prometheus.NewRegistry(), SyncAllow: loopback, SyncKey: poolKey, RevokeIPs: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srvB := httptest.NewServer(muxB)
	defer srvB.Close()
	storeA := openVAL()
	reg := prometheus.NewRegistry()
	pool, err := valsync.New(valsync.Config{Store: storeA, Peers: []string{srvB.URL + "/wsapi/2.0/sync", "http://127.0.0.1:1/wsapi/2.0/sync"},
		Key: poolKey, Logger: logger.With("server", "val-a"), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	muxA, err := valserver.NewMux(valserver.Config{Store: storeA, KSM: ksmadapter.New(kc), Syncer: pool, Logger: logger.With("server", "val-a"),
		Registry: reg, SyncAllow: loopback, SyncKey: poolKey, RevokeIPs: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	srvA := httptest.NewServer(muxA)
	defer srvA.Close()
	c := http.DefaultClient

	// Verify on A: OK, then the replays, a bad signature, bad OTPs, an
	// unknown client.
	o1 := w.otp(k1, 1, 0)
	q := "id=1&nonce=aaaaaaaaaaaaaaaaaaaaaaaa&otp=" + o1 + "&sl=50&timeout=5&timestamp=1"
	expect(t, "verify a fresh OTP", verify(t, c, srvA.URL, signedQuery(s1, q)), val.StatusOK)
	expect(t, "the same request again", verify(t, c, srvA.URL, signedQuery(s1, q)), val.StatusReplayedRequest)
	expect(t, "the same OTP, another nonce", verify(t, c, srvA.URL, signedQuery(s1, "id=1&nonce=bbbbbbbbbbbbbbbbbbbbbbbb&otp="+o1)), val.StatusReplayedOTP)
	expect(t, "a bad signature", verify(t, c, srvA.URL, signedQuery(s2, "id=1&nonce=bbbbbbbbbbbbbbbbbbbbbbbb&otp="+w.otp(k1, 1, 1))), val.StatusBadSignature)
	corrupt := k1.PublicName + w.otp(k2, 1, 0)[12:]
	w.set.OTP(corrupt)
	expect(t, "an OTP of another key's AES key", verify(t, c, srvA.URL, "id=1&nonce=cccccccccccccccccccccccc&otp="+corrupt), val.StatusBadOTP)
	expect(t, "an unknown key", verify(t, c, srvA.URL, "id=1&nonce=cccccccccccccccccccccccc&otp="+w.otp(stranger, 1, 0)), val.StatusBadOTP)
	expect(t, "a malformed OTP", verify(t, c, srvA.URL, "id=1&nonce=cccccccccccccccccccccccc&otp="+w.otp(k1, 2, 0)[:40]+"xxxx"), val.StatusBadOTP)
	expect(t, "an unknown client", verify(t, c, srvA.URL, "id=99&nonce=cccccccccccccccccccccccc&otp="+w.otp(k1, 2, 1)), val.StatusNoSuchClient)
	resp, err := http.PostForm(srvA.URL+"/wsapi/2.0/verify", url.Values{"id": {"2"}, "nonce": {"dddddddddddddddddddddddd"}, "otp": {w.otp(k2, 1, 0)}, "sl": {"50"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// B knows A's OTP through the sync; the CI key through its own KSM.
	expect(t, "A's OTP on B", verify(t, c, srvB.URL, signedQuery(s1, "id=1&nonce=eeeeeeeeeeeeeeeeeeeeeeee&otp="+o1)), val.StatusReplayedOTP)
	ciOTP := w.otp(ci, 5, 0)
	expect(t, "the CI key on B", verify(t, c, srvB.URL, signedQuery(s2, "id=2&nonce=eeeeeeeeeeeeeeeeeeeeeeee&otp="+ciOTP)), val.StatusOK)
	unsigned := "otp=" + w.otp(k1, 9, 0) + "&modified=1&yk_publicname=" + k1.PublicName + "&yk_counter=9&yk_use=0&yk_high=0&yk_low=0&nonce=ffffffffffffffffffffffff"
	get(t, c, srvB.URL+"/wsapi/2.0/sync?"+unsigned) // not signed with the pool key: refused

	// Revoke, resync, and the queue worker failing to reach the dead peer.
	expect(t, "revoke", get(t, c, srvA.URL+"/wsapi/revoke?yk="+k1.PublicName+"&do=disable"), "OK Processed "+k1.PublicName+" with disable\n")
	expect(t, "verify a disabled key", verify(t, c, srvA.URL, "id=1&nonce=gggggggggggggggggggggggg&otp="+w.otp(k1, 3, 0)), val.StatusBadOTP)
	get(t, c, srvA.URL+"/wsapi/revoke?yk="+k1.PublicName+"&do=enable")
	expect(t, "resync", get(t, c, srvA.URL+"/wsapi/2.0/resync?yk=all"), "OK Initiated resync of all\n")
	wctx, stop := context.WithTimeout(ctx, 2*time.Second)
	pool.RunQueue(wctx, valsync.WorkerConfig{Interval: 50 * time.Millisecond, OldLimit: time.Nanosecond, Timeout: time.Second, Parallel: 2, MaxBackoff: 100 * time.Millisecond})
	stop()

	// The KSM's own API: OK and every error.
	for _, o := range []string{w.otp(k2, 7, 0), corrupt, w.otp(stranger, 2, 0), "", "notanotp", w.otp(ci, 6, 0)} {
		get(t, c, ksmSrv.URL+"/wsapi/decrypt?otp="+url.QueryEscape(o))
	}

	logs := text.String()
	for _, want := range []string{"msg=verify server=val-a status=OK", "status=REPLAYED_REQUEST", "status=BAD_SIGNATURE", "status=NO_SUCH_CLIENT",
		"msg=decrypt server=ksm result=corrupt", "msg=decrypt server=ksm result=unknown_key", "msg=sync server=val-b status=OPERATION_NOT_ALLOWED",
		"msg=verify server=val-b status=OK", "msg=revoke", "msg=resync", "queue worker"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the log lacks %q: the flows did not run as planned", want)
		}
	}
	if testing.Verbose() {
		t.Log(logs)
	}
	t.Logf("scanned %d lines of text and %d of JSON for %d secret strings", strings.Count(logs, "\n"), strings.Count(js.String(), "\n"), w.set.Len())
	w.check("in-process text log", logs)
	w.check("in-process JSON log", js.String())
	// The scan would see a leak: a planted OTP, AES key and secret.
	for _, planted := range []string{"otp=" + o1, "key=" + strings.ToUpper(k1.AESKey), "secret=" + s1} {
		if len(w.set.Scan("planted", logs+planted+"\n")) == 0 {
			t.Errorf("the scan misses a planted %q", planted)
		}
	}
}
