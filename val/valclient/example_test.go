package valclient_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valclient"
)

// apiKey is the client's secret, shared with the server.
const apiKey = "EHmo8FMxuhumBlTinC4uYL0Mgwg="

// newValidationServer starts a stand-in validation server that accepts
// every well-formed request once per nonce, as counter 1, use 0.
func newValidationServer() *httptest.Server {
	seen := map[string]bool{}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, hr *http.Request) {
		r, p := val.ParseRequest(hr.RequestURI, val.ParseQuery(hr.URL.RawQuery))
		if p != nil {
			w.Write(val.Response{Status: p.Status}.Format(nil))
			return
		}
		key := val.DecodeKey(apiKey)
		status := val.StatusOK
		switch {
		case !r.SignatureOK(key):
			status = val.StatusBadSignature
		case seen[r.OTP]:
			status = val.StatusReplayedOTP
		}
		seen[r.OTP] = true
		d := val.Decrypted{Counter: 1, Low: 0x8d40, High: 0x0f}
		w.Write(val.Response{Status: status, Extras: r.Extras(status, 0, d)}.Format(key))
	}))
}

func Example() {
	srv := newValidationServer()
	defer srv.Close()

	c, err := valclient.New(valclient.Config{
		URLs:     []string{srv.URL + "/wsapi/2.0/verify"},
		ClientID: 1,
		APIKey:   apiKey,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	otp := "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"
	id, _ := valclient.PublicID(otp)
	res, err := c.Verify(context.Background(), otp)
	if err != nil {
		fmt.Println("rejected:", err)
		return
	}
	fmt.Println(id, res.Status, "counter", res.SessionCounter, "use", res.SessionUse)

	// The same OTP again is refused; the error says why.
	_, err = c.Verify(context.Background(), otp)
	fmt.Println(errors.Is(err, valclient.ErrReplayedOTP))
	// Output:
	// idkfefrdhtru OK counter 1 use 0
	// true
}
