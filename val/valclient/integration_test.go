package valclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valclient"
	"github.com/ykstack/ykstack/val/valserver"
)

// The CI key and client of YK-KSM's and YK-VAL's self-tests (spec 5.1).
const (
	ciPublicID = "idkfefrdhtru"
	ciUID      = "609963eae7b5"
	ciAESKey   = "c68c9df8cbfe7d2f994cb904046c7218"
	ciSecret   = "EHmo8FMxuhumBlTinC4uYL0Mgwg="
)

// keyKSM decrypts the CI key's OTPs in-process with the otp package, as an
// embedded KSM would (val packages never import ksm).
type keyKSM struct {
	key otp.Key
	uid otp.UID
}

func (k keyKSM) Decrypt(_ context.Context, s string) (val.Decrypted, error) {
	pub, token, err := otp.Split(s)
	if err != nil || pub != ciPublicID {
		return val.Decrypted{}, fmt.Errorf("%w: unknown key", val.ErrKSMRejected)
	}
	t, err := otp.Decrypt(k.key, k.uid, token)
	if err != nil {
		return val.Decrypted{}, fmt.Errorf("%w: %v", val.ErrKSMRejected, err)
	}
	return val.Decrypted{Counter: t.Counter, Low: t.TimestampLow, High: t.TimestampHigh, Use: t.Use}, nil
}

// startVAL runs ykstack's validation server over a fresh store on b,
// with API client 1 of the CI secret.
func startVAL(t *testing.T, b testdb.Backend) string {
	t.Helper()
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: b.DSN(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.ImportClients(ctx, []val.Client{{ID: 1, Active: true, Created: 1383728711, Secret: ciSecret}}); err != nil {
		t.Fatal(err)
	}
	key, _ := otp.ParseKey(ciAESKey)
	uid, _ := otp.ParseUID(ciUID)
	mux, err := valserver.NewMux(valserver.Config{Store: st, KSM: keyKSM{key, uid}})
	if err != nil {
		t.Fatal(err)
	}
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s.URL + "/wsapi/2.0/verify"
}

// mint returns an OTP of the CI key at (counter, use), as in spec 5.2.
func mint(counter uint16, use uint8, low uint16) string {
	key, _ := otp.ParseKey(ciAESKey)
	uid, _ := otp.ParseUID(ciUID)
	return otp.Generate(ciPublicID, key, otp.Token{UID: uid, Counter: counter, Use: use, TimestampLow: low, TimestampHigh: 0x0f, Random: 0x5447}) // bytes 47 54
}

// The client against the real server: the sequence of spec 5.2 and the
// signature cases, on every storage backend.
func TestAgainstValserver(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			u := startVAL(t, b)
			client := func(id int64, apiKey string) *valclient.Client {
				c, err := valclient.New(valclient.Config{URLs: []string{u}, ClientID: id, APIKey: apiKey})
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			signed, unsigned := client(1, ciSecret), client(1, "")
			ctx := context.Background()
			line1 := mint(1, 0, 0x8d40)
			if line1 != "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku" {
				t.Fatalf("mint(1, 0) = %s, want the upstream CI OTP", line1)
			}
			steps := []struct {
				name string
				c    *valclient.Client
				otp  string
				want error // nil: OK
				res  [3]int64
			}{
				{"line 1", signed, line1, nil, [3]int64{0x0f8d40, 1, 0}},
				{"line 1 again", signed, line1, valclient.ErrReplayedOTP, [3]int64{-1, -1, -1}},
				{"line 2", signed, mint(1, 1, 0x8d48), nil, [3]int64{1019208, 1, 1}},
				{"line 4", unsigned, mint(2, 0, 0x1234), nil, [3]int64{0x0f1234, 2, 0}},
				{"line 3, older", signed, mint(1, 2, 0x8d50), valclient.ErrReplayedOTP, [3]int64{-1, -1, -1}},
				{"unknown key", signed, "cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv", valclient.ErrBadOTP, [3]int64{-1, -1, -1}},
				// Early errors are signed with the empty key: a signing client
				// sees a bad server signature, an unsigned one the status.
				{"no such client, signed", client(2, ciSecret), mint(3, 0, 1), valclient.ErrBadServerSignature, [3]int64{}}, // no verdict: zero Result
				{"no such client, unsigned", client(2, ""), mint(3, 0, 1), valclient.ErrNoSuchClient, [3]int64{-1, -1, -1}},
				// BAD_SIGNATURE is signed with the stored key, which a client
				// with a wrong key cannot check either.
				{"wrong key", client(1, "Zm9vYmFyYmF6"), mint(3, 0, 1), valclient.ErrBadServerSignature, [3]int64{}},
				{"after all that, the next OTP", signed, mint(3, 0, 1), nil, [3]int64{0x0f0001, 3, 0}},
			}
			for _, s := range steps {
				res, err := s.c.Verify(ctx, s.otp)
				if s.want == nil && err != nil || s.want != nil && !errors.Is(err, s.want) {
					t.Fatalf("%s: Verify = %+v, %v; want %v", s.name, res, err, s.want)
				}
				if got := [3]int64{res.Timestamp, res.SessionCounter, res.SessionUse}; got != s.res {
					t.Errorf("%s: timestamp, counter, use = %v, want %v", s.name, got, s.res)
				}
				if s.want == nil && (res.SyncLevel != 0 || res.Reply.Get("otp") != s.otp) {
					t.Errorf("%s: sl %d, otp %q; want 0 (no sync pool) and the OTP echoed", s.name, res.SyncLevel, res.Reply.Get("otp"))
				}
			}
		})
	}
}
