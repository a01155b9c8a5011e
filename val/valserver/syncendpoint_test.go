package valserver_test

import (
	"context"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// syncQuery is a sync request as YK-VAL's sender builds it (spec 2.9).
const syncQuery = "otp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku&modified=1577836800&yk_publicname=idkfefrdhtru&yk_counter=1&yk_use=0&yk_high=15&yk_low=36160&nonce=kakakakakakakakakakakaka"

// body is an answer as the server writes it at e.now: h (of the fields
// under key), t, the fields, then an empty line.
func (e *env) body(key []byte, fields ...string) string {
	t := val.FormatTime(e.now)
	sig := []val.Field{{Key: "t", Value: t}}
	for _, f := range fields {
		k, v, _ := strings.Cut(f, "=")
		sig = append(sig, val.Field{Key: k, Value: v})
	}
	return "h=" + val.Sign(key, sig) + "\r\nt=" + t + "\r\n" + strings.Join(fields, "\r\n") + "\r\n\r\n"
}

func get(t *testing.T, method, u string) string {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: HTTP %d %q", method, u, resp.StatusCode, b)
	}
	return string(b)
}

// TestSyncEndpointChecks: every refusal of spec 2.9's receiver list, in its
// order, with the exact answer (signed with the empty key).
func TestSyncEndpointChecks(t *testing.T) {
	e := start(t, testdb.Backends()[0], valserver.Config{SyncAllow: loopback})
	missing := e.body(nil, "status=MISSING_PARAMETER")
	replace := func(k, v string) string {
		q, _ := url.ParseQuery(syncQuery)
		var b strings.Builder
		for _, p := range valserver.SyncParams {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			x := q.Get(p)
			if p == k {
				x = v
			}
			if x != "\x00drop" {
				b.WriteString(p + "=" + url.QueryEscape(x))
			}
		}
		return b.String()
	}
	tests := []struct {
		name, query, want string
	}{
		{"empty query", "", missing},
		{"query 0 (PHP empty)", "0", missing},
		{"unknown parameters only", "a=b", missing},
		{"YK-VAL doc's yk_identity", "otp=xyz&modified=1264430686&nonce=foobar&yk_identity=foo&yk_counter=42&yk_use=17&yk_high=10&yk_low=5", missing},
		{"modified missing", replace("modified", "\x00drop"), missing},
		{"otp empty", replace("otp", ""), missing},
		{"nonce blank", replace("nonce", "  "), missing},
		{"yk_low missing", replace("yk_low", "\x00drop"), missing},
		{"modified -1", replace("modified", "-1"), missing},
		{"modified signed", replace("modified", "+5"), missing},
		{"counter -2", replace("yk_counter", "-2"), missing},
		{"counter 1.0", replace("yk_counter", "1.0"), missing},
		{"use x", replace("yk_use", "x"), missing},
		{"high beyond INT", replace("yk_high", "2147483648"), missing},
		{"modified beyond INT64", replace("modified", "99999999999999999999"), missing},
		{"otp short", replace("otp", "idkfefrdhtru"), missing},
		{"otp upper case", replace("otp", "IDKFEFRDHTRUTJDUVTCJBFEUVHEHDVJJLBCHTLENFGKU"), missing},
		{"otp not modhex", replace("otp", "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgka"), missing},
		{"publicname long", replace("yk_publicname", strings.Repeat("c", 17)), missing},
		{"publicname not modhex", replace("yk_publicname", "abc"), missing},
		{"nonce short", replace("nonce", "abcdefghijklmno"), missing},
		{"nonce not alnum", replace("nonce", "abcdefgh-ijklmnop"), missing},
		{"nonce long", replace("nonce", strings.Repeat("n", 41)), missing},
	}
	for _, tt := range tests {
		if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+tt.query); got != tt.want {
			t.Errorf("%s: sync?%s = %q, want %q", tt.name, tt.query, got, tt.want)
		}
	}
	if n, err := e.store.QueueLength(context.Background()); n != 0 || err != nil {
		t.Errorf("QueueLength = %d, %v", n, err)
	}
	if _, err := e.store.KeyState(context.Background(), ciPublicID); err == nil {
		t.Errorf("refused sync requests enrolled the key")
	}

	// The address comes before the parameters; the empty query before it.
	for _, allow := range [][]netip.Prefix{nil, {netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}} {
		e := start(t, testdb.Backends()[0], valserver.Config{SyncAllow: allow})
		if got, want := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?a=b"), e.body(nil, "status=OPERATION_NOT_ALLOWED"); got != want {
			t.Errorf("sync from 127.0.0.1, allowed %v = %q, want %q", allow, got, want)
		}
		if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync"); got != missing {
			t.Errorf("empty sync from a refused address = %q, want %q", got, missing)
		}
	}
}

