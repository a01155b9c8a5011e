package e2e_test

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
)

// TestReplayRace sends one fresh OTP from 16 goroutines at once, 1,000
// rounds, over HTTP to the verify handler on SQLite and on MariaDB: every
// round exactly one request is OK and the others are REPLAYED_OTP, or
// REPLAYED_REQUEST for those sharing the winner's nonce. (YK-VAL 2.41,
// measured the same way, accepted one OTP twice in 17 of 100 rounds.)
func TestReplayRace(t *testing.T) {
	const goroutines = 16
	rounds := 1000
	if testing.Short() {
		rounds = 100
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			t.Parallel() // one backend waits on disk while the other computes
			s := newStack(t, setup{b.Name, b, embedded}, quiet)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * goroutines}}
			defer client.CloseIdleConnections()
			nonces := make([]string, goroutines)
			for g := range nonces {
				// Odd goroutines share one nonce, even ones have their own.
				if g%2 == 1 {
					nonces[g] = "sharedsharedshared"
				} else {
					nonces[g] = fmt.Sprintf("nonce%02dnonce%02dnonce", g, g)
				}
			}
			begin := time.Now()
			totals := map[val.Status]int{}
			failures := 0
			for round := 0; round < rounds && failures < 10; round++ {
				o := mint(uint16(1+round/256), uint8(round%256))
				var (
					wg       sync.WaitGroup
					start    = make(chan struct{})
					statuses [goroutines]val.Status
					errs     [goroutines]error
				)
				for g := range goroutines {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						statuses[g], errs[g] = verifyStatus(client, s.url+"/wsapi/2.0/verify?id=1&otp="+o+"&nonce="+nonces[g])
					}()
				}
				close(start)
				wg.Wait()
				winner := -1
				for g, st := range statuses {
					if errs[g] != nil {
						t.Errorf("round %d, goroutine %d: %v", round, g, errs[g])
						failures++
						continue
					}
					totals[st]++
					switch st {
					case val.StatusOK:
						if winner >= 0 {
							t.Errorf("round %d: goroutines %d and %d both got OK for the same OTP", round, winner, g)
							failures++
						}
						winner = g
					case val.StatusReplayedOTP, val.StatusReplayedRequest:
					default:
						t.Errorf("round %d, goroutine %d: %s, want OK, REPLAYED_OTP or REPLAYED_REQUEST", round, g, st)
						failures++
					}
				}
				if winner < 0 {
					t.Errorf("round %d: no request got OK: %v", round, statuses)
					failures++
					continue
				}
				for g, st := range statuses {
					if st == val.StatusReplayedRequest && nonces[g] != nonces[winner] {
						t.Errorf("round %d: goroutine %d got REPLAYED_REQUEST with a nonce other than the winner's", round, g)
						failures++
					}
				}
			}
			t.Logf("%d rounds × %d requests in %v: %v", rounds, goroutines, time.Since(begin).Round(time.Millisecond), totals)
			if totals[val.StatusOK] != rounds {
				t.Errorf("%d OK answers in %d rounds, want exactly one per round", totals[val.StatusOK], rounds)
			}
		})
	}
}

// verifyStatus GETs a verify URL and returns the answer's status, checking
// the HTTP status and the body's form.
func verifyStatus(c *http.Client, u string) (val.Status, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %q", resp.StatusCode, body)
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		return "", err
	}
	if !r.Verify(clientKey) {
		return "", fmt.Errorf("answer %q not signed with the client key", body)
	}
	return r.Status(), nil
}
