package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/cmd/ykvald/ksmadapter"
	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
)

func TestBuckets(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 129, 255, 256, 1000, 123456, 1 << 40, math.MaxInt64} {
		i := bucketOf(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("bucketOf(%d) = %d, want 0 to %d", v, i, histBuckets-1)
		}
		hi := bucketHigh(i)
		if hi < v {
			t.Errorf("bucketHigh(bucketOf(%d)) = %d, want ≥ %d", v, hi, v)
		}
		if i > 0 && bucketHigh(i-1) >= v {
			t.Errorf("bucketHigh(bucketOf(%d)-1) = %d, want < %d", v, bucketHigh(i-1), v)
		}
		if v >= 128 && float64(hi-v) > float64(v)/64 {
			t.Errorf("bucket of %d reaches %d: wider than 1/64", v, hi)
		}
	}
}

func TestQuantile(t *testing.T) {
	var h histogram
	if got := h.quantile(0.5); got != 0 {
		t.Errorf("empty quantile(0.5) = %v, want 0", got)
	}
	for i := 1; i <= 1000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Microsecond},
		{0.9, 900 * time.Microsecond},
		{0.99, 990 * time.Microsecond},
		{1, 1000 * time.Microsecond},
	} {
		got := h.quantile(tc.q)
		if got < tc.want || float64(got-tc.want) > float64(tc.want)/64 {
			t.Errorf("quantile(%v) = %v, want %v (+1/64)", tc.q, got, tc.want)
		}
	}
	if h.max != time.Millisecond || h.n != 1000 {
		t.Errorf("max, n = %v, %d, want 1ms, 1000", h.max, h.n)
	}
	var m histogram
	m.merge(&h)
	m.merge(&h)
	if m.n != 2000 || m.quantile(0.5) != h.quantile(0.5) {
		t.Errorf("merged twice: n = %d, p50 = %v, want 2000, %v", m.n, m.quantile(0.5), h.quantile(0.5))
	}
}

func TestLoopbackURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://127.0.0.2:80/", true},
		{"http://[::1]:8080", true},
		{"http://localhost:8080", true},
		{"http://10.0.0.1:8080", false},
		{"http://192.168.1.1", false},
		{"http://example.com", false},
		{"https://127.0.0.1:8443", true},
		{"https://localhost:8443/", true},
		{"https://10.0.0.1:8443", false},
		{"ftp://127.0.0.1:21", false},
		{"127.0.0.1:8080", false},
		{"", false},
	} {
		_, err := loopbackURL(context.Background(), tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("loopbackURL(%q) error = %v, want ok = %v", tc.url, err, tc.ok)
		}
	}
}

func TestRunLoadBounds(t *testing.T) {
	n := 0
	do := func(context.Context) error { n++; return nil }
	stats, err := runLoad(context.Background(), loadConfig{Concurrency: 1, Duration: time.Minute, MaxRequests: 50}, []requestFunc{do})
	if err != nil {
		t.Fatal(err)
	}
	if n != 50 || stats.hist.n != 50 || stats.errors != 0 {
		t.Errorf("MaxRequests 50: sent %d, measured %d, errors %d; want 50, 50, 0", n, stats.hist.n, stats.errors)
	}
	fail := func(context.Context) error { return fmt.Errorf("boom") }
	stats, err = runLoad(context.Background(), loadConfig{Concurrency: 1, Duration: time.Minute, MaxRequests: 7}, []requestFunc{fail})
	if err != nil {
		t.Fatal(err)
	}
	if stats.errors != 7 || len(stats.samples) != 1 || stats.samples[0] != "7× boom" {
		t.Errorf("failing requests: errors %d, samples %q; want 7, [7× boom]", stats.errors, stats.samples)
	}
	for _, bad := range []loadConfig{
		{Concurrency: 0, Duration: time.Second, MaxRequests: 1},
		{Concurrency: 1, Duration: 0, MaxRequests: 1},
		{Concurrency: 1, Duration: time.Hour, MaxRequests: 1},
		{Concurrency: 1, Duration: time.Second, MaxRequests: 0},
	} {
		if err := bad.validate(); err == nil {
			t.Errorf("%+v.validate() = nil, want an error", bad)
		}
	}
}

