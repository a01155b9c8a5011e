package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/otp/modhex"
)

// usageText is what YK-VAL's tool prints for wrong arguments; %s is the
// program name.
const usageText = `Usage: %s URL KEY

URL: URL of resync service.

KEY: Public identifier of a YubiKey to sync, or "all".

Usage example:

%s http://example.com/wsapi/2.0/resync ccccccccccdn
`

// timeout bounds the request (YK-VAL's curl had none).
const timeout = 5 * time.Minute

// maxAnswer bounds the answer printed.
const maxAnswer = 64 << 10

// errArgs is the wrong-arguments error: exit 1, after the usage text.
var errArgs = errors.New("wrong arguments")

func run(ctx context.Context, env cli.Env) error {
	if len(env.Args) != 2 || !(env.Args[1] == "all" || validKey(env.Args[1])) {
		fmt.Fprintf(env.Stdout, usageText, "ykval-synchronize", "ykval-synchronize")
		return errArgs
	}
	u := ResyncURL(env.Args[0], env.Args[1])
	body, err := get(ctx, u)
	if err != nil {
		io.WriteString(env.Stdout, "error")
		return err
	}
	_, err = env.Stdout.Write(body)
	return err
}

// validKey reports whether s is 0 to 16 modhex characters, as YK-VAL's
// /^[cbdefghijklnrtuv]{0,16}$/.
func validKey(s string) bool {
	return len(s) <= 16 && (s == "" || modhex.Valid(s))
}

// ResyncURL builds the request URL as YK-VAL's tool does: a host without a
// scheme gets "/wsapi/2.0/resync" when it has no '/' after its first
// character (PHP's strpos(...) == false is also true for a '/' at 0), then
// "http://"; then "?yk=" and the key.
func ResyncURL(host, key string) string {
	if !strings.HasPrefix(host, "http://") && !strings.HasPrefix(host, "https://") {
		if i := strings.Index(host, "/"); i <= 0 {
			host += "/wsapi/2.0/resync"
		}
		host = "http://" + host
	}
	return host + "?yk=" + key
}

func get(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "YK-VAL")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return nil, fmt.Errorf("%s: %w", ue.URL, ue.Err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 400 {
		return nil, fmt.Errorf("%s: HTTP %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
}
