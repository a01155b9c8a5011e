package e2e_test

import (
	"context"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// TestVectorSequence replays YK-VAL's self-test (spec 3.2) and the derived
// sequence of spec 5.2 against a fresh single node, checking every body
// byte for byte: CRLF framing, t, the extras, and h under the right key
// (the published signature vectors for OK and NO_SUCH_CLIENT).
func TestVectorSequence(t *testing.T) {
	for _, su := range setups() {
		t.Run(su.name, func(t *testing.T) {
			s := newStack(t, su)
			tests := []struct {
				name, query string
				want        string
			}{
				{"line1 OK", "id=1&otp=" + line1 + "&nonce=" + nonceKaka,
					crlfBody("QP12HqGPhZ9I2BOum8yw/MQzCwg=", "otp="+line1, "nonce="+nonceKaka, "sl=0", "status=OK")},
				{"unknown client", "id=2&otp=" + line1 + "&nonce=" + nonceKaka,
					crlfBody("xoC3X0Jo2I2veey9lcoIFSmPS60=", "status=NO_SUCH_CLIENT")},
				{"same request", "id=1&otp=" + line1 + "&nonce=" + nonceKaka,
					crlfBody(sign(clientKey, "otp="+line1, "nonce="+nonceKaka, "status=REPLAYED_REQUEST"),
						"otp="+line1, "nonce="+nonceKaka, "status=REPLAYED_REQUEST")},
				{"same OTP, new nonce", "id=1&otp=" + line1 + "&nonce=" + nonceBaka,
					crlfBody(sign(clientKey, "otp="+line1, "nonce="+nonceBaka, "status=REPLAYED_OTP"),
						"otp="+line1, "nonce="+nonceBaka, "status=REPLAYED_OTP")},
				{"line2 with timestamp", "id=1&otp=" + line2 + "&nonce=" + nonceBaka + "&timestamp=1",
					crlfBody(sign(clientKey, "otp="+line2, "nonce="+nonceBaka, "sl=0", "timestamp=1019208", "sessioncounter=1", "sessionuse=1", "status=OK"),
						"otp="+line2, "nonce="+nonceBaka, "sl=0", "timestamp=1019208", "sessioncounter=1", "sessionuse=1", "status=OK")},
				{"line4 OK", "id=1&otp=" + line4 + "&nonce=" + nonceKaka,
					crlfBody(sign(clientKey, "otp="+line4, "nonce="+nonceKaka, "sl=0", "status=OK"),
						"otp="+line4, "nonce="+nonceKaka, "sl=0", "status=OK")},
				{"line3 after line4", "id=1&otp=" + line3 + "&nonce=" + nonceKaka,
					crlfBody(sign(clientKey, "otp="+line3, "nonce="+nonceKaka, "status=REPLAYED_OTP"),
						"otp="+line3, "nonce="+nonceKaka, "status=REPLAYED_OTP")},
			}
			for _, tt := range tests {
				if got, _ := s.get(t, "/wsapi/2.0/verify?"+tt.query); got != tt.want {
					t.Errorf("%s: GET verify?%s =\n%q\nwant\n%q", tt.name, tt.query, got, tt.want)
				}
			}
			// ykval-export | wc -l = 1: the key was enrolled once.
			var keys []val.KeyState
			s.store.EachKey(context.Background(), func(k val.KeyState) error { keys = append(keys, k); return nil })
			want := val.KeyState{PublicName: ciPublicID, Active: true, Created: fixedTime.Unix(), Modified: fixedTime.Unix(),
				Counter: 2, Use: 0, Low: 0x1234, High: 0, Nonce: nonceKaka}
			if len(keys) != 1 || keys[0] != want {
				t.Errorf("stored keys = %+v, want [%+v]", keys, want)
			}
		})
	}
}