// writeKeys writes n random keys in ykksm-gen-keys' format and returns them.
func writeKeys(t *testing.T, n int) (string, []ksm.Key) {
	t.Helper()
	var b bytes.Buffer
	keyprov.WriteHeader(&b)
	keys := make([]ksm.Key, n)
	for i := range keys {
		pub, uid, aes := make([]byte, 6), make([]byte, 6), make([]byte, 16)
		rand.Read(pub)
		rand.Read(uid)
		rand.Read(aes)
		keys[i] = ksm.Key{SerialNr: int64(i + 1), PublicName: modhex.EncodeToString(pub), Created: "2024-01-01T00:00:00",
			InternalName: hex.EncodeToString(uid), AESKey: hex.EncodeToString(aes), Active: true, Hardware: true}
		b.WriteString(keyprov.FormatLine(keys[i], "", nil) + "\n")
	}
	path := filepath.Join(t.TempDir(), "keys.csv")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, keys
}

// ksmServer starts a real ksmserver on a fresh SQLite database holding keys.
func ksmServer(t *testing.T, keys []ksm.Key) (url, dsn string) {
	t.Helper()
	mux, dsn := ksmMux(t, keys)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, dsn
}

// ksmMux returns a real ksmserver handler on a fresh SQLite database
// holding keys.
func ksmMux(t *testing.T, keys []ksm.Key) (h http.Handler, dsn string) {
	t.Helper()
	ctx := context.Background()
	dsn = testdb.SQLite(t)
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Import(ctx, keys); err != nil {
		t.Fatal(err)
	}
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return mux, dsn
}

// runCmd runs ykbench with args and returns its stdout, stderr and error.
func runCmd(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }})
	return out.String(), errOut.String(), err
}

// jsonResult returns the JSON line of a load run's output.
func jsonResult(t *testing.T, out string) runResult {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "{") {
			var r runResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("JSON line %q: %v", line, err)
			}
			return r
		}
	}
	t.Fatalf("no JSON line in output %q", out)
	return runResult{}
}

func TestKSM(t *testing.T) {
	keysFile, keys := writeKeys(t, 50)
	url, dsn := ksmServer(t, keys)
	for _, client := range []string{clientRaw, clientStd} {
		for _, src := range [][]string{{"--keys", keysFile}, {"--db", dsn}} {
			t.Run(client+src[0], func(t *testing.T) {
				args := append([]string{"ksm", "--url", url, "--client", client, "-c", "4", "-d", "300ms", "--warmup", "50ms", "--otps", "500", "--label", "ksm-test"}, src...)
				out, errOut, err := runCmd(t, args...)
				if err != nil {
					t.Fatalf("ykbench %s: %v\n%s", strings.Join(args, " "), err, errOut)
				}
				r := jsonResult(t, out)
				if r.Requests == 0 || r.Errors != 0 || r.WarmupErrs != 0 || r.Keys != 50 || r.Label != "ksm-test" || r.Concurrency != 4 {
					t.Errorf("result = %+v, want requests > 0, no errors, 50 keys, label ksm-test, c=4", r)
				}
				if r.RPS <= 0 || r.P50MS <= 0 || r.P99MS < r.P50MS || r.MaxMS < r.P99MS {
					t.Errorf("result = %+v, want rps > 0 and 0 < p50 ≤ p99 ≤ max", r)
				}
			})
		}
	}
}

// TestKSMWrongAnswers points the KSM load at the baseline server, whose
// fixed line is never the right answer: every request must be an error.
func TestKSMWrongAnswers(t *testing.T) {
	keysFile, _ := writeKeys(t, 10)
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()
	out, errOut, err := runCmd(t, "ksm", "--url", srv.URL, "--keys", keysFile, "-c", "2", "-d", "200ms", "--warmup", "0s")
	if err != nil {
		t.Fatalf("ykbench ksm: %v\n%s", err, errOut)
	}
	r := jsonResult(t, out)
	if r.Requests == 0 || r.Errors != r.Requests || len(r.ErrorSample) == 0 || !strings.Contains(r.ErrorSample[0], "wrong answer") {
		t.Errorf("against the baseline: requests %d, errors %d, sample %q; want every request a wrong-answer error", r.Requests, r.Errors, r.ErrorSample)
	}
}