// TestSyncEndpoint: update-if-higher and the answer's pre-update values,
// on SQLite and MariaDB.
func TestSyncEndpoint(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			e := start(t, b, valserver.Config{SyncAllow: loopback})
			// An unknown key is enrolled, and the answer holds the enrolment.
			want := e.body(nil, "modified=-1", "nonce=0000000000000000", "yk_publicname=idkfefrdhtru",
				"yk_counter=-1", "yk_use=-1", "yk_high=-1", "yk_low=-1", "status=OK")
			if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+syncQuery); got != want {
				t.Errorf("first sync = %q, want %q", got, want)
			}
			k, err := e.store.KeyState(ctx, ciPublicID)
			if err != nil || k.Counter != 1 || k.Use != 0 || k.High != 15 || k.Low != 36160 || k.Modified != 1577836800 ||
				k.Nonce != "kakakakakakakakakakakaka" || !k.Active || k.Created != e.now.Unix() {
				t.Errorf("after the first sync the key is %+v, %v", k, err)
			}
			// The same request again: nothing changes, the answer holds what it stored.
			again := e.body(nil, "modified=1577836800", "nonce=kakakakakakakakakakakaka", "yk_publicname=idkfefrdhtru",
				"yk_counter=1", "yk_use=0", "yk_high=15", "yk_low=36160", "status=OK")
			if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+syncQuery); got != again {
				t.Errorf("repeated sync = %q, want %q", got, again)
			}
			if !strings.Contains(e.logs.String(), "request unnecessarily sent") {
				t.Errorf("no 'unnecessarily sent' log line")
			}
			// A lower position: not stored, answered with ours.
			lower := strings.Replace(strings.Replace(syncQuery, "yk_counter=1", "yk_counter=0", 1), "nonce=kaka", "nonce=baba", 1)
			if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+lower); got != again {
				t.Errorf("sync below the stored position = %q, want %q", got, again)
			}
			if !strings.Contains(e.logs.String(), "remote server is out of sync") {
				t.Errorf("no 'out of sync' log line")
			}
			// Same position, another nonce: an already validated OTP.
			other := strings.Replace(syncQuery, "nonce=kaka", "nonce=baba", 1)
			if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+other); got != again {
				t.Errorf("sync with the stored position and another nonce = %q, want %q", got, again)
			}
			if !strings.Contains(e.logs.String(), "asked to validate an OTP we had already validated") {
				t.Errorf("no 'already validated' log line")
			}
			// POST, values with spaces and backslashes (trimmed, removed), -1 accepted.
			higher := strings.Replace(strings.Replace(syncQuery, "yk_use=0", "yk_use=%20%5C3%20", 1), "yk_low=36160", "yk_low=-1", 1)
			if got := get(t, http.MethodPost, e.url+"/wsapi/2.0/sync.php?"+higher); got != again {
				t.Errorf("POST sync with a higher use = %q, want %q", got, again)
			}
			if k, _ := e.store.KeyState(ctx, ciPublicID); k.Use != 3 || k.Low != -1 {
				t.Errorf("after a higher sync the key is %+v, want use 3, low -1", k)
			}
			// A verify of an OTP at or below the synced position is a replay.
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", mint(t, 1, 2), "nonce", nonce1)); r.Status() != val.StatusReplayedOTP {
				t.Errorf("verify below the synced position = %s, want REPLAYED_OTP", r.Status())
			}
			// A disabled key: BAD_OTP, counters updated all the same.
			if err := e.store.SetActive(ctx, ciPublicID, false); err != nil {
				t.Fatal(err)
			}
			up := strings.Replace(syncQuery, "yk_counter=1", "yk_counter=9", 1)
			if got, want := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+up), e.body(nil, "status=BAD_OTP"); got != want {
				t.Errorf("sync of a disabled key = %q, want %q", got, want)
			}
			if k, _ := e.store.KeyState(ctx, ciPublicID); k.Counter != 9 || k.Active {
				t.Errorf("after syncing a disabled key it is %+v, want counter 9, still disabled", k)
			}
			// Store down: BACKEND_ERROR.
			e.store.Close()
			if got, want := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+syncQuery), e.body(nil, "status=BACKEND_ERROR"); got != want {
				t.Errorf("sync with the store closed = %q, want %q", got, want)
			}
			m := metrics(t, e)
			for _, line := range []string{`{status="OK"} 5`, `{status="BAD_OTP"} 1`, `{status="BACKEND_ERROR"} 1`, `{status="MISSING_PARAMETER"} 0`, `{status="OPERATION_NOT_ALLOWED"} 0`} {
				if !strings.Contains(m, "\nykval_sync_received_total"+line+"\n") {
					t.Errorf("metrics lack ykval_sync_received_total%s", line)
				}
			}
		})
	}
}

