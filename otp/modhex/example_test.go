package modhex_test

import (
	"fmt"

	"github.com/ykstack/ykstack/otp/modhex"
)

func ExampleDecodeString() {
	b, err := modhex.DecodeString("cccccccccccb")
	fmt.Printf("%x %v\n", b, err)
	_, err = modhex.DecodeString("cccccccccccB")
	fmt.Println(err)
	// Output:
	// 000000000001 <nil>
	// modhex: invalid byte: U+0042 'B'
}

func ExampleEncodeToString() {
	fmt.Println(modhex.EncodeToString([]byte{0x01, 0x23, 0xfe}))
	// Output: cbdevu
}
