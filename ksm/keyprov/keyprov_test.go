package keyprov

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/otp/modhex"
)

// The plain text of the format document's sample (spec §5.1).
const (
	line4711 = "4711,dlcfffckrcde,ca62baca62ba,ecde18dbe76fbd0c33330f1c354871db,be70aeca62ba,2009-01-22 00:25:11,"
	line4712 = "4712,,ca62baca62ba,ecde18dbe76fbd0c33330f1c354871db,be70aeca62ba,2009-01-22 00:25:11,2009-02-13 00:05:40"
	line4713 = "4713,dlcfffckrcdedlcf,ca62baca62ba,ecde18dbe76fbd0c33330f1c354871db,be70aeca62ba,2009-01-22 00:25:11,2009-02-13 00:05:40,0"
	line4714 = "4714,dlcfffckrcdedlcf,ca62baca62ba,ecde18dbe76fbd0c33330f1c354871db,be70aeca62ba,2009-01-22 00:25:11,2009-02-13 00:05:40,4711"
	// The ykksm-gen-keys documentation's output (spec §5.1).
	genKeys = "1,cccccccccccb,d74fbdf6a890,82211e0854e7369e83d941f24761a84e,881ae7bee927,2009-12-14T16:40:57,\n" +
		"2,cccccccccccd,7a5ad1886b70,3091a8048524ab8407ae816457d764e5,8e5ab609e346,2009-12-14T16:40:57,\n"
)

func intp(n int) *int { return &n }

func key(serial int64, pub, uid, aes, lock, created string) ksm.Key {
	return ksm.Key{SerialNr: serial, PublicName: pub, InternalName: uid, AESKey: aes, LockCode: lock,
		Created: created, Active: true, Hardware: true}
}

var (
	key4711 = key(4711, "dlcfffckrcde", "ca62baca62ba", "ecde18dbe76fbd0c33330f1c354871db", "be70aeca62ba", "2009-01-22 00:25:11")
	key4713 = key(4713, "dlcfffckrcdedlcf", "ca62baca62ba", "ecde18dbe76fbd0c33330f1c354871db", "be70aeca62ba", "2009-01-22 00:25:11")
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Record
	}{
		{"empty", "", nil},
		{"only comments", Magic + "\n" + Columns + "\n# the end\n", nil},
		{"doc sample", line4711 + "\n" + line4713 + "\n", []Record{
			{Line: 1, Key: key4711},
			{Line: 2, Key: key4713, Accessed: "2009-02-13 00:05:40", ProgFlags: intp(0)},
		}},
		{"progflags 4711", strings.Replace(line4714, "dlcfffckrcdedlcf", "dlcfffckrcdedlcc", 1), []Record{
			{Line: 1, Key: func() ksm.Key { k := key4713; k.SerialNr = 4714; k.PublicName = "dlcfffckrcdedlcc"; return k }(),
				Accessed: "2009-02-13 00:05:40", ProgFlags: intp(4711)},
		}},
		{"gen-keys output", Magic + "\n" + Columns + "\n" + genKeys + "# the end\n", []Record{
			{Line: 3, Key: key(1, "cccccccccccb", "d74fbdf6a890", "82211e0854e7369e83d941f24761a84e", "881ae7bee927", "2009-12-14T16:40:57")},
			{Line: 4, Key: key(2, "cccccccccccd", "7a5ad1886b70", "3091a8048524ab8407ae816457d764e5", "8e5ab609e346", "2009-12-14T16:40:57")},
		}},
		{"CRLF", Magic + "\r\n" + strings.ReplaceAll(genKeys, "\n", "\r\n"), []Record{
			{Line: 2, Key: key(1, "cccccccccccb", "d74fbdf6a890", "82211e0854e7369e83d941f24761a84e", "881ae7bee927", "2009-12-14T16:40:57")},
			{Line: 3, Key: key(2, "cccccccccccd", "7a5ad1886b70", "3091a8048524ab8407ae816457d764e5", "8e5ab609e346", "2009-12-14T16:40:57")},
		}},
		{"no final newline, BOM, blank lines, trailing comment",
			"\ufeff\n   \n\t\r\n" + line4711 + "  # first key\r\n\n" + line4713, []Record{
				{Line: 4, Key: key4711},
				{Line: 6, Key: key4713, Accessed: "2009-02-13 00:05:40", ProgFlags: intp(0)},
			}},
		{"upper case, leading zeros, empty lock, created, accessed, progflags",
			"007,CBDEFGHIJKLNRTUV,CA62BACA62BA,ECDE18DBE76FBD0C33330F1C354871DB,,,,", []Record{
				{Line: 1, Key: key(7, "cbdefghijklnrtuv", "ca62baca62ba", "ecde18dbe76fbd0c33330f1c354871db", "", "")},
			}},
		{"limits", "2147483647,c,000000000000,00000000000000000000000000000000,ffffffffffff,0000-00-00T00:00:00 ----,,2147483647", []Record{
			{Line: 1, Key: key(2147483647, "c", "000000000000", "00000000000000000000000000000000", "ffffffffffff", "0000-00-00T00:00:00 ----"), ProgFlags: intp(2147483647)},
		}},
		{"spaces around timestamps", "0,b,000000000000,00000000000000000000000000000000,, 2009-01-22 00:25:11 , ,", []Record{
			{Line: 1, Key: key(0, "b", "000000000000", "00000000000000000000000000000000", "", "2009-01-22 00:25:11")},
		}},
		{"CI key", "0,idkfefrdhtru,609963eae7b5,c68c9df8cbfe7d2f994cb904046c7218,,0,", []Record{
			{Line: 1, Key: key(0, "idkfefrdhtru", "609963eae7b5", "c68c9df8cbfe7d2f994cb904046c7218", "", "0")},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Parse(%q) =\n%s, %v\nwant\n%s", tt.in, dump(got), err, dump(tt.want))
			}
		})
	}
}

