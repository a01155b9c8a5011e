package main

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
)

// TestClientCacheTTL: with --client-cache-ttl 0 a client deactivated in the
// database is refused at once; with a long TTL it is still served (the
// documented trade-off).
func TestClientCacheTTL(t *testing.T) {
	tests := []struct {
		ttl  string
		want val.Status // answer after the client is deactivated
	}{
		{"0", val.StatusNoSuchClient},
		{"1h", val.StatusReplayedOTP},
	}
	for _, tt := range tests {
		t.Run("ttl="+tt.ttl, func(t *testing.T) {
			b := testdb.Backends()[0]
			vdsn := valDB(t, b)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", vdsn, "--ksm-db", ksmDB(t, b), "--client-cache-ttl", tt.ttl}, nil)
			if got := verifyStatus(t, s.url, line1, "kakakakakakakakakakakaka"); got != val.StatusOK {
				t.Fatalf("first verify = %s, want OK", got)
			}
			db, err := sql.Open("sqlite", strings.TrimPrefix(vdsn, "sqlite:"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("UPDATE clients SET active = 0"); err != nil {
				t.Fatal(err)
			}
			if got := verifyStatus(t, s.url, line1, "bakabakabakabaka"); got != tt.want {
				t.Errorf("verify after the client's deactivation = %s, want %s", got, tt.want)
			}
		})
	}
	err := run(context.Background(), cli.Env{Args: []string{"--client-cache-ttl=-1s"}, Stdout: io.Discard, Stderr: io.Discard, Getenv: func(string) string { return "" }})
	if !errors.Is(err, cli.ErrUsage) {
		t.Errorf("run(--client-cache-ttl=-1s) = %v, want a usage error", err)
	}
}

// verifyStatus sends an unsigned verify request and returns the answer's status.
func verifyStatus(t *testing.T, base, otp, nonce string) val.Status {
	t.Helper()
	resp, err := http.Get(base + "/wsapi/2.0/verify?id=1&nonce=" + nonce + "&otp=" + otp)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		t.Fatalf("answer %q: %v", body, err)
	}
	return r.Status()
}
