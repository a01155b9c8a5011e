package val

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t2020 = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func TestFormatVectors(t *testing.T) {
	key := DecodeKey(ciSecret)
	tests := []struct {
		r    Response
		key  []byte
		want string
	}{
		{
			Response{StatusOK, t2020, []Field{{"otp", ciOTP}, {"nonce", ciNonce}, {"sl", "0"}}}, key,
			"h=QP12HqGPhZ9I2BOum8yw/MQzCwg=\r\nt=2020-01-01T00:00:00Z0000\r\notp=" + ciOTP + "\r\nnonce=" + ciNonce + "\r\nsl=0\r\nstatus=OK\r\n\r\n",
		},
		{
			Response{StatusNoSuchClient, t2020, nil}, nil,
			"h=xoC3X0Jo2I2veey9lcoIFSmPS60=\r\nt=2020-01-01T00:00:00Z0000\r\nstatus=NO_SUCH_CLIENT\r\n\r\n",
		},
		{
			Response{StatusMissingParameter, time.Date(2026, 11, 22, 12, 25, 9, 826999999, time.UTC), nil}, nil,
			"h=CvmsjCrcmFBCTrgmC1GX6aseXXU=\r\nt=2026-11-22T12:25:09Z0826\r\nstatus=MISSING_PARAMETER\r\n\r\n",
		},
		{
			// Any zone: t is UTC.
			Response{StatusBackendError, time.Date(2026, 11, 22, 13, 25, 10, 22e6, time.FixedZone("CET", 3600)), nil}, nil,
			"h=i1Ghv0V05T7Vo5EGpHOMidJ009I=\r\nt=2026-11-22T12:25:10Z0022\r\nstatus=BACKEND_ERROR\r\n\r\n",
		},
	}
	for _, tt := range tests {
		if got := string(tt.r.Format(tt.key)); got != tt.want {
			t.Errorf("%+v.Format(%x) =\n%q\nwant\n%q", tt.r, tt.key, got, tt.want)
		}
	}
}

func TestFormatZeroTime(t *testing.T) {
	before := time.Now().Add(-time.Second)
	rep, err := ParseResponse(Response{Status: StatusOK}.Format(nil))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := ParseTime(rep.Get("t"))
	if err != nil || ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("zero Time formatted as %q (%v), want now", rep.Get("t"), err)
	}
}

func TestTime(t *testing.T) {
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Date(2008, 11, 21, 6, 11, 55, 711e6, time.UTC), "2008-11-21T06:11:55Z0711"},
		{time.Date(2010, 4, 23, 20, 34, 51, 678e6+999, time.UTC), "2010-04-23T20:34:51Z0678"},
		{time.Date(2020, 1, 1, 0, 0, 0, 5e6, time.UTC), "2020-01-01T00:00:00Z0005"},
	}
	for _, tt := range tests {
		if got := FormatTime(tt.t); got != tt.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tt.t, got, tt.want)
		}
		got, err := ParseTime(tt.want)
		if want := tt.t.Truncate(time.Millisecond); err != nil || !got.Equal(want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tt.want, got, err, want)
		}
	}
	for _, bad := range []string{"", "2008-11-21T06:11:55", "2008-11-21T06:11:55Z711", "2008-11-21T06:11:55Z1711", "2008-11-21T06:11:55Z07x1", "2008-13-21T06:11:55Z0711", "x"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) succeeded, want an error", bad)
		}
	}
}