// TestSyncEndpointKey: with a pool key, unsigned and wrongly signed requests
// are refused, and answers are signed with the key, bound to the request.
func TestSyncEndpointKey(t *testing.T) {
	key := []byte("pool key of the test, 32 bytes..")
	e := start(t, testdb.Backends()[0], valserver.Config{SyncAllow: loopback, SyncKey: key})
	q, _ := url.ParseQuery(syncQuery)
	h := val.Sign(key, val.FieldsFromValues(q))
	notAllowed := e.body(nil, "status=OPERATION_NOT_ALLOWED")
	for _, bad := range []string{"", "&h=", "&h=" + url.QueryEscape(val.Sign([]byte("other"), val.FieldsFromValues(q))), "&h=" + url.QueryEscape(h) + "&extra=1"} {
		if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+syncQuery+bad); got != notAllowed {
			t.Errorf("sync?…%s = %q, want %q", bad, got, notAllowed)
		}
	}
	if _, err := e.store.KeyState(context.Background(), ciPublicID); err == nil {
		t.Errorf("refused sync requests enrolled the key")
	}
	body := get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+syncQuery+"&h="+url.QueryEscape(h))
	r, err := val.ParseResponse([]byte(body))
	if err != nil || r.Status() != val.StatusOK {
		t.Fatalf("signed sync = %q, %v; want OK", body, err)
	}
	bound := append(r.Fields, val.Field{Key: valserver.BoundRequestField, Value: h})
	if !val.Verify(key, bound, r.H) {
		t.Errorf("answer %q is not signed with the pool key bound to the request", body)
	}
	if r.Verify(nil) || val.Verify(key, r.Fields, r.H) {
		t.Errorf("answer %q verifies without the binding or with the empty key", body)
	}
	// A wrong parameter of a signed request is still MISSING_PARAMETER, signed and bound.
	badQ := strings.Replace(syncQuery, "modified=1577836800", "modified=x", 1)
	bq, _ := url.ParseQuery(badQ)
	bh := val.Sign(key, val.FieldsFromValues(bq))
	body = get(t, http.MethodGet, e.url+"/wsapi/2.0/sync?"+badQ+"&h="+url.QueryEscape(bh))
	r, _ = val.ParseResponse([]byte(body))
	if r.Status() != val.StatusMissingParameter || !val.Verify(key, append(r.Fields, val.Field{Key: valserver.BoundRequestField, Value: bh}), r.H) {
		t.Errorf("signed sync with a bad parameter = %q, want MISSING_PARAMETER signed with the pool key", body)
	}
}

func metrics(t *testing.T, e *env) string {
	t.Helper()
	return get(t, http.MethodGet, e.url+"/metrics")
}

