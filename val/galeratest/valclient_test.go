package galeratest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ykstack/ykstack/val/valclient"
)

// TestValclient verifies 500 fresh OTPs with val/valclient configured with
// two ykvald servers on different nodes, as pam_yubico and ykclient users
// list several servers: the client sends each OTP to both at once with one
// nonce and takes the first final answer. Every fresh OTP must verify: the
// server that loses the race must not answer with a final refusal
// (REPLAYED_OTP) for the request its peer has just accepted.
func TestValclient(t *testing.T) {
	const otps = 500
	c := cluster(t)
	p := newValPair(t, c, binaries(t, "ykvald"), "")
	var urls []string
	for _, d := range p.servers {
		urls = append(urls, "http://"+d.addr+"/wsapi/2.0/verify")
	}
	vc, err := valclient.New(valclient.Config{URLs: urls, ClientID: p.client.ID, APIKey: p.client.Secret, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	begin := time.Now()
	outcomes := map[string]int{}
	for i := range otps {
		o, _ := p.keys[i%numKeys].next()
		res, err := vc.Verify(ctx, o)
		switch {
		case err == nil:
			outcomes["OK"]++
		case errors.As(err, new(*valclient.StatusError)):
			if outcomes[string(res.Status)]++; outcomes[string(res.Status)] <= 5 {
				t.Errorf("Verify(fresh OTP %d) = %s, %v; want OK", i, res.Status, err)
			}
		default:
			outcomes["error"]++
			t.Errorf("Verify(fresh OTP %d): %v", i, err)
		}
	}
	t.Logf("%d fresh OTPs verified with valclient over two servers in %v: %v", otps, time.Since(begin).Round(time.Millisecond), outcomes)
	p.logProblems(t)
	if outcomes["OK"] != otps {
		t.Errorf("%d of %d fresh OTPs verified OK", outcomes["OK"], otps)
	}
}
