package ksmserver_test

import (
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// openExampleStore opens a SQLite key store in a temporary directory holding
// the key of YK-KSM's self-test.
func openExampleStore() (store *sqlstore.Store, cleanup func()) {
	dir, err := os.MkdirTemp("", "ksmserver-example")
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	store, err = sqlstore.Open(ctx, sqldb.Config{DSN: "sqlite:" + filepath.Join(dir, "ykksm.db")})
	if err != nil {
		panic(err)
	}
	err = store.Import(ctx, []ksm.Key{{
		PublicName:   "idkfefrdhtru",
		InternalName: "609963eae7b5",
		AESKey:       "c68c9df8cbfe7d2f994cb904046c7218",
		Active:       true,
	}})
	if err != nil {
		panic(err)
	}
	return store, func() { store.Close(); os.RemoveAll(dir) }
}

// A Decrypter answers in-process, the way YK-VAL's embedded KSM mode uses it.
func ExampleDecrypter() {
	store, cleanup := openExampleStore()
	defer cleanup()
	d := ksmserver.NewDecrypter(store, nil)

	for _, otp := range []string{
		"idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku",
		"idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv",
		"cdkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv",
	} {
		res, err := d.Decrypt(context.Background(), otp)
		if err != nil {
			fmt.Println(ksm.Line(err))
			continue
		}
		fmt.Println(res, "counter", res.Counter, "use", res.Use)
	}
	// Output:
	// OK counter=0001 low=8d40 high=0f use=00 counter 1 use 0
	// ERR Corrupt OTP
	// ERR Unknown yubikey
}

// NewMux serves YK-KSM's HTTP API.
func ExampleNewMux() {
	store, cleanup := openExampleStore()
	defer cleanup()
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: store})
	if err != nil {
		panic(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	resp, err := srv.Client().Get(srv.URL + "/wsapi/decrypt?otp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d %q\n", resp.StatusCode, body)
	// Output: 200 "OK counter=0001 low=8d40 high=0f use=00\n"
}
