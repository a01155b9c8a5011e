package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valserver"
	"github.com/ykstack/ykstack/val/valsync"
)

func TestResyncURL(t *testing.T) {
	tests := []struct{ host, key, want string }{
		{"http://example.com/wsapi/2.0/resync", "ccccccccccdn", "http://example.com/wsapi/2.0/resync?yk=ccccccccccdn"},
		{"https://val1/x", "all", "https://val1/x?yk=all"},
		{"val1.example.com", "all", "http://val1.example.com/wsapi/2.0/resync?yk=all"},
		{"192.0.2.1:8080", "all", "http://192.0.2.1:8080/wsapi/2.0/resync?yk=all"},
		{"val1/custom/resync", "all", "http://val1/custom/resync?yk=all"},
		{"/abs", "all", "http:///abs/wsapi/2.0/resync?yk=all"}, // PHP's strpos(...) == False at position 0
		{"val1", "", "http://val1/wsapi/2.0/resync?yk="},
	}
	for _, tt := range tests {
		if got := ResyncURL(tt.host, tt.key); got != tt.want {
			t.Errorf("ResyncURL(%q, %q) = %q, want %q", tt.host, tt.key, got, tt.want)
		}
	}
}

func TestArguments(t *testing.T) {
	for _, args := range [][]string{nil, {"host"}, {"host", "all", "x"}, {"host", "ALL"}, {"host", "abc"}, {"host", strings.Repeat("c", 17)}, {"--help"}} {
		var out bytes.Buffer
		err := run(context.Background(), cli.Env{Args: args, Stdout: &out, Stderr: io.Discard})
		if err == nil || cli.Report("ykval-synchronize", io.Discard, err) != cli.ExitFailure {
			t.Errorf("run(%q) = %v, want exit 1", args, err)
		}
		if !strings.HasPrefix(out.String(), "Usage: ykval-synchronize URL KEY\n\nURL: URL of resync service.\n") {
			t.Errorf("run(%q) printed %q, want the usage text", args, out.String())
		}
	}
}

// noKSM: the server here only serves resync.
type noKSM struct{}

func (noKSM) Decrypt(context.Context, string) (val.Decrypted, error) {
	return val.Decrypted{}, val.ErrKSMRejected
}

// TestSynchronize runs against a real ykvald handler with a sync pool: the
// answer is printed and the key states are queued for the peer.
func TestSynchronize(t *testing.T) {
	ctx := context.Background()
	st, err := sqlstore.Open(ctx, sqldb.Config{DSN: testdb.SQLite(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, name := range []string{"cccccccccccb", "cccccccccccd"} {
		if _, err := st.ImportKey(ctx, val.KeyState{PublicName: name, Active: true, Modified: 5, Counter: 1, Use: 2, Nonce: "aaaaaaaaaaaaaaaa"}); err != nil {
			t.Fatal(err)
		}
	}
	pool, err := valsync.New(valsync.Config{Store: st, Peers: []string{"https://new.example.com/wsapi/2.0/sync"}})
	if err != nil {
		t.Fatal(err)
	}
	mux, err := valserver.NewMux(valserver.Config{Store: st, KSM: noKSM{}, Syncer: pool, SyncAllow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()

	host := strings.TrimPrefix(srv.URL, "http://")
	tests := []struct {
		args   []string
		want   string
		queued int
	}{
		{[]string{host, "all"}, "OK Initiated resync of all\n", 2},
		{[]string{srv.URL + "/wsapi/2.0/resync", "cccccccccccb"}, "OK Initiated resync of cccccccccccb\n", 3},
		{[]string{host, "cccccccccccf"}, "ERROR Unknown yubikey: cccccccccccf\n", 3},
		{[]string{host, ""}, "ERROR Missing parameter\n", 3},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		if err := run(ctx, cli.Env{Args: tt.args, Stdout: &out, Stderr: io.Discard}); err != nil || out.String() != tt.want {
			t.Errorf("run(%q) = %v, printed %q; want %q", tt.args, err, out.String(), tt.want)
		}
		if n, _ := st.QueueLength(ctx); n != tt.queued {
			t.Errorf("after run(%q) the queue holds %d rows, want %d", tt.args, n, tt.queued)
		}
	}
}

func TestFailure(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("User-Agent") != "YK-VAL" {
			t.Errorf("User-Agent %q", r.Header.Get("User-Agent"))
		}
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer srv.Close()
	for _, host := range []string{srv.URL, "http://127.0.0.1:1/wsapi/2.0/resync"} {
		var out bytes.Buffer
		err := run(context.Background(), cli.Env{Args: []string{host, "all"}, Stdout: &out, Stderr: io.Discard})
		if err == nil || out.String() != "error" || cli.Report("ykval-synchronize", io.Discard, err) != cli.ExitFailure {
			t.Errorf("run(%s) = %v, printed %q; want \"error\" and exit 1", host, err, out.String())
		}
	}
}