func dump(recs []Record) string {
	var b strings.Builder
	for _, r := range recs {
		pf := "nil"
		if r.ProgFlags != nil {
			pf = fmt.Sprint(*r.ProgFlags)
		}
		fmt.Fprintf(&b, "  line %d: %+v accessed=%q progflags=%s\n", r.Line, r.Key, r.Accessed, pf)
	}
	return b.String()
}

func TestParseErrors(t *testing.T) {
	const (
		uid  = "ca62baca62ba"
		aes  = "ecde18dbe76fbd0c33330f1c354871db"
		lock = "be70aeca62ba"
	)
	good := []string{"1", "cccccccccccb", uid, aes, lock, "2009-01-22T00:25:11", ""}
	with := func(i int, v string) string {
		f := append([]string(nil), good...)
		f[i] = v
		return strings.Join(f, ",")
	}
	tests := []struct {
		name string
		in   string
		want []string // every error line, in order
	}{
		{"empty publicName (doc sample 4712)", Magic + "\n" + line4712,
			[]string{"keyprov: line 2: publicName: empty; a key without a public ID cannot be imported"}},
		{"too few fields", "1,cccccccccccb,ca62baca62ba",
			[]string{"keyprov: line 1: want 7 or 8 comma-separated fields (serialNr,publicName,internalName,aesKey,lockCode,created,accessed[,progflags]), have 3"}},
		{"six fields", strings.Join(good[:6], ","), []string{"keyprov: line 1: want 7 or 8 comma-separated fields (serialNr,publicName,internalName,aesKey,lockCode,created,accessed[,progflags]), have 6"}},
		{"nine fields", strings.Join(good, ",") + ",1,2", []string{"keyprov: line 1: want 7 or 8 comma-separated fields (serialNr,publicName,internalName,aesKey,lockCode,created,accessed[,progflags]), have 9"}},
		{"serial empty", with(0, ""), []string{`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have ""`}},
		{"serial negative", with(0, "-1"), []string{`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have "-1"`}},
		{"serial plus", with(0, "+1"), []string{`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have "+1"`}},
		{"serial hex", with(0, "0x10"), []string{`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have "0x10"`}},
		{"serial too big", with(0, "2147483648"), []string{`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have "2147483648"`}},
		{"serial blank", with(0, " 1"), []string{`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have " 1"`}},
		{"publicName too long", with(1, "cccccccccccccccccc"), []string{"keyprov: line 1: publicName: want 1 to 16 modhex characters, have 18"}},
		{"publicName not modhex", with(1, "cccccccccccx"), []string{`keyprov: line 1: publicName: want modhex characters (cbdefghijklnrtuv), have "cccccccccccx"`}},
		{"publicName hex", with(1, "012345"), []string{`keyprov: line 1: publicName: want modhex characters (cbdefghijklnrtuv), have "012345"`}},
		{"publicName Kelvin sign", with(1, "\u212a"), []string{"keyprov: line 1: publicName: want modhex characters (cbdefghijklnrtuv), have \"\u212a\""}},
		{"internalName short", with(2, "ca62baca62b"), []string{"keyprov: line 1: internalName: want 12 hex digits, have 11 hex digits"}},
		{"internalName not hex", with(2, "ca62baca62bx"), []string{"keyprov: line 1: internalName: want 12 hex digits, have 12 characters, not all hex digits"}},
		{"internalName empty", with(2, ""), []string{"keyprov: line 1: internalName: want 12 hex digits, have nothing"}},
		{"aesKey short", with(3, aes[:30]), []string{"keyprov: line 1: aesKey: want 32 hex digits, have 30 hex digits"}},
		{"aesKey not hex", with(3, "g"+aes[1:]), []string{"keyprov: line 1: aesKey: want 32 hex digits, have 32 characters, not all hex digits"}},
		{"aesKey AES-192", with(3, aes+aes[:16]), []string{"keyprov: line 1: aesKey: 48 hex digits is an AES-192 key; the KSM supports AES-128 only (32 hex digits)"}},
		{"aesKey AES-256", with(3, aes+aes), []string{"keyprov: line 1: aesKey: 64 hex digits is an AES-256 key; the KSM supports AES-128 only (32 hex digits)"}},
		{"lockCode short", with(4, "be70"), []string{"keyprov: line 1: lockCode: want 12 hex digits or nothing, have 4 hex digits"}},
		{"lockCode not hex", with(4, "be70aeca62bz"), []string{"keyprov: line 1: lockCode: want 12 hex digits or nothing, have 12 characters, not all hex digits"}},
		{"created letters", with(5, "yesterday"), []string{`keyprov: line 1: created: want a time like 2009-02-24T17:41:57 (characters T:0-9 space -), have "yesterday"`}},
		{"created too long", with(5, "2009-01-22T00:25:11 00:00:00"), []string{"keyprov: line 1: created: at most 24 characters, have 28"}},
		{"accessed letters", with(6, "2009-01-22Z"), []string{`keyprov: line 1: accessed: want a time like 2009-02-24T17:41:57 (characters T:0-9 space -), have "2009-01-22Z"`}},
		{"progflags letters", strings.Join(good, ",") + ",ticket", []string{`keyprov: line 1: progflags: want a decimal number from 0 to 2147483647, have "ticket"`}},
		{"progflags negative", strings.Join(good, ",") + ",-4", []string{`keyprov: line 1: progflags: want a decimal number from 0 to 2147483647, have "-4"`}},
		{"every field wrong", "x,y,z,w,v,u,t,s", []string{
			`keyprov: line 1: serialNr: want a decimal number from 0 to 2147483647, have "x"`,
			`keyprov: line 1: publicName: want modhex characters (cbdefghijklnrtuv), have "y"`,
			"keyprov: line 1: internalName: want 12 hex digits, have 1 characters, not all hex digits",
			"keyprov: line 1: aesKey: want 32 hex digits, have 1 characters, not all hex digits",
			"keyprov: line 1: lockCode: want 12 hex digits or nothing, have 1 characters, not all hex digits",
			`keyprov: line 1: created: want a time like 2009-02-24T17:41:57 (characters T:0-9 space -), have "u"`,
			`keyprov: line 1: accessed: want a time like 2009-02-24T17:41:57 (characters T:0-9 space -), have "t"`,
			`keyprov: line 1: progflags: want a decimal number from 0 to 2147483647, have "s"`,
		}},
		{"duplicate publicName", genKeys + "# again\n" + strings.ToUpper(strings.SplitAfter(genKeys, "\n")[0]),
			[]string{`keyprov: line 4: publicName: "cccccccccccb" already appears on line 1`}},
		{"errors on several lines", line4711 + "\n" + line4712 + "\n\n" + with(0, "x") + "\n",
			[]string{
				"keyprov: line 2: publicName: empty; a key without a public ID cannot be imported",
				`keyprov: line 4: serialNr: want a decimal number from 0 to 2147483647, have "x"`,
			}},
		{"long line", line4711 + "\n" + strings.Repeat("1", MaxLineLen+1) + "\n" + line4712,
			[]string{"keyprov: line 2: longer than 65536 bytes (not a decrypted key file?)"}},
		{"binary", "\x85\x01\x0c\x03\xa2\x1f,\x00\n",
			[]string{"keyprov: line 1: want 7 or 8 comma-separated fields (serialNr,publicName,internalName,aesKey,lockCode,created,accessed[,progflags]), have 2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.NewReader(tt.in))
			if got != nil || err == nil || !errors.Is(err, ErrSyntax) {
				t.Fatalf("Parse(%q) = %d records, %v; want nil, an error wrapping ErrSyntax", tt.in, len(got), err)
			}
			if lines := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(lines, tt.want) {
				t.Errorf("Parse(%q) error =\n%s\nwant\n%s", tt.in, err, strings.Join(tt.want, "\n"))
			}
			var le *LineError
			if !errors.As(err, &le) || le.Line == 0 {
				t.Errorf("Parse(%q) error %v holds no *LineError with a line number", tt.in, err)
			}
		})
	}
}

