package e2e_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
)

// readOnlyDSN returns a DSN for the database of dsn that cannot write: a
// SQLite file opened read-only, or a MariaDB user granted SELECT only.
func readOnlyDSN(t *testing.T, dsn string) string {
	t.Helper()
	if strings.HasPrefix(dsn, "sqlite:") {
		return dsn + "?mode=ro"
	}
	cfg, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql:"))
	if err != nil {
		t.Fatal(err)
	}
	admin, err := sqldb.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var b [4]byte
	rand.Read(b[:])
	user, password := "ykt_ro_"+hex.EncodeToString(b[:]), hex.EncodeToString(b[:])+"pw"
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'",
		"GRANT SELECT ON " + cfg.DBName + ".* TO '" + user + "'@'%'",
	} {
		if _, err := admin.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	t.Cleanup(func() {
		admin, err := sqldb.Open(context.Background(), sqldb.Config{DSN: dsn})
		if err != nil {
			t.Error(err)
			return
		}
		defer admin.Close()
		if _, err := admin.Exec("DROP USER '" + user + "'@'%'"); err != nil {
			t.Errorf("drop user %s: %v", user, err)
		}
	})
	c := cfg.Clone()
	c.User, c.Passwd = user, password
	return "mysql:" + c.FormatDSN()
}

// TestStoreFailures checks that verify fails closed: with a store that
// cannot write (a read-only SQLite file, a MariaDB user with SELECT only)
// an OTP gets BACKEND_ERROR, never OK, and stays unused; with the store
// closed every request gets BACKEND_ERROR.
func TestStoreFailures(t *testing.T) {
	ctx := context.Background()
	other := ksm.Key{SerialNr: 2, PublicName: "cccccccccccd", Created: "0", InternalName: "7a5ad1886b70", AESKey: "3091a8048524ab8407ae816457d764e5", Active: true}
	otherAES, _ := otp.ParseKey(other.AESKey)
	otherUID, _ := otp.ParseUID(other.InternalName)
	otherOTP := otp.Generate(other.PublicName, otherAES, otp.Token{UID: otherUID, Counter: 1})
	backendError := crlfBody(sign(clientKey, "status=BACKEND_ERROR"), "status=BACKEND_ERROR")

	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			if err := s.ksmStore.Import(ctx, []ksm.Key{other}); err != nil {
				t.Fatal(err)
			}
			if _, r := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+line1); r.Status() != val.StatusOK {
				t.Fatalf("enrol: %s", r.Status())
			}

			ro, err := valsqlstore.Open(ctx, sqldb.Config{DSN: readOnlyDSN(t, s.dsn)})
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			mux, err := valserver.NewMux(valserver.Config{Store: ro, KSM: s.ksm, Now: func() time.Time { return fixedTime }})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()
			roStack := &stack{url: srv.URL}
			tests := []struct{ name, query string }{
				{"counter update refused", "id=1&nonce=" + nonceKaka + "&otp=" + line2},
				{"enrolment refused", "id=1&nonce=" + nonceKaka + "&otp=" + otherOTP},
			}
			for _, tt := range tests {
				if body, _ := roStack.get(t, "/wsapi/2.0/verify?"+tt.query); body != backendError {
					t.Errorf("read-only store, %s: %q, want %q", tt.name, body, backendError)
				}
			}
			// The replay checks still work on a read-only store.
			if _, r := roStack.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceBaka+"&otp="+line1); r.Status() != val.StatusReplayedOTP {
				t.Errorf("read-only store, replayed OTP: %s, want REPLAYED_OTP", r.Status())
			}
			if k, err := s.store.KeyState(ctx, ciPublicID); err != nil || k.Counter != 1 || k.Use != 0 {
				t.Errorf("after refused writes, key state %+v, %v; want counter 1 use 0", k, err)
			}
			// The OTPs refused are still unused.
			for _, o := range []string{line2, otherOTP} {
				if _, r := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+o); r.Status() != val.StatusOK {
					t.Errorf("writable store, OTP refused before: %s, want OK", r.Status())
				}
			}

			s.store.Close()
			want := crlfBody(sign(nil, "status=BACKEND_ERROR"), "status=BACKEND_ERROR")
			if body, _ := s.get(t, "/wsapi/2.0/verify?id=1&nonce="+nonceKaka+"&otp="+line4); body != want {
				t.Errorf("store closed: %q, want %q (empty key: the client could not be loaded)", body, want)
			}
		})
	}
}
