package otp

import (
	"crypto/aes"

	"github.com/ykstack/ykstack/otp/modhex"
)

// encryptBlock encrypts a raw block, CRC and all, for tests that need a bad CRC.
func encryptBlock(key Key, pt [BlockSize]byte) string {
	c, _ := aes.NewCipher(key[:])
	var ct [BlockSize]byte
	c.Encrypt(ct[:], pt[:])
	return modhex.EncodeToString(ct[:])
}