func TestParseNeverEchoesSecrets(t *testing.T) {
	secret := "0123456789abcdef0123456789abcdeX"
	in := "1,cccccccccccb," + secret[:11] + "," + secret + "," + secret[:13] + ",,"
	_, err := Parse(strings.NewReader(in))
	if err == nil || strings.Contains(err.Error(), secret[:11]) {
		t.Errorf("Parse(%q) error = %v; want an error that does not contain the key material", in, err)
	}
}

func TestParseErrorCap(t *testing.T) {
	var b strings.Builder
	const bad = 50
	for i := range bad {
		fmt.Fprintf(&b, "%d,x,,,,,\n", i) // publicName, internalName and aesKey wrong: 3 errors a line
	}
	_, err := Parse(strings.NewReader(b.String()))
	lines := strings.Split(fmt.Sprint(err), "\n")
	if len(lines) != MaxErrors+1 {
		t.Fatalf("Parse(%d bad lines) gave %d error lines, want %d:\n%v", bad, len(lines), MaxErrors+1, err)
	}
	if want := fmt.Sprintf("keyprov: malformed key file: %d more errors not shown", 3*bad-MaxErrors); lines[MaxErrors] != want {
		t.Errorf("last error line = %q, want %q", lines[MaxErrors], want)
	}
	if !errors.Is(err, ErrSyntax) {
		t.Errorf("error %v does not wrap ErrSyntax", err)
	}
}

