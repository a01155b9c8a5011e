package val_test

import (
	"fmt"
	"time"

	"github.com/ykstack/ykstack/val"
)

// A server checks a verify request, then answers it.
func ExampleParseRequest() {
	q := val.ParseQuery("id=1&nonce=kakakakakakakakakakakaka&otp=IDKFEFRDHTRUTJDUVTCJBFEUVHEHDVJJLBCHTLENFGKU&timestamp=1")
	r, p := val.ParseRequest("/wsapi/2.0/verify", q)
	if p != nil {
		// Problems come before any client lookup: sign with the empty key.
		fmt.Printf("%s", val.Response{Status: p.Status}.Format(nil))
		return
	}
	fmt.Println(r.ClientID, r.PublicID(), r.SyncLevel, r.Timeout, r.Timestamp)

	key := val.DecodeKey("EHmo8FMxuhumBlTinC4uYL0Mgwg=") // the client's secret
	if !r.SignatureOK(key) {
		fmt.Println("BAD_SIGNATURE")
		return
	}
	d := val.Decrypted{Counter: 1, Low: 0x8d40, High: 0x0f, Use: 0} // from the KSM
	resp := val.Response{
		Status: val.StatusOK,
		Time:   time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		Extras: r.Extras(val.StatusOK, 0, d),
	}
	fmt.Printf("%q\n", resp.Format(key))
	// Output:
	// 1 idkfefrdhtru 60 1s true
	// "h=Y5TZufIydvHz0N4JcKULtPhS7bk=\r\nt=2020-01-01T00:00:00Z0000\r\notp=idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku\r\nnonce=kakakakakakakakakakakaka\r\nsl=0\r\ntimestamp=1019200\r\nsessioncounter=1\r\nsessionuse=0\r\nstatus=OK\r\n\r\n"
}

// A client checks a response's signature.
func ExampleParseResponse() {
	body := "h=xoC3X0Jo2I2veey9lcoIFSmPS60=\r\nt=2020-01-01T00:00:00Z0000\r\nstatus=NO_SUCH_CLIENT\r\n\r\n"
	r, err := val.ParseResponse([]byte(body))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(r.Status(), r.Verify(nil), r.Verify(val.DecodeKey("EHmo8FMxuhumBlTinC4uYL0Mgwg=")))
	// Output: NO_SUCH_CLIENT true false
}