// TestBaselineExpect loads the baseline server expecting its fixed line:
// no errors.
func TestBaselineExpect(t *testing.T) {
	keysFile, _ := writeKeys(t, 10)
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()
	out, errOut, err := runCmd(t, "ksm", "--url", srv.URL, "--keys", keysFile, "-c", "2", "-d", "200ms", "--warmup", "0s", "--expect", strings.TrimSuffix(baselineLine, "\n"), "--label", "baseline")
	if err != nil {
		t.Fatalf("ykbench ksm --expect: %v\n%s", err, errOut)
	}
	if r := jsonResult(t, out); r.Requests == 0 || r.Errors != 0 {
		t.Errorf("baseline with --expect: requests %d, errors %d, sample %q; want requests > 0, no errors", r.Requests, r.Errors, r.ErrorSample)
	}
}

func TestBaselineServer(t *testing.T) {
	srv := httptest.NewServer(baselineHandler())
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	gs, err := newGetters(clientRaw, base, 1, time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gs[0].close()
	for range 3 { // the same connection, kept alive
		status, body, err := gs[0].get(context.Background(), "/anything?x=1")
		if err != nil || status != 200 || string(body) != baselineLine {
			t.Fatalf("GET = %d, %q, %v; want 200, %q", status, body, err, baselineLine)
		}
	}
}

// TestRawGetter checks the lean client against net/http's server in the
// framings it may choose: Content-Length, chunked, and Connection: close.
func TestRawGetter(t *testing.T) {
	big := strings.Repeat("x", 5000)
	mux := http.NewServeMux()
	mux.HandleFunc("/len", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "short\n") })
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "part one, ")
		w.(http.Flusher).Flush()
		fmt.Fprint(w, big)
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprint(w, "bye\n")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "nope", http.StatusServiceUnavailable) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	gs, _ := newGetters(clientRaw, base, 1, 2*time.Second, nil)
	g := gs[0]
	defer g.close()
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/len", 200, "short\n"},
		{"/chunked", 200, "part one, " + big},
		{"/close", 200, "bye\n"},
		{"/len", 200, "short\n"}, // after a close: a new connection
		{"/status", 503, "nope\n"},
		{"/len", 200, "short\n"},
	} {
		status, body, err := g.get(context.Background(), tc.path)
		if err != nil || status != tc.status || string(body) != tc.body {
			t.Errorf("GET %s = %d, %q, %v; want %d, %q", tc.path, status, truncate(body, 40), err, tc.status, truncate([]byte(tc.body), 40))
		}
	}
}

func TestReport(t *testing.T) {
	lines := []string{
		`{"kind":"machine","settings":{"nproc":"2","go":"go1.26"}}`,
		`{"kind":"load","label":"baseline","mode":"ksm","client":"raw","concurrency":32,"requests":800000,"rps":80000,"p50_ms":0.3,"p99_ms":1.2,"elapsed_s":10}`,
		`{"kind":"load","label":"ksm-sqlite","mode":"ksm","client":"raw","concurrency":32,"requests":300000,"warmup_requests":60000,"rps":30000,"p50_ms":0.8,"p99_ms":4.5,"elapsed_s":10}`,
		`{"kind":"server","label":"ksm-sqlite","client":"raw","concurrency":32,"server":"ykksmd","peak_rss_kib":30720,"cpu_s":12,"wall_s":12}`,
		`{"kind":"load","label":"val-sqlite-embedded","mode":"val","client":"raw","concurrency":32,"requests":120000,"rps":12000,"p50_ms":2,"p99_ms":9,"elapsed_s":10}`,
		`{"kind":"import","label":"ykksm-import sqlite","keys":100000,"seconds":12.5,"ok":true}`,
		`{"kind":"import","label":"gpg --sign --encrypt","keys":100000,"seconds":20,"ok":true}`,
	}
	out := report(t, lines)
	if strings.Contains(out, "gpg --sign --encrypt: 100000 keys") {
		t.Errorf("report checks the import target on a gpg run:\n%s", out)
	}
	for _, want := range []string{
		"| nproc | 2 |",
		"| ksm-sqlite | raw | 32 | 30000 | 0.800 |",
		"| 38% | – | 30.0 MiB | 100% | 33 |",
		"ksm-sqlite (raw client) c=32: 30000 decrypts/s, target ≥ 40000 (75% of it), 0 errors | **missed** |",
		"p99 4.500 ms, target < 10 ms | met |",
		"val-sqlite-embedded (raw client) c=32: 12000 fresh-OTP verifies/s, target ≥ 10000 (120% of it), 0 errors | met |",
		"ksm-sqlite (raw client) c=32: ykksmd peak RSS 30.0 MiB, limit 64 MiB | met |",
		"ykksm-import sqlite: 100000 keys in 12.50 s, target < 10 s | **missed** |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q; got:\n%s", want, out)
		}
	}
}

