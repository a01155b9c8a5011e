package keyprov

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/otp/modhex"
)

// MaxErrors is how many errors Parse lists before it only counts the rest.
const MaxErrors = 20

// MaxLineLen is the longest line a Reader accepts, in bytes. A valid data
// line is under 200 bytes; the limit only guards against reading a binary
// file (say, an OpenPGP message that was not decrypted) as one huge line.
const MaxLineLen = 64 << 10

// Parse reads a whole key file. It returns its data lines in file order, or,
// when any line is malformed, no records and an error that lists every
// malformed line (up to MaxErrors, then a count of the rest). Each listed
// error is a *LineError; all wrap ErrSyntax. Errors reading r are returned
// as they are.
func Parse(r io.Reader) ([]Record, error) {
	pr := NewReader(r)
	var (
		recs    []Record
		errs    []error
		dropped int
	)
	for {
		rec, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(err, ErrSyntax) { // a read error ends the file
				return nil, err
			}
			for _, e := range flatten(err) {
				if len(errs) < MaxErrors {
					errs = append(errs, e)
				} else {
					dropped++
				}
			}
			continue
		}
		recs = append(recs, rec)
	}
	if dropped > 0 {
		errs = append(errs, fmt.Errorf("%w: %d more errors not shown", ErrSyntax, dropped))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return recs, nil
}

// flatten lists the errors joined in err, or err alone.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// A Reader reads the data lines of a key file one at a time.
type Reader struct {
	sc   *bufio.Scanner
	line int
	seen map[string]int // public name -> line it first appeared on
	done error
}

// NewReader returns a Reader on r.
func NewReader(r io.Reader) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLineLen)
	return &Reader{sc: sc, seen: make(map[string]int)}
}

// Line returns the number of lines read so far: after Next returns a record
// or a syntax error, the number of the line it was about; after io.EOF, the
// number of lines in the file.
func (r *Reader) Line() int { return r.line }

// Next returns the next data line, skipping comments and blank lines. It
// returns io.EOF after the last one. A malformed line gives an error wrapping
// ErrSyntax, joining one *LineError per wrong field; Next may then be called
// again to go on with the following line, except after a line longer than
// MaxLineLen or an error reading the underlying reader, which end the file.
func (r *Reader) Next() (Record, error) {
	if r.done != nil {
		return Record{}, r.done
	}
	for r.sc.Scan() {
		r.line++
		text := r.sc.Text()
		if r.line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		text = strings.TrimSuffix(text, "\r")
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimRight(text, " \t\r")
		if text == "" {
			continue
		}
		rec, err := parseLine(r.line, text)
		if err != nil {
			return Record{}, err
		}
		if first, dup := r.seen[rec.Key.PublicName]; dup {
			return Record{}, &LineError{Line: r.line, Field: "publicName",
				Msg: fmt.Sprintf("%q already appears on line %d", rec.Key.PublicName, first)}
		}
		r.seen[rec.Key.PublicName] = r.line
		return rec, nil
	}
	switch err := r.sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		r.done = io.EOF // the scanner cannot go on past it
		return Record{}, &LineError{Line: r.line + 1,
			Msg: fmt.Sprintf("longer than %d bytes (not a decrypted key file?)", MaxLineLen)}
	case err != nil:
		r.done = fmt.Errorf("keyprov: read: %w", err)
	default:
		r.done = io.EOF
	}
	return Record{}, r.done
}

