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
)

// TestKeyCacheTTL: with --key-cache-ttl 0 a key deactivated in the database
// stops decrypting at once; with a long TTL it keeps decrypting from memory
// (the documented trade-off), and the database is not asked again.
func TestKeyCacheTTL(t *testing.T) {
	tests := []struct {
		ttl  string
		want string // answer after the key is deactivated
	}{
		{"0", "ERR Unknown yubikey\n"},
		{"1h", ciOK},
	}
	for _, tt := range tests {
		t.Run("ttl="+tt.ttl, func(t *testing.T) {
			dsn := testdb.SQLite(t)
			seed(t, dsn)
			s := start(t, []string{"--listen", "127.0.0.1:0", "--db", dsn, "--key-cache-ttl", tt.ttl}, nil)
			url := "http://" + s.addr + "/wsapi/decrypt?otp=" + ciOTP
			if code, body := get(t, url); code != http.StatusOK || body != ciOK {
				t.Fatalf("first decrypt = %d %q, want %q", code, body, ciOK)
			}
			db, err := sql.Open("sqlite", strings.TrimPrefix(dsn, "sqlite:"))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec("UPDATE yubikeys SET active = 0"); err != nil {
				t.Fatal(err)
			}
			if code, body := get(t, url); code != http.StatusOK || body != tt.want {
				t.Errorf("decrypt after deactivation = %d %q, want %q", code, body, tt.want)
			}
		})
	}
	err := run(context.Background(), cli.Env{Args: []string{"--key-cache-ttl=-1s"}, Stdout: io.Discard, Stderr: io.Discard, Getenv: getenv(nil)})
	if !errors.Is(err, cli.ErrUsage) {
		t.Errorf("run(--key-cache-ttl=-1s) = %v, want a usage error", err)
	}
}