func TestUsage(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nosuch"},
		{"ksm", "--url", "http://192.0.2.1:80", "--keys", "x"},
		{"ksm", "--url", "http://127.0.0.1:1", "-c", "0"},
		{"ksm", "--url", "http://127.0.0.1:1", "--counter", "40000"},
		{"ksm", "--url", "http://127.0.0.1:1", "--otps", "0"},
		{"ksm", "--url", "http://127.0.0.1:1", "--client", "curl", "--keys", "/nonexistent"},
		{"val", "--url", "http://127.0.0.1:1", "--client-id", "0", "--api-key", "x"},
		{"mkdb", "Bad-Name"},
		{"baseline", "--listen", "0.0.0.0:0"},
	} {
		_, _, err := runCmd(t, args...)
		if cli.Report("ykbench", &bytes.Buffer{}, err) != cli.ExitUsage {
			t.Errorf("ykbench %q: error %v, want a usage error", args, err)
		}
	}
}

// TestMkDBSeedDropDB creates a MariaDB database, seeds keys into it, loads
// a KSM on it through --db, and drops it.
func TestMkDBSeedDropDB(t *testing.T) {
	testdb.RequireMySQL(t)
	admin := testdb.AdminDSN()
	name := "ykbench_test_" + hex.EncodeToString([]byte(t.Name()))[:8]
	runCmd(t, "dropdb", "--admin", admin, name)
	out, errOut, err := runCmd(t, "mkdb", "--admin", admin, name)
	if err != nil {
		t.Fatalf("mkdb: %v\n%s", err, errOut)
	}
	t.Cleanup(func() {
		if _, errOut, err := runCmd(t, "dropdb", "--admin", admin, name); err != nil {
			t.Errorf("dropdb: %v\n%s", err, errOut)
		}
	})
	dsn := strings.TrimSpace(out)
	if !strings.HasPrefix(dsn, "mysql:") || !strings.HasSuffix(dsn, "/"+name) {
		t.Fatalf("mkdb printed %q, want mysql:…/%s", dsn, name)
	}
	keysFile, keys := writeKeys(t, 20)
	if _, errOut, err := runCmd(t, "seed", "--db", dsn, "--keys", keysFile); err != nil {
		t.Fatalf("seed: %v\n%s", err, errOut)
	}
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range keys {
		got, err := st.Lookup(ctx, k.PublicName)
		if err != nil || got.AESKey != k.AESKey || got.InternalName != k.InternalName {
			t.Fatalf("Lookup(%s) after seed = %+v, %v; want the seeded key", k.PublicName, got, err)
		}
	}
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	out, errOut, err = runCmd(t, "ksm", "--url", srv.URL, "--db", dsn, "-c", "2", "-d", "200ms", "--warmup", "0s", "--otps", "100")
	if err != nil {
		t.Fatalf("ksm on MariaDB: %v\n%s", err, errOut)
	}
	if r := jsonResult(t, out); r.Requests == 0 || r.Errors != 0 || r.Keys != 20 {
		t.Errorf("ksm on MariaDB: %+v, want requests > 0, no errors, 20 keys", r)
	}
}

