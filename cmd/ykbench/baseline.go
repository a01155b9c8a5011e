package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
)

// baselineLine is what the baseline server answers: a KSM OK line, so that
// its answers are as long as a real KSM's.
const baselineLine = "OK counter=0001 low=8d40 high=0f use=00\n"

// runBaseline serves baselineLine on every path: the fastest a Go HTTP
// server can answer on this machine, the yardstick for the KSM.
func runBaseline(ctx context.Context, env cli.Env, args []string) error {
	fs := newFlagSet("baseline", env.Stderr)
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` to listen on")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ln, err := listenLoopback(*listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "listening on %s\n", ln.Addr())
	return serve(ctx, ln, baselineHandler())
}

func baselineHandler() http.Handler {
	body := []byte(baselineLine)
	ct := []string{"text/plain; charset=utf-8"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = ct
		w.Write(body)
	})
}

// listenLoopback listens on addr, which must be a loopback address.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, cli.Usagef("--listen: %v", err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, cli.Usagef("--listen %q: want a loopback address such as 127.0.0.1:8080", addr)
	}
	return net.Listen("tcp", addr)
}

// serve serves h on ln until ctx ends, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
