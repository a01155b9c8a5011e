package keyprov

import (
	"io"
	"strconv"

	"github.com/ykstack/ykstack/ksm"
)

// WriteHeader writes the Magic line, as ykksm-gen-keys does first.
// (ykksm-export writes no header; callers copying it skip this.)
func WriteHeader(w io.Writer) error {
	_, err := io.WriteString(w, Magic+"\n")
	return err
}

// FormatLine returns the data line for k, without a newline, exactly as
// ykksm-gen-keys and ykksm-export print it:
//
//	serialNr,publicName,internalName,aesKey,lockCode,created,accessed
//
// followed by ",progflags" when progflags is not nil. With an empty accessed
// and no progflags the line ends in a comma, like the originals' lines. The
// line holds the AES key: write it only to where keys belong. Parse reads it
// back to k when k's fields are valid (see the package documentation).
func FormatLine(k ksm.Key, accessed string, progflags *int) string {
	b := make([]byte, 0, 128)
	b = strconv.AppendInt(b, k.SerialNr, 10)
	for _, s := range []string{k.PublicName, k.InternalName, k.AESKey, k.LockCode, k.Created, accessed} {
		b = append(b, ',')
		b = append(b, s...)
	}
	if progflags != nil {
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(*progflags), 10)
	}
	return string(b)
}
