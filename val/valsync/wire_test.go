package valsync_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

// The sync answer and queue info of a real YK-VAL server, from the log in
// Yubico/yubikey-val#31 (spec 5.1).
const (
	issue31Answer = "h=RGoPlaXx5KmNsWF4uz8X0keCs8Y=\r\nt=2015-05-28T03:04:53Z0075\r\nmodified=1432782293\r\nnonce=kgmsczgodsqyjhiblgndnhwbwhlbscxe\r\nyk_publicname=tfdurdtkubbl\r\nyk_counter=5\r\nyk_use=29\r\nyk_high=140\r\nyk_low=3096\r\nstatus=OK\r\n\r\n"
	issue31Info   = "yk_publicname=tfdurdtkubbl&yk_counter=5&yk_use=29&yk_high=140&yk_low=3096&nonce=kgmsczgodsqyjhiblgndnhwbwhlbscxe,local_counter=5&local_use=28"
)

var issue31State = val.KeyState{PublicName: "tfdurdtkubbl", Modified: 1432782293, Counter: 5, Use: 29, High: 140, Low: 3096, Nonce: "kgmsczgodsqyjhiblgndnhwbwhlbscxe"}

// TestParseAnswerIssue31: the real server's answer parses, and its h is
// the empty key's signature, as the spec says every sync answer is.
func TestParseAnswerIssue31(t *testing.T) {
	a, r, err := valsync.ParseAnswer([]byte(issue31Answer))
	if err != nil || a.Status != val.StatusOK || a.State != issue31State {
		t.Fatalf("ParseAnswer(issue #31) = %+v, %v; want OK, %+v", a, err, issue31State)
	}
	if !r.Verify(nil) {
		t.Errorf("issue #31's answer does not verify under the empty key")
	}
}

func TestParseAnswer(t *testing.T) {
	ok := func(fields string) string {
		return "h=x\r\nt=2020-01-01T00:00:00Z0000\r\n" + fields + "status=OK\r\n\r\n"
	}
	all := "modified=-1\r\nnonce=0000000000000000\r\nyk_publicname=cccccccccccb\r\nyk_counter=-1\r\nyk_use=-1\r\nyk_high=-1\r\nyk_low=-1\r\n"
	tests := []struct {
		name, body string
		status     val.Status
		ok         bool
	}{
		{"enrolment values", ok(all), val.StatusOK, true},
		{"empty nonce", ok(strings.Replace(all, "nonce=0000000000000000", "nonce=", 1)), val.StatusOK, true},
		{"BAD_OTP, no fields", "h=x\r\nt=2020-01-01T00:00:00Z0000\r\nstatus=BAD_OTP\r\n\r\n", val.StatusBadOTP, true},
		{"OPERATION_NOT_ALLOWED", "h=x\r\nt=2020-01-01T00:00:00Z0000\r\nstatus=OPERATION_NOT_ALLOWED\r\n\r\n", val.StatusOperationNotAllowed, true},
		{"no modified", ok(strings.Replace(all, "modified=-1\r\n", "", 1)), "", false},
		{"no nonce", ok(strings.Replace(all, "nonce=0000000000000000\r\n", "", 1)), "", false},
		{"no publicname", ok(strings.Replace(all, "yk_publicname=cccccccccccb\r\n", "", 1)), "", false},
		{"counter not a number", ok(strings.Replace(all, "yk_counter=-1", "yk_counter=1a", 1)), "", false},
		{"use below -1", ok(strings.Replace(all, "yk_use=-1", "yk_use=-2", 1)), "", false},
		{"low beyond 32 bits", ok(strings.Replace(all, "yk_low=-1", "yk_low=4294967296", 1)), "", false},
		{"cut short", strings.TrimSuffix(ok(all), "\r\n\r\n"), "", false},
		{"no h", strings.TrimPrefix(ok(all), "h=x\r\n"), "", false},
		{"HTML", "<html>502 Bad Gateway</html>", "", false},
		{"empty", "", "", false},
	}
	for _, tt := range tests {
		a, _, err := valsync.ParseAnswer([]byte(tt.body))
		switch {
		case tt.ok && (err != nil || a.Status != tt.status):
			t.Errorf("%s: ParseAnswer = %+v, %v; want status %s", tt.name, a, err, tt.status)
		case !tt.ok && !errors.Is(err, valsync.ErrAnswer):
			t.Errorf("%s: ParseAnswer = %+v, %v; want an ErrAnswer", tt.name, a, err)
		}
	}
}

// TestQueryEncode: the request exactly as YK-VAL's sender builds it (spec
// 2.9), which YK-VAL's receiver and ours parse back to the same state.
func TestQueryEncode(t *testing.T) {
	q := valsync.Query{OTP: "tfdurdtkubbltjduvtcjbfeuvhehdvjjlbchtlenfgku", State: issue31State}
	want := "otp=tfdurdtkubbltjduvtcjbfeuvhehdvjjlbchtlenfgku&modified=1432782293&yk_publicname=tfdurdtkubbl&yk_counter=5&yk_use=29&yk_high=140&yk_low=3096&nonce=kgmsczgodsqyjhiblgndnhwbwhlbscxe"
	if got := q.Encode(nil); got != want {
		t.Errorf("Encode(nil) = %q, want %q", got, want)
	}
	s, problem := valserver.ParseSyncRequest(val.ParseQuery(want))
	if problem != nil || s.OTP != q.OTP || s.State != issue31State {
		t.Errorf("ParseSyncRequest(Encode) = %+v, %v; want %+v", s, problem, q)
	}
	// -1 values, as a key never accepted has them.
	q.State.Counter, q.State.Low = -1, -1
	if got := q.Encode(nil); !strings.Contains(got, "&yk_counter=-1&") || !strings.Contains(got, "&yk_low=-1&") {
		t.Errorf("Encode with -1 values = %q", got)
	}
	// With a key: the same query, then h over the eight parameters.
	key := []byte("pool key")
	signed := q.Encode(key)
	base, h, ok := strings.Cut(signed, "&h=")
	if !ok || base != q.Encode(nil) {
		t.Fatalf("Encode(key) = %q, want Encode(nil) then &h=", signed)
	}
	values, _ := url.ParseQuery(base)
	hv, _ := url.QueryUnescape(h)
	if !val.Verify(key, val.FieldsFromValues(values), hv) || hv != q.Signature(key) {
		t.Errorf("Encode(key)'s h %q is not the HMAC of the parameters", hv)
	}
	if strings.ContainsAny(h, "+/=") {
		t.Errorf("h %q is not URL-escaped", h)
	}
}