// TestVerifyQueuesAtomically: the Syncer's entries are stored with the
// counters, and only when the compare-and-set won.
func TestVerifyQueuesAtomically(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			syncer := &recordingSyncer{peers: []string{"https://val2.example.com/wsapi/2.0/sync", "https://val3.example.com/wsapi/2.0/sync"}}
			e := start(t, b, valserver.Config{Syncer: syncer})
			o := mint(t, 1, 0)
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", o, "nonce", nonce1)); r.Status() != val.StatusOK {
				t.Fatalf("verify = %s, want OK", r.Status())
			}
			lengths, err := e.store.QueueLengths(ctx)
			if err != nil || len(lengths) != 2 || lengths[syncer.peers[0]] != 1 || lengths[syncer.peers[1]] != 1 {
				t.Errorf("after an OK the queue lengths are %v, %v; want one entry per peer", lengths, err)
			}
			if got := syncer.last(); len(got.Queued) != 2 || got.Queued[0].OTP != o {
				t.Errorf("Sync got Queued %+v, want the two entries stored", got.Queued)
			}
			for _, n := range []string{nonce1, nonce1 + "x"} { // REPLAYED_REQUEST, REPLAYED_OTP
				e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", o, "nonce", n))
			}
			if n, _ := e.store.QueueLength(ctx); n != 2 {
				t.Errorf("after replays the queue holds %d entries, want still 2", n)
			}
			// Entries the queue table cannot hold: BACKEND_ERROR, and the OTP stays unused.
			syncer.peers = []string{"https://" + strings.Repeat("v", 100) + "/wsapi/2.0/sync"}
			o2 := mint(t, 1, 1)
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", o2, "nonce", nonce1)); r.Status() != val.StatusBackendError {
				t.Errorf("verify with an unstorable queue entry = %s, want BACKEND_ERROR", r.Status())
			}
			syncer.peers = nil
			if _, r := e.verify(t, "/wsapi/2.0/verify", query("id", "1", "otp", o2, "nonce", nonce1)); r.Status() != val.StatusOK {
				t.Errorf("the same OTP once the queue works = %s, want OK (nothing was stored)", r.Status())
			}
		})
	}
}

func TestResync(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			syncer := &recordingSyncer{peers: []string{"https://val2.example.com/wsapi/2.0/sync", "https://val3.example.com/wsapi/2.0/sync"}}
			e := start(t, b, valserver.Config{Syncer: syncer, ResyncAllow: loopback})
			for _, k := range []val.KeyState{
				{PublicName: "cccccccccccb", Active: true, Modified: 10, Counter: 1, Use: 2, Nonce: "aaaaaaaaaaaaaaaa"},
				{PublicName: "cccccccccccd", Active: false, Modified: 11, Counter: 3, Use: 4, Nonce: "bbbbbbbbbbbbbbbb"},
				{PublicName: "ccccccccccce", Active: true, Modified: -1, Counter: -1, Use: -1, Nonce: "0000000000000000"},
				{PublicName: "cccccccccccf", Active: true, Modified: 12, Counter: 5, Use: 6, Nonce: "cccccccccccccccc"},
			} {
				if _, err := e.store.ImportKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			tests := []struct {
				query, want string
				queued      int // entries added
			}{
				{"", "ERROR Missing parameter", 0},
				{"yk=", "ERROR Missing parameter", 0},
				{"yk=0", "ERROR Missing parameter", 0},
				{"yk=ALL", "ERROR Unknown yk value: ALL", 0},
				{"yk=abc", "ERROR Unknown yk value: abc", 0},
				{"yk=ccccccccccccccccc", "ERROR Unknown yk value: ccccccccccccccccc", 0},
				{"yk=cccccccccccg", "ERROR Unknown yubikey: cccccccccccg", 0},
				{"yk=cccccccccccb", "OK Initiated resync of cccccccccccb", 2},
				{"yk=cccccccccccd", "OK Initiated resync of cccccccccccd", 2}, // one disabled key: resynced
				{"yk=ccccccccccce", "OK Initiated resync of ccccccccccce", 0}, // never accepted: nothing to send
				{"yk=all", "OK Initiated resync of all", 4},                   // b and f; not d (disabled), not e
			}
			total := 0
			for _, tt := range tests {
				if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/resync?"+tt.query); got != tt.want+"\n" {
					t.Errorf("resync?%s = %q, want %q", tt.query, got, tt.want+"\n")
				}
				total += tt.queued
				if n, err := e.store.QueueLength(ctx); n != total || err != nil {
					t.Errorf("after resync?%s the queue holds %d entries, %v; want %d", tt.query, n, err, total)
				}
			}
			if got := syncer.got; len(got) != 0 {
				t.Errorf("resync called Sync %d times, want none (the worker sends)", len(got))
			}
			e.store.Close()
			if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/resync?yk=all"); got != "ERROR Database connect error (1)\n" {
				t.Errorf("resync with the store closed = %q", got)
			}
		})
	}
}