// valServer starts a real validation server on SQLite with the KSM
// embedded, holding keys and one API client; it returns its URL, the
// client's id and secret.
func valServer(t *testing.T, keys []ksm.Key) (url, id, secret string) {
	t.Helper()
	ctx := context.Background()
	ks, err := sqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	if err := ks.Import(ctx, keys); err != nil {
		t.Fatal(err)
	}
	vs, err := valsqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vs.Close() })
	secret = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
	if _, err := vs.ImportClients(ctx, []val.Client{{ID: 7, Active: true, Created: 1, Secret: secret}}); err != nil {
		t.Fatal(err)
	}
	mux, err := valserver.NewMux(valserver.Config{Store: vs, KSM: ksmadapter.New(ksmserver.NewDecrypter(ks, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, "7", secret
}

// TestVAL runs fresh-OTP loads twice (the second from the first's
// next_counter) and a replay load against a real validation server.
func TestVAL(t *testing.T) {
	keysFile, keys := writeKeys(t, 40)
	url, id, secret := valServer(t, keys)
	// A second of measurement: a durable verify can take hundreds of
	// milliseconds on a loaded machine under -race, and a 300 ms window
	// once measured no request at all.
	common := []string{"val", "--url", url, "--client-id", id, "--api-key", secret, "--keys", keysFile, "-c", "4", "-d", "1s", "--warmup", "50ms"}

	out, errOut, err := runCmd(t, append(common, "--prime")...)
	if err != nil {
		t.Fatalf("ykbench val --prime: %v\n%s", err, errOut)
	}
	r := jsonResult(t, out)
	if r.Mode != "val" || r.Requests == 0 || r.Errors != 0 || r.WarmupErrs != 0 || r.NextCounter < 1 {
		t.Fatalf("fresh run: %+v, want mode val, requests > 0, no errors, next_counter ≥ 1", r)
	}
	out, errOut, err = runCmd(t, append(common, "--counter", fmt.Sprint(r.NextCounter))...)
	if err != nil {
		t.Fatalf("ykbench val (second run): %v\n%s", err, errOut)
	}
	if r2 := jsonResult(t, out); r2.Requests == 0 || r2.Errors != 0 || r2.WarmupErrs != 0 || r2.NextCounter <= r.NextCounter {
		t.Fatalf("second fresh run from counter %d: %+v, want no errors and a higher next_counter", r.NextCounter, r2)
	} else {
		r = r2
	}

	// From a counter the server has already passed, every fresh OTP is a replay: all errors.
	out, _, err = runCmd(t, append(common, "--counter", "1", "--warmup", "0s")...)
	if err != nil {
		t.Fatal(err)
	}
	if bad := jsonResult(t, out); bad.Requests == 0 || bad.Errors != bad.Requests || !strings.Contains(strings.Join(bad.ErrorSample, " "), "status=REPLAYED_OTP, want OK") {
		t.Errorf("stale counter: requests %d, errors %d, sample %q; want every request an error", bad.Requests, bad.Errors, bad.ErrorSample)
	}

	out, errOut, err = runCmd(t, append(common, "--replay", "--counter", fmt.Sprint(r.NextCounter))...)
	if err != nil {
		t.Fatalf("ykbench val --replay: %v\n%s", err, errOut)
	}
	if rr := jsonResult(t, out); rr.Mode != "val-replay" || rr.Requests == 0 || rr.Errors != 0 {
		t.Errorf("replay run: %+v, want mode val-replay, requests > 0, no errors", rr)
	}

	out, errOut, err = runCmd(t, append(common, "--prime-only", "--counter", "4000")...)
	if err != nil {
		t.Fatalf("ykbench val --prime-only: %v\n%s", err, errOut)
	}
	if p := jsonResult(t, out); p.Kind != "prime" || p.PrimeReqs != 40 || p.NextCounter != 4001 || p.Requests != 0 {
		t.Errorf("prime-only: %+v, want kind prime, 40 prime requests, next_counter 4001, no measured requests", p)
	}

	// A wrong API key: the server answers BAD_SIGNATURE, every request an error.
	out, _, err = runCmd(t, append(common, "--api-key", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "--warmup", "0s", "--counter", "3000")...)
	if err != nil {
		t.Fatal(err)
	}
	if bad := jsonResult(t, out); bad.Requests == 0 || bad.Errors != bad.Requests {
		t.Errorf("wrong key: requests %d, errors %d; want every request an error", bad.Requests, bad.Errors)
	}
}

// report renders result lines (JSON, one a line) as ykbench report does.
func report(t *testing.T, lines []string) string {
	t.Helper()
	r, err := readResults(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeReport(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
