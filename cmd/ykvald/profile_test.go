package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
)

// TestServeForProfile runs ykvald inside the test binary with the
// arguments in $YKVALD_PROFILE_ARGS (split on spaces) for
// $YKVALD_PROFILE_SECONDS (default 30), so that
//
//	YKVALD_PROFILE_ARGS="--listen 127.0.0.1:9000 --db … --ksm-db …" \
//	  go test -run TestServeForProfile -cpuprofile cpu.out ./cmd/ykvald
//
// profiles a server under a load from outside (ykbench). Skipped unless
// the variable is set; the server logs to $YKVALD_PROFILE_LOG, or nowhere.
func TestServeForProfile(t *testing.T) {
	args := os.Getenv("YKVALD_PROFILE_ARGS")
	if args == "" {
		t.Skip("YKVALD_PROFILE_ARGS is not set")
	}
	secs := 30
	if s := os.Getenv("YKVALD_PROFILE_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatalf("YKVALD_PROFILE_SECONDS: %v", err)
		}
		secs = n
	}
	var stderr io.Writer = io.Discard
	if p := os.Getenv("YKVALD_PROFILE_LOG"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		stderr = f
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	env := cli.Env{Args: strings.Fields(args), Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: stderr, Getenv: func(string) string { return "" }}
	if err := serve(ctx, env, func(addr string) { t.Logf("listening on %s", addr) }); err != nil {
		t.Fatal(err)
	}
}
