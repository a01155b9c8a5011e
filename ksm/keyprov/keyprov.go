// Package keyprov reads and writes YK-KSM's key provisioning format,
// "YKKSM-KEYPROV": the plain text that ykksm-gen-keys and ykksm-export print
// and ykksm-import reads (normally inside an OpenPGP signed and encrypted
// message; this package sees only the plain text).
//
// A file is a sequence of lines, LF or CRLF terminated:
//
//	# ykksm 1
//	# serialnr,identity,internaluid,aeskey,lockpw,created,accessed[,progflags]
//	4711,dlcfffckrcde,ca62baca62ba,ecde18dbe76fbd0c33330f1c354871db,be70aeca62ba,2009-01-22 00:25:11,
//	4713,dlcfffckrcdedlcf,ca62baca62ba,ecde18dbe76fbd0c33330f1c354871db,,2009-01-22 00:25:11,2009-02-13 00:05:40,0 # a comment
//	# the end
//
// Everything from a '#' to the end of the line is a comment. A data line has
// seven or eight comma-separated fields:
//
//	serialNr      decimal, 0 to 2147483647 (the yubikeys.serialnr column is an int)
//	publicName    1 to 16 modhex characters (the public ID)
//	internalName  12 hex digits (the private ID, 6 bytes)
//	aesKey        32 hex digits (AES-128)
//	lockCode      12 hex digits, or empty
//	created       characters from "T:0123456789 -", at most 24; may be empty;
//	              spaces at either end are dropped
//	accessed      the same, without the length limit
//	progflags     optional: a decimal number, 0 to 2147483647
//
// Hex and modhex digits may be written in either case and are returned in
// lower case, the case the KSM stores and compares.
//
// Parsing is stricter than Yubico's Perl importer in some ways and kinder in
// others, always so that a file is either imported whole and right or
// rejected with a precise reason:
//
//   - Blank lines are skipped (the Perl importer aborted on them, part way
//     through an import). A UTF-8 byte order mark before the first line is
//     ignored.
//   - An empty publicName is rejected, as the Perl importer did in effect (its
//     pattern did not match and the insert failed), though the format
//     document allows it.
//   - A 48 or 64 digit aesKey (AES-192/256, allowed by the format document) is
//     rejected: the KSM decrypts with AES-128 only and stores 32 digits.
//   - Fields the Perl importer ignored are checked: a ninth field, a
//     progflags that is not a number, a created value too long for its column.
//   - A public name that appears twice in one file is an error naming both
//     lines.
//   - Parse reports every malformed line (up to MaxErrors) in one error, so a
//     file can be fixed in one pass, and returns no keys at all when there is
//     any error.
//
// Key files hold AES keys in the clear: never log a Record or a parsed line.
package keyprov

import (
	"errors"
	"strconv"
	"strings"

	"github.com/ykstack/ykstack/ksm"
)

// Magic is the first line ykksm-gen-keys writes (without its newline). The
// format document requires it, but neither ykksm-export nor the document's
// own sample write it, so readers do not require it.
const Magic = "# ykksm 1"

// Columns is the comment line ykksm-gen-keys writes after Magic.
const Columns = "# serialnr,identity,internaluid,aeskey,lockpw,created,accessed[,progflags]"

// MaxCreatedLen is the width of the yubikeys.created column.
const MaxCreatedLen = 24

// Record is one data line of a key file.
type Record struct {
	Line      int     // 1-based line number in the file
	Key       ksm.Key // Creator is empty; Active and Hardware are true
	Accessed  string  // parsed but not stored by the KSM
	ProgFlags *int    // personalization flags; nil when the line has none
}

// String formats r as a data line, without a newline. It contains the AES key.
func (r Record) String() string { return FormatLine(r.Key, r.Accessed, r.ProgFlags) }

// ErrSyntax is wrapped by every error about a malformed key file.
var ErrSyntax = errors.New("keyprov: malformed key file")

// LineError reports a malformed line, or one malformed field of a line.
type LineError struct {
	Line  int    // 1-based line number
	Field string // "serialNr", "publicName", …; empty when the line as a whole is wrong
	Msg   string
}

func (e *LineError) Error() string {
	var b strings.Builder
	b.WriteString("keyprov: line ")
	b.WriteString(strconv.Itoa(e.Line))
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns ErrSyntax.
func (e *LineError) Unwrap() error { return ErrSyntax }

// Keys returns the keys of recs, in order.
func Keys(recs []Record) []ksm.Key {
	keys := make([]ksm.Key, len(recs))
	for i, r := range recs {
		keys[i] = r.Key
	}
	return keys
}
