package otp_test

import (
	"fmt"

	"github.com/ykstack/ykstack/otp"
)

// Decrypt the OTP from YK-KSM's self test with its published key.
func ExampleDecrypt() {
	key, _ := otp.ParseKey("c68c9df8cbfe7d2f994cb904046c7218")
	uid, _ := otp.ParseUID("609963eae7b5")
	publicID, token, err := otp.Split("idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku")
	if err != nil {
		fmt.Println(err)
		return
	}
	t, err := otp.Decrypt(key, uid, token)
	fmt.Printf("%s counter=%04x low=%04x high=%02x use=%02x %v\n",
		publicID, t.Counter, t.TimestampLow, t.TimestampHigh, t.Use, err)
	// Output: idkfefrdhtru counter=0001 low=8d40 high=0f use=00 <nil>
}

// Mint an OTP the way a YubiKey does on a touch.
func ExampleGenerate() {
	key, _ := otp.ParseKey("c68c9df8cbfe7d2f994cb904046c7218")
	uid, _ := otp.ParseUID("609963eae7b5")
	tok := otp.Token{UID: uid, Counter: 1, TimestampLow: 0x8d40, TimestampHigh: 0x0f, Use: 0, Random: 0x5447}
	fmt.Println(otp.Generate("idkfefrdhtru", key, tok))
	// Output: idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku
}