func TestResyncAllowList(t *testing.T) {
	want := "ERROR Authorization failed (logged 127.0.0.1)\n"
	for _, cfg := range []valserver.Config{
		{},
		{SyncAllow: loopback, ResyncAllow: []netip.Prefix{}},
		{SyncAllow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
	} {
		e := start(t, testdb.Backends()[0], cfg)
		if got := get(t, http.MethodGet, e.url+"/wsapi/2.0/resync?yk=all"); got != want {
			t.Errorf("resync with sync allow %v, resync allow %v = %q, want %q", cfg.SyncAllow, cfg.ResyncAllow, got, want)
		}
	}
	// ResyncAllow nil: the sync allow-list. No Syncer: nothing to queue, OK.
	e := start(t, testdb.Backends()[0], valserver.Config{SyncAllow: loopback})
	if got := get(t, http.MethodPost, e.url+"/wsapi/2.0/resync.php?yk=all"); got != "OK Initiated resync of all\n" {
		t.Errorf("resync allowed by the sync allow-list = %q", got)
	}
}

// TestParseSyncRequest checks the parser on its own, the fuzz target's seeds.
func TestParseSyncRequest(t *testing.T) {
	q, _ := url.ParseQuery(syncQuery)
	got, problem := valserver.ParseSyncRequest(q)
	want := val.KeyState{PublicName: "idkfefrdhtru", Modified: 1577836800, Counter: 1, Use: 0, High: 15, Low: 36160, Nonce: "kakakakakakakakakakakaka"}
	if problem != nil || got.State != want || got.OTP != "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku" {
		t.Errorf("ParseSyncRequest(%s) = %+v, %v; want %+v", syncQuery, got, problem, want)
	}
}

func FuzzParseSyncRequest(f *testing.F) {
	f.Add(syncQuery)
	f.Add("otp=xyz&modified=1264430686&nonce=foobar&yk_identity=foo&yk_counter=42&yk_use=17&yk_high=10&yk_low=5")
	f.Add(strings.Replace(syncQuery, "yk_counter=1", "yk_counter=-1", 1))
	f.Add(strings.Replace(syncQuery, "modified=1577836800", "modified=99999999999999999999", 1))
	f.Add(syncQuery + "&yk_use=%20%5C7&h=abc")
	f.Fuzz(func(t *testing.T, raw string) {
		s, problem := valserver.ParseSyncRequest(val.ParseQuery(raw))
		if problem != nil {
			if problem.Status != val.StatusMissingParameter {
				t.Fatalf("ParseSyncRequest(%q) problem %+v, want MISSING_PARAMETER", raw, problem)
			}
			return
		}
		k := s.State
		if !val.ValidOTP(s.OTP) || k.PublicName == "" || len(k.PublicName) > 16 || len(k.Nonce) < 16 || len(k.Nonce) > 40 ||
			k.Modified < 0 || k.Counter < -1 || k.Use < -1 || k.High < -1 || k.Low < -1 {
			t.Fatalf("ParseSyncRequest(%q) accepted %+v", raw, s)
		}
	})
}

func TestConfigValidateSync(t *testing.T) {
	err := valserver.Config{Store: nil, KSM: nil, SyncKey: []byte{}, SyncAllow: []netip.Prefix{{}}, ResyncAllow: []netip.Prefix{{}}}.Validate()
	for _, w := range []string{"sync key is empty", "sync network invalid Prefix is not valid", "resync network invalid Prefix is not valid"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %s", err, w)
		}
	}
}