func TestParseReadError(t *testing.T) {
	boom := errors.New("boom")
	_, err := Parse(io.MultiReader(strings.NewReader(line4711+"\n"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || errors.Is(err, ErrSyntax) {
		t.Errorf("Parse(failing reader) error = %v, want one wrapping the read error and not ErrSyntax", err)
	}
}

func TestReader(t *testing.T) {
	in := Magic + "\n" + line4711 + "\n" + line4712 + "\n" + line4713 + "\n# the end\n"
	r := NewReader(strings.NewReader(in))
	var got []string
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		switch {
		case err != nil:
			got = append(got, fmt.Sprintf("%d: error %v", r.Line(), err))
		default:
			got = append(got, fmt.Sprintf("%d: serial %d", r.Line(), rec.Key.SerialNr))
		}
	}
	want := []string{
		"2: serial 4711",
		"3: error keyprov: line 3: publicName: empty; a key without a public ID cannot be imported",
		"4: serial 4713",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Reader.Next sequence =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.Line() != 5 {
		t.Errorf("Line() at EOF = %d, want 5", r.Line())
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next() after EOF = %v, want io.EOF", err)
	}
}

func TestFormatLine(t *testing.T) {
	k1 := key(1, "cccccccccccb", "d74fbdf6a890", "82211e0854e7369e83d941f24761a84e", "881ae7bee927", "2009-12-14T16:40:57")
	tests := []struct {
		k         ksm.Key
		accessed  string
		progflags *int
		want      string
	}{
		{k1, "", nil, strings.SplitN(genKeys, "\n", 2)[0]},
		{k1, "", intp(4711), "1,cccccccccccb,d74fbdf6a890,82211e0854e7369e83d941f24761a84e,881ae7bee927,2009-12-14T16:40:57,,4711"},
		{key4711, "", nil, line4711},
		{key4713, "2009-02-13 00:05:40", intp(0), line4713},
	}
	for _, tt := range tests {
		if got := FormatLine(tt.k, tt.accessed, tt.progflags); got != tt.want {
			t.Errorf("FormatLine(%+v, %q, %v) = %q, want %q", tt.k, tt.accessed, tt.progflags, got, tt.want)
		}
	}
	rec := Record{Key: key4713, Accessed: "2009-02-13 00:05:40", ProgFlags: intp(0)}
	if got := rec.String(); got != line4713 {
		t.Errorf("Record.String() = %q, want %q", got, line4713)
	}
	var b strings.Builder
	if err := WriteHeader(&b); err != nil || b.String() != "# ykksm 1\n" {
		t.Errorf("WriteHeader wrote %q, %v; want %q", b.String(), err, "# ykksm 1\n")
	}
	if got := Keys([]Record{{Key: key4711}, {Key: key4713}}); !reflect.DeepEqual(got, []ksm.Key{key4711, key4713}) {
		t.Errorf("Keys() = %+v", got)
	}
}

// checkRoundTrip is the property the fuzzer checks: whatever Parse accepts
// is well-formed, and formatting it and parsing again gives the same records.
func checkRoundTrip(t *testing.T, in string) {
	recs, err := Parse(strings.NewReader(in))
	if err != nil {
		if !errors.Is(err, ErrSyntax) || recs != nil {
			t.Fatalf("Parse(%q) = %d records, %v; want nil and a syntax error", in, len(recs), err)
		}
		return
	}
	var b strings.Builder
	WriteHeader(&b)
	seen := map[string]bool{}
	for _, r := range recs {
		k := r.Key
		if k.SerialNr < 0 || k.SerialNr > 1<<31-1 || k.PublicName == "" || len(k.PublicName) > 16 ||
			!modhex.Valid(k.PublicName) || seen[k.PublicName] || len(k.InternalName) != 12 || len(k.AESKey) != 32 ||
			strings.ToLower(k.InternalName+k.AESKey+k.LockCode) != k.InternalName+k.AESKey+k.LockCode ||
			len(k.Created) > MaxCreatedLen || !k.Active || !k.Hardware || k.Creator != "" {
			t.Fatalf("Parse(%q) accepted an invalid key %+v", in, k)
		}
		seen[k.PublicName] = true
		b.WriteString(r.String() + "\n")
	}
	again, err := Parse(strings.NewReader(b.String()))
	if err != nil || len(again) != len(recs) {
		t.Fatalf("Parse(FormatLine(Parse(%q))) = %d records, %v; want %d", in, len(again), err, len(recs))
	}
	for i := range recs {
		a, b := recs[i], again[i]
		if a.Key != b.Key || a.Accessed != b.Accessed || (a.ProgFlags == nil) != (b.ProgFlags == nil) ||
			a.ProgFlags != nil && *a.ProgFlags != *b.ProgFlags {
			t.Fatalf("round trip of %q changed record %d:\n%s\nto\n%s", in, i, dump(recs[i:i+1]), dump(again[i:i+1]))
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", Magic + "\n", line4711, line4712, line4713, line4714, genKeys,
		strings.ReplaceAll(genKeys, "\n", "\r\n"),
		"\ufeff" + line4711 + " # c\n\n" + line4713,
		"007,CBDEFGHIJKLNRTUV,CA62BACA62BA,ECDE18DBE76FBD0C33330F1C354871DB,,,,",
		"2147483647,c,000000000000,00000000000000000000000000000000,ffffffffffff,0000-00-00T00:00:00 ----,,2147483647",
		"x,y,z,w,v,u,t,s", "1,cccccccccccb,ca62baca62ba", genKeys + genKeys,
	} {
		f.Add(s)
	}
	f.Fuzz(checkRoundTrip)
}
