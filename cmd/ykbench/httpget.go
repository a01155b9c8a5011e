package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// maxBody is the largest answer body a getter reads; protocol answers are
// a few hundred bytes.
const maxBody = 64 << 10

// A getter sends GET requests over one keep-alive connection (or a shared
// pool) and returns the status and body. The body is only valid until the
// next call.
type getter interface {
	get(ctx context.Context, pathQuery string) (status int, body []byte, err error)
	close()
}

// Clients a run can use.
const (
	clientStd = "std" // net/http.Client with a keep-alive pool
	clientRaw = "raw" // a minimal HTTP/1.1 client: one connection per worker
)

// newGetters returns n getters of the given kind for base; tc (nil for
// plain HTTP) is the TLS configuration of an https URL.
func newGetters(kind string, base *url.URL, n int, timeout time.Duration, tc *tls.Config) ([]getter, error) {
	gs := make([]getter, n)
	switch kind {
	case clientStd:
		tr := &http.Transport{
			Proxy:               nil, // loopback only: never through a proxy
			MaxIdleConns:        n,
			MaxIdleConnsPerHost: n,
			MaxConnsPerHost:     n,
			DisableCompression:  true,
			IdleConnTimeout:     time.Minute,
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			TLSClientConfig:     tc, // HTTP/1.1: ForceAttemptHTTP2 stays off
			TLSHandshakeTimeout: timeout,
		}
		c := &http.Client{Transport: tr, Timeout: timeout}
		h2 := tc != nil && slices.Equal(tc.NextProtos, []string{"h2"})
		for i := range gs {
			if h2 {
				// HTTP/2 would multiplex every worker on one connection:
				// give each worker a transport, hence a connection, of its own.
				t := tr.Clone()
				t.ForceAttemptHTTP2 = true
				c = &http.Client{Transport: t, Timeout: timeout}
			}
			gs[i] = &stdGetter{client: c, base: base.Scheme + "://" + base.Host, buf: make([]byte, 0, 512), h2: h2}
		}
	case clientRaw:
		addr := base.Host
		if base.Port() == "" {
			port := "80"
			if base.Scheme == "https" {
				port = "443"
			}
			addr = net.JoinHostPort(base.Hostname(), port)
		}
		for i := range gs {
			gs[i] = &rawGetter{addr: addr, host: base.Host, timeout: timeout, tls: tc}
		}
	default:
		return nil, fmt.Errorf("--client must be %q or %q", clientStd, clientRaw)
	}
	return gs, nil
}

type stdGetter struct {
	client *http.Client
	base   string
	buf    []byte
	h2     bool // fail answers that did not come over HTTP/2 (--http2)
}