// The extras of spec 2.5 by status and protocol version.
func TestExtras(t *testing.T) {
	v2 := Request{Version: 2, OTP: ciOTP, Nonce: ciNonce}
	v2ts := v2
	v2ts.Timestamp = true
	v1 := Request{Version: 1, OTP: ciOTP, Nonce: "0123456789abcdef0123456789abcdef"}
	v1ts := v1
	v1ts.Timestamp = true
	// spec 5.2: counter=0001 low=8d48 high=0f use=01 → timestamp 1019208.
	d := Decrypted{Counter: 1, Low: 0x8d48, High: 0x0f, Use: 1}
	echo := []Field{{"otp", ciOTP}, {"nonce", ciNonce}}
	trio := []Field{{"timestamp", "1019208"}, {"sessioncounter", "1"}, {"sessionuse", "1"}}
	tests := []struct {
		r      Request
		status Status
		sl     int
		want   []Field
	}{
		{v2, StatusOK, 0, append(echo, Field{"sl", "0"})},
		{v2, StatusOK, 75, append(echo, Field{"sl", "75"})},
		{v2ts, StatusOK, 100, append(append(echo, Field{"sl", "100"}), trio...)},
		{v1, StatusOK, 100, nil},
		{v1ts, StatusOK, 100, trio},
		{v2, StatusReplayedRequest, 0, echo},
		{v2ts, StatusReplayedOTP, 0, echo},
		{v1, StatusReplayedOTP, 0, nil},
		{v1, StatusReplayedRequest, 0, nil},
		{v2, StatusNotEnoughAnswers, 33, append(echo, Field{"sl", "33"})},
		{v1ts, StatusNotEnoughAnswers, 33, []Field{{"sl", "33"}}},
		{v2ts, StatusBadOTP, 0, nil},
		{v2ts, StatusBadSignature, 0, nil},
		{v2ts, StatusMissingParameter, 0, nil},
		{v2ts, StatusNoSuchClient, 0, nil},
		{v2ts, StatusBackendError, 0, nil},
		{v2ts, StatusOperationNotAllowed, 0, nil},
	}
	for _, tt := range tests {
		if got := tt.r.Extras(tt.status, tt.sl, d); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Request{v%.1f, timestamp %v}.Extras(%s, %d) = %q, want %q", tt.r.Version, tt.r.Timestamp, tt.status, tt.sl, got, tt.want)
		}
	}
	// The session counter is the raw 16-bit value, bit 15 included (spec 5.2 line 5).
	got := v1ts.Extras(StatusOK, 0, Decrypted{Counter: 0x8002, Low: 1, High: 1, Use: 5})
	want := []Field{{"timestamp", "65537"}, {"sessioncounter", "32770"}, {"sessionuse", "5"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Extras(counter 0x8002) = %q, want %q", got, want)
	}
}

func TestParseResponse(t *testing.T) {
	tests := []struct {
		body   string
		h      string
		fields []Field
	}{
		{"h=QP12HqGPhZ9I2BOum8yw/MQzCwg=\r\nt=2020-01-01T00:00:00Z0000\r\notp=" + ciOTP + "\r\nnonce=" + ciNonce + "\r\nsl=0\r\nstatus=OK\r\n\r\n",
			"QP12HqGPhZ9I2BOum8yw/MQzCwg=", []Field{{"t", "2020-01-01T00:00:00Z0000"}, {"otp", ciOTP}, {"nonce", ciNonce}, {"sl", "0"}, {"status", "OK"}}},
		// LF only, blanks, no final empty line, leading blank lines.
		{"\n\n h=x \tstatus=OK\n", "x", []Field{{"status", "OK"}}},
		// '=' inside a value; the last h counts; repeated keys kept.
		{"h=a==\nh=b=\nk=v=w\nk=2\nstatus=BAD_OTP\n", "b=", []Field{{"k", "v=w"}, {"k", "2"}, {"status", "BAD_OTP"}}},
		// An empty value.
		{"h=\nstatus=\n", "", []Field{{"status", ""}}},
	}
	for _, tt := range tests {
		r, err := ParseResponse([]byte(tt.body))
		if err != nil || r.H != tt.h || !reflect.DeepEqual(r.Fields, tt.fields) {
			t.Errorf("ParseResponse(%q) = %q, %q, %v; want %q, %q", tt.body, r.H, r.Fields, err, tt.h, tt.fields)
		}
	}
	for _, bad := range []string{
		"",
		"\r\n\r\n",
		"status=OK\r\n",                          // no h
		"h=x\r\nt=1\r\n",                         // no status
		"h=x\r\nstatus=OK",                       // cut short: the value needs a terminator
		"h=x\r\nstatus=OK\r\ngarbage\r\n",        // a token without '='
		"<html>\n<body>502 Bad Gateway</body>\n", // not the protocol
		"OK counter=0001 low=8d40 high=0f use=00\n",
	} {
		if r, err := ParseResponse([]byte(bad)); !errors.Is(err, ErrMalformedResponse) {
			t.Errorf("ParseResponse(%q) = %+v, %v; want ErrMalformedResponse", bad, r, err)
		}
	}
}