// parseLine parses one data line with its comment and trailing blanks removed.
func parseLine(n int, text string) (Record, error) {
	f := strings.Split(text, ",")
	if len(f) < 7 || len(f) > 8 {
		return Record{}, &LineError{Line: n,
			Msg: fmt.Sprintf("want 7 or 8 comma-separated fields (serialNr,publicName,internalName,aesKey,lockCode,created,accessed[,progflags]), have %d", len(f))}
	}
	var errs []error
	fail := func(field, msg string) { errs = append(errs, &LineError{Line: n, Field: field, Msg: msg}) }
	rec := Record{Line: n, Key: ksm.Key{Active: true, Hardware: true}}
	k := &rec.Key

	if v, ok := parseUint31(f[0]); ok {
		k.SerialNr = int64(v)
	} else {
		fail("serialNr", "want a decimal number from 0 to 2147483647, have "+quote(f[0]))
	}

	switch pub, ok := lowerDigits(f[1]); {
	case f[1] == "":
		fail("publicName", "empty; a key without a public ID cannot be imported")
	case len(f[1]) > 16:
		fail("publicName", fmt.Sprintf("want 1 to 16 modhex characters, have %d", len(f[1])))
	case !ok || !modhex.Valid(pub):
		fail("publicName", "want modhex characters (cbdefghijklnrtuv), have "+quote(f[1]))
	default:
		k.PublicName = pub
	}

	if uid, ok := hexField(f[2], 12); ok {
		k.InternalName = uid
	} else {
		fail("internalName", "want 12 hex digits, have "+describe(f[2]))
	}

	if key, ok := hexField(f[3], 32); ok {
		k.AESKey = key
	} else if (len(f[3]) == 48 || len(f[3]) == 64) && isHex(f[3]) {
		fail("aesKey", fmt.Sprintf("%d hex digits is an AES-%d key; the KSM supports AES-128 only (32 hex digits)", len(f[3]), len(f[3])*4))
	} else {
		fail("aesKey", "want 32 hex digits, have "+describe(f[3])) // never echo key material
	}

	if lock, ok := hexField(f[4], 12); ok || f[4] == "" {
		k.LockCode = lock
	} else {
		fail("lockCode", "want 12 hex digits or nothing, have "+describe(f[4]))
	}

	// Spaces are part of the timestamp grammar; at either end they carry no
	// meaning and would not survive a round trip at the end of a line.
	f[5], f[6] = strings.Trim(f[5], " "), strings.Trim(f[6], " ")
	switch {
	case !isTimestamp(f[5]):
		fail("created", "want a time like 2009-02-24T17:41:57 (characters T:0-9 space -), have "+quote(f[5]))
	case len(f[5]) > MaxCreatedLen:
		fail("created", fmt.Sprintf("at most %d characters, have %d", MaxCreatedLen, len(f[5])))
	default:
		k.Created = f[5]
	}

	if isTimestamp(f[6]) {
		rec.Accessed = f[6]
	} else {
		fail("accessed", "want a time like 2009-02-24T17:41:57 (characters T:0-9 space -), have "+quote(f[6]))
	}

	if len(f) == 8 && f[7] != "" {
		if v, ok := parseUint31(f[7]); ok {
			pf := int(v)
			rec.ProgFlags = &pf
		} else {
			fail("progflags", "want a decimal number from 0 to 2147483647, have "+quote(f[7]))
		}
	}

	if len(errs) > 0 {
		return Record{}, errors.Join(errs...)
	}
	return rec, nil
}

// parseUint31 parses s as decimal digits only (no sign, no blanks) in int32 range.
func parseUint31(s string) (uint32, bool) {
	if s == "" || len(s) > 20 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseUint(s, 10, 31)
	return uint32(v), err == nil
}

// hexField returns s in lower case if it is exactly n hex digits.
func hexField(s string, n int) (string, bool) {
	if len(s) != n || !isHex(s) {
		return "", false
	}
	low, _ := lowerDigits(s)
	return low, true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// lowerDigits lower-cases ASCII letters; it reports false for any byte that
// is not an ASCII letter or digit (so no Unicode case folding sneaks in).
func lowerDigits(s string) (string, bool) {
	b := []byte(s)
	for i, c := range b {
		switch {
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		default:
			return s, false
		}
	}
	return string(b), true
}

func isTimestamp(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || c == 'T' || c == ':' || c == ' ' || c == '-') {
			return false
		}
	}
	return true
}

// quote shows a field's text in an error, shortened when long.
func quote(s string) string {
	if len(s) > 40 {
		return strconv.Quote(s[:40]) + "…"
	}
	return strconv.Quote(s)
}

// describe tells what is wrong with a hex field without echoing it: these
// fields are secrets, and error messages end up in logs.
func describe(s string) string {
	switch {
	case s == "":
		return "nothing"
	case !isHex(s):
		return fmt.Sprintf("%d characters, not all hex digits", len(s))
	default:
		return fmt.Sprintf("%d hex digits", len(s))
	}
}