func (g *stdGetter) get(ctx context.Context, pathQuery string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.base+pathQuery, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if g.h2 && resp.ProtoMajor != 2 {
		return resp.StatusCode, nil, fmt.Errorf("--http2: the server answered over %s", resp.Proto)
	}
	g.buf, err = readAllInto(g.buf[:0], io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if len(g.buf) > maxBody {
		return resp.StatusCode, nil, errors.New("answer body too large")
	}
	return resp.StatusCode, g.buf, nil
}

func (g *stdGetter) close() { g.client.CloseIdleConnections() }

// readAllInto is io.ReadAll appending to b.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// rawGetter is a small HTTP/1.1 client over one persistent connection. It
// costs the load generator far less CPU than net/http, which matters when
// generator and server share two cores. It understands Content-Length and
// chunked bodies and "Connection: close"; a request that fails on a reused
// connection is retried once on a new one, as net/http does for GET. With
// a TLS configuration it speaks HTTPS: the connection is wrapped in
// crypto/tls, and everything else stays the same.
type rawGetter struct {
	addr, host string
	timeout    time.Duration
	tls        *tls.Config // nil: plain HTTP
	conn       net.Conn
	r          *bufio.Reader
	req        []byte
	body       []byte
}

func (g *rawGetter) close() {
	if g.conn != nil {
		g.conn.Close()
		g.conn = nil
	}
}

func (g *rawGetter) get(ctx context.Context, pathQuery string) (int, []byte, error) {
	reused := g.conn != nil
	status, body, err := g.try(ctx, pathQuery)
	if err != nil && reused && ctx.Err() == nil {
		status, body, err = g.try(ctx, pathQuery)
	}
	return status, body, err
}

func (g *rawGetter) try(ctx context.Context, pathQuery string) (int, []byte, error) {
	if g.conn == nil {
		d := net.Dialer{Timeout: g.timeout}
		c, err := d.DialContext(ctx, "tcp", g.addr)
		if err != nil {
			return 0, nil, err
		}
		if g.tls != nil {
			tc := tls.Client(c, g.tls)
			hctx, cancel := context.WithTimeout(ctx, g.timeout)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				c.Close()
				return 0, nil, fmt.Errorf("tls: %w", err)
			}
			c = tc
		}
		g.conn = c
		if g.r == nil {
			g.r = bufio.NewReaderSize(c, 4096)
		} else {
			g.r.Reset(c)
		}
	}
	g.conn.SetDeadline(time.Now().Add(g.timeout))
	g.req = append(g.req[:0], "GET "...)
	g.req = append(g.req, pathQuery...)
	g.req = append(g.req, " HTTP/1.1\r\nHost: "...)
	g.req = append(g.req, g.host...)
	g.req = append(g.req, "\r\nUser-Agent: ykbench\r\n\r\n"...)
	if _, err := g.conn.Write(g.req); err != nil {
		g.close()
		return 0, nil, err
	}
	status, body, keep, err := g.readResponse()
	if err != nil || !keep {
		g.close()
	}
	return status, body, err
}

// readResponse reads one response from g.r.
func (g *rawGetter) readResponse() (status int, body []byte, keep bool, err error) {
	line, err := g.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, false, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, false, fmt.Errorf("malformed status line %q", line)
	}
	keep = line[7] == '1'
	length, chunked := -1, false
	for {
		line, err = g.r.ReadSlice('\n')
		if err != nil {
			return status, nil, false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return status, nil, false, fmt.Errorf("malformed header %q", line)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, err := strconv.Atoi(string(value))
			if err != nil || n < 0 {
				return status, nil, false, fmt.Errorf("malformed Content-Length %q", value)
			}
			length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			if asciiEqualFold(value, "close") {
				keep = false
			}
		}
	}
	switch {
	case chunked:
		body, err = g.readChunked()
	case length >= 0:
		if length > maxBody {
			return status, nil, false, errors.New("answer body too large")
		}
		body, err = g.readN(g.body[:0], length)
	default: // body runs to the end of the connection
		body, err = readAllInto(g.body[:0], io.LimitReader(g.r, maxBody))
		keep = false
	}
	if err != nil {
		return status, nil, false, err
	}
	g.body = body
	return status, body, keep, nil
}

func (g *rawGetter) readN(b []byte, n int) ([]byte, error) {
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(b)+n), b...)
	}
	_, err := io.ReadFull(g.r, b[len(b):len(b)+n])
	return b[:len(b)+n], err
}

func (g *rawGetter) readChunked() ([]byte, error) {
	b := g.body[:0]
	for {
		line, err := g.r.ReadSlice('\n')
		if err != nil {
			return nil, err
		}
		size, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseUint(string(bytes.TrimSpace(size)), 16, 31)
		if err != nil {
			return nil, fmt.Errorf("malformed chunk size %q", line)
		}
		if n == 0 {
			for { // trailers, then the final CRLF
				line, err = g.r.ReadSlice('\n')
				if err != nil {
					return nil, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return b, nil
				}
			}
		}
		if len(b)+int(n) > maxBody {
			return nil, errors.New("answer body too large")
		}
		if b, err = g.readN(b, int(n)); err != nil {
			return nil, err
		}
		if line, err = g.r.ReadSlice('\n'); err != nil || len(bytes.TrimRight(line, "\r\n")) != 0 {
			return nil, errors.New("malformed chunk end")
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c, d := b[i], s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}