func TestReplyVerify(t *testing.T) {
	key := DecodeKey(ciSecret)
	resp := Response{StatusOK, t2020, []Field{{"otp", ciOTP}, {"nonce", ciNonce}, {"sl", "0"}}}
	r, err := ParseResponse(resp.Format(key))
	if err != nil {
		t.Fatal(err)
	}
	if !r.Verify(key) {
		t.Errorf("Verify(key) = false for a response signed with key")
	}
	if r.Verify(nil) {
		t.Errorf("Verify(empty key) = true for a response signed with the client key")
	}
	if r.Status() != StatusOK || r.Get("nonce") != ciNonce || r.Get("missing") != "" {
		t.Errorf("Status, Get = %q, %q, %q", r.Status(), r.Get("nonce"), r.Get("missing"))
	}
	// Tampering with any field, adding one or dropping one breaks the signature.
	for i := range r.Fields {
		bad := Reply{H: r.H, Fields: append([]Field(nil), r.Fields...)}
		bad.Fields[i].Value += "x"
		if bad.Verify(key) {
			t.Errorf("Verify accepted a changed %s", r.Fields[i].Key)
		}
		bad.Fields = append(r.Fields[:i:i], r.Fields[i+1:]...)
		if bad.Verify(key) {
			t.Errorf("Verify accepted a reply without %s", r.Fields[i].Key)
		}
	}
	bad := Reply{H: r.H, Fields: append(append([]Field(nil), r.Fields...), Field{"timestamp", "1"})}
	if bad.Verify(key) {
		t.Errorf("Verify accepted an added field")
	}
	// An early error is signed with the empty key.
	early, _ := ParseResponse(Response{StatusNoSuchClient, t2020, nil}.Format(nil))
	if early.Verify(key) || !early.Verify(nil) {
		t.Errorf("early error: Verify(client key) = %v, Verify(nil) = %v; want false, true", early.Verify(key), early.Verify(nil))
	}
}

func TestStatusKnown(t *testing.T) {
	for _, s := range Statuses {
		if !s.Known() {
			t.Errorf("%s.Known() = false", s)
		}
	}
	for _, s := range []Status{"", "ok", "DELAYED_OTP", "BAD_SERVER_SIGNATURE"} {
		if s.Known() {
			t.Errorf("%q.Known() = true", s)
		}
	}
}

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("h=QP12HqGPhZ9I2BOum8yw/MQzCwg=\r\nt=2020-01-01T00:00:00Z0000\r\notp="+ciOTP+"\r\nnonce="+ciNonce+"\r\nsl=0\r\nstatus=OK\r\n\r\n"), "OK", "k", "v", int64(0))
	f.Add([]byte("h=a==\nh=b=\nk=v=w\nk=2\nstatus=BAD_OTP\n"), "NO_SUCH_CLIENT", "", "", int64(1e18))
	f.Add([]byte("h=x\r\nstatus=OK"), "BAD_OTP", "sl", "100", int64(-1))
	f.Fuzz(func(t *testing.T, body []byte, status, k, v string, nanos int64) {
		if r, err := ParseResponse(body); err == nil {
			_ = r.Verify(nil)
			if r.H == "" && !strings.Contains(string(body), "h=") {
				t.Fatalf("ParseResponse(%q) accepted a body without h", body)
			}
		}
		// A response we format parses back to the same fields and verifies,
		// whenever its parts can be carried by the format.
		if strings.ContainsAny(status+k+v, " \t\r\n") || strings.Contains(k, "=") || k == "" || k == "h" || k == "t" || k == "status" {
			return
		}
		key := DecodeKey(k + v)
		resp := Response{Status(status), time.Unix(0, nanos), []Field{{k, v}, {"otp", ciOTP}}}
		r, err := ParseResponse(resp.Format(key))
		if err != nil {
			t.Fatalf("ParseResponse(%+v.Format) = %v", resp, err)
		}
		want := []Field{{"t", FormatTime(resp.Time)}, {k, v}, {"otp", ciOTP}, {"status", status}}
		if !reflect.DeepEqual(r.Fields, want) || r.Status() != Status(status) {
			t.Fatalf("ParseResponse(%+v.Format) fields = %q, want %q", resp, r.Fields, want)
		}
		if !r.Verify(key) {
			t.Fatalf("ParseResponse(%+v.Format).Verify = false", resp)
		}
	})
}
