package ksmclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmclient"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// A Client asks the KSMs in parallel; the first OK wins.
func ExampleClient_Decrypt() {
	// A KSM holding the key of YK-KSM's self-test.
	dir, _ := os.MkdirTemp("", "ksmclient-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlstore.Open(ctx, sqldb.Config{DSN: "sqlite:" + filepath.Join(dir, "ykksm.db")})
	if err != nil {
		panic(err)
	}
	defer store.Close()
	store.Import(ctx, []ksm.Key{{PublicName: "idkfefrdhtru", InternalName: "609963eae7b5",
		AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true}})
	mux, _ := ksmserver.NewMux(ksmserver.Config{Store: store})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	c, err := ksmclient.New(ksmclient.Config{URLs: []string{srv.URL + "/wsapi/decrypt"}})
	if err != nil {
		panic(err)
	}
	res, err := c.Decrypt(ctx, "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku")
	fmt.Println(res, err)

	_, err = c.Decrypt(ctx, "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgkv")
	fmt.Println(errors.Is(err, ksm.ErrCorrupt), errors.Is(err, ksmclient.ErrUnavailable))
	// Output:
	// OK counter=0001 low=8d40 high=0f use=00 <nil>
	// true false
}
