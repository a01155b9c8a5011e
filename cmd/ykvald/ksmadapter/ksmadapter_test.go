package ksmadapter_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ykstack/ykstack/cmd/ykvald/ksmadapter"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/val"
)

var ciKey = ksm.Key{PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5",
	AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}

func TestRejected(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{ksm.ErrNoOTP, true},
		{ksm.ErrFormat, true},
		{ksm.ErrUnknownKey, true},
		{ksm.ErrCorrupt, true},
		{fmt.Errorf("ksmclient: all KSMs: %w", &ksm.RemoteError{Msg: "Corrupt OTP"}), true},
		{&ksm.RemoteError{Msg: "Unknown yubikey"}, true},
		{&ksm.RemoteError{Msg: "Database error"}, false},
		{&ksm.RemoteError{Msg: "Syslog open error"}, false},
		{ksm.ErrDatabase, false},
		{errors.Join(ksm.ErrUnknownKey, ksm.ErrDatabase), false},
		{ksm.ErrAnswer, false},
		{context.DeadlineExceeded, false},
		{errors.New("dial tcp: connection refused"), false},
	}
	for _, tt := range tests {
		if got := ksmadapter.Rejected(tt.err); got != tt.want {
			t.Errorf("Rejected(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

// TestEmbedded runs the adapter over the real in-process decrypter and key
// database, on SQLite and MariaDB.
func TestEmbedded(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			st, err := sqlstore.Open(ctx, sqldb.Config{DSN: b.DSN(t)})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Import(ctx, []ksm.Key{ciKey}); err != nil {
				t.Fatal(err)
			}
			k := ksmadapter.New(ksmserver.NewDecrypter(st, nil))
			tests := []struct {
				otp  string
				want error
			}{
				{"idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku", nil},
				{"idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv", val.ErrKSMRejected}, // corrupt
				{"cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv", val.ErrKSMRejected}, // unknown
				{"idkf", val.ErrKSMRejected},                                         // format
				{"", val.ErrKSMRejected},                                             // no OTP
			}
			for _, tt := range tests {
				d, err := k.Decrypt(ctx, tt.otp)
				switch {
				case tt.want == nil && (err != nil || d != val.Decrypted{Counter: 1, Low: 0x8d40, High: 0x0f, Use: 0}):
					t.Errorf("Decrypt(%s) = %+v, %v; want counter=1 low=8d40 high=0f use=0", tt.otp, d, err)
				case tt.want != nil && (!errors.Is(err, tt.want) || errors.Is(err, val.ErrKSMUnavailable)):
					t.Errorf("Decrypt(%s) error = %v, want only %v", tt.otp, err, tt.want)
				}
			}
			st.Close()
			_, err = k.Decrypt(ctx, "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku")
			if !errors.Is(err, val.ErrKSMUnavailable) || errors.Is(err, val.ErrKSMRejected) {
				t.Errorf("Decrypt with the key database closed: error %v, want only val.ErrKSMUnavailable", err)
			}
		})
	}
}

// TestHTTP runs the adapter over ksmclient asking real KSM servers: a
// verdict from every KSM is a rejection; a KSM down or answering "ERR
// Database error" makes the answer unavailable, even when another KSM
// rejected the OTP.
func TestHTTP(t *testing.T) {
	ctx := context.Background()
	ksmServer := func(keys ...ksm.Key) (*httptest.Server, *sqlstore.Store) {
		st, err := sqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(t)})
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
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		return srv, st
	}
	withKey, _ := ksmServer(ciKey)
	empty, _ := ksmServer()
	broken, brokenStore := ksmServer(ciKey)
	brokenStore.Close()
	down, _ := ksmServer()
	down.Close()

	const good, unknown = "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku", "cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv"
	tests := []struct {
		name string
		urls []*httptest.Server
		otp  string
		want error // nil: decrypted
	}{
		{"one KSM, OK", []*httptest.Server{withKey}, good, nil},
		{"OK among failures", []*httptest.Server{empty, down, broken, withKey}, good, nil},
		{"one KSM, unknown key", []*httptest.Server{withKey}, unknown, val.ErrKSMRejected},
		{"two KSMs, both reject", []*httptest.Server{withKey, empty}, good[:43] + "v", val.ErrKSMRejected},
		{"database error", []*httptest.Server{broken}, good, val.ErrKSMUnavailable},
		{"down", []*httptest.Server{down}, good, val.ErrKSMUnavailable},
		{"reject and down", []*httptest.Server{empty, down}, good, val.ErrKSMUnavailable},
		{"reject and database error", []*httptest.Server{empty, broken}, good, val.ErrKSMUnavailable},
	}
	for _, tt := range tests {
		var urls []string
		for _, s := range tt.urls {
			urls = append(urls, s.URL+"/wsapi/decrypt")
		}
		c, err := ksmclient.New(ksmclient.Config{URLs: urls, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		d, err := ksmadapter.New(c).Decrypt(ctx, tt.otp)
		other := val.ErrKSMUnavailable
		if tt.want == val.ErrKSMUnavailable {
			other = val.ErrKSMRejected
		}
		switch {
		case tt.want == nil && (err != nil || d.Counter != 1 || d.Low != 0x8d40):
			t.Errorf("%s: Decrypt = %+v, %v; want counter=1 low=8d40", tt.name, d, err)
		case tt.want != nil && (!errors.Is(err, tt.want) || errors.Is(err, other)):
			t.Errorf("%s: Decrypt error = %v, want only %v", tt.name, err, tt.want)
		}
		c.CloseIdleConnections()
	}
}