// TestInfo: the queue row's info string, exactly YK-VAL's, and back.
func TestInfo(t *testing.T) {
	if got := valsync.Info(issue31State, val.KeyState{Counter: 5, Use: 28}); got != issue31Info {
		t.Errorf("Info = %q, want %q", got, issue31Info)
	}
	e := val.QueueEntry{Modified: 1432782293, OTP: "tfdurdtkubbltjduvtcjbfeuvhehdvjjlbchtlenfgku", Server: "https://x/wsapi/2.0/sync", ServerNonce: "n", Info: issue31Info}
	q, local, err := valsync.ParseEntry(e)
	if err != nil || q.State != issue31State || q.OTP != e.OTP || local != (val.Position{Counter: 5, Use: 28}) {
		t.Errorf("ParseEntry(issue #31 row) = %+v, %v, %v", q, local, err)
	}
	for _, bad := range []string{
		"", "yk_publicname=a", strings.Replace(issue31Info, "yk_use=29", "yk_use=x", 1),
		strings.Replace(issue31Info, "&nonce=kgmsczgodsqyjhiblgndnhwbwhlbscxe", "", 1),
		strings.Replace(issue31Info, "local_use=28", "", 1),
	} {
		e.Info = bad
		if _, _, err := valsync.ParseEntry(e); !errors.Is(err, valsync.ErrInfo) {
			t.Errorf("ParseEntry(info %q) error = %v, want ErrInfo", bad, err)
		}
	}
}

func TestReplayed(t *testing.T) {
	otp := val.KeyState{Counter: 5, Use: 3, Nonce: "mine"}
	tests := []struct {
		counter, use int
		nonce        string
		want         bool
	}{
		{-1, -1, "0000000000000000", false},
		{5, 2, "other", false},
		{4, 255, "other", false},
		{5, 3, "mine", false}, // the peer had this request already
		{5, 3, "other", true}, // the peer accepted the OTP for another request
		{5, 4, "mine", true},
		{6, 0, "other", true},
	}
	for _, tt := range tests {
		peer := val.KeyState{Counter: tt.counter, Use: tt.use, Nonce: tt.nonce}
		if got := valsync.Replayed(peer, otp); got != tt.want {
			t.Errorf("Replayed(peer %d/%d %s, OTP 5/3 mine) = %v, want %v", tt.counter, tt.use, tt.nonce, got, tt.want)
		}
	}
}

func FuzzParseAnswer(f *testing.F) {
	f.Add(issue31Answer)
	f.Add("h=x\r\nt=2020-01-01T00:00:00Z0000\r\nstatus=BAD_OTP\r\n\r\n")
	f.Add("h=x\r\nmodified=-1\r\nyk_counter=99999999999\r\nstatus=OK\r\n")
	f.Fuzz(func(t *testing.T, body string) {
		a, r, err := valsync.ParseAnswer([]byte(body))
		if err != nil {
			if !errors.Is(err, valsync.ErrAnswer) {
				t.Fatalf("ParseAnswer(%q) error %v does not wrap ErrAnswer", body, err)
			}
			return
		}
		if a.Status != r.Status() || a.Status == "" {
			t.Fatalf("ParseAnswer(%q) status %q, reply status %q", body, a.Status, r.Status())
		}
		if a.Status == val.StatusOK && (a.State.Counter < -1 || a.State.Use < -1 || a.State.Modified < -1) {
			t.Fatalf("ParseAnswer(%q) accepted %+v", body, a.State)
		}
	})
}

func FuzzParseEntry(f *testing.F) {
	f.Add(issue31Info)
	f.Add("yk_publicname=cccccccccccb&yk_counter=-1&yk_use=-1&yk_high=-1&yk_low=-1&nonce=0000000000000000,local_counter=-1&local_use=-1")
	f.Add("a=b,c=d")
	f.Fuzz(func(t *testing.T, info string) {
		e := val.QueueEntry{Modified: 1, OTP: "cccccccccccbcccccccccccccccccccccccccccccccc", Server: "https://x/", ServerNonce: "n", Info: info}
		q, _, err := valsync.ParseEntry(e)
		if err != nil {
			if !errors.Is(err, valsync.ErrInfo) {
				t.Fatalf("ParseEntry(%q) error %v does not wrap ErrInfo", info, err)
			}
			return
		}
		// What parses encodes to a query that parses back to the same values.
		back := val.ParseQuery(q.Encode(nil))
		if back.Get("yk_publicname") != q.State.PublicName || back.Get("nonce") != q.State.Nonce {
			t.Fatalf("ParseEntry(%q) = %+v, which encodes to %q", info, q, q.Encode(nil))
		}
	})
}
