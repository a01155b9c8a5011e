package valcsv

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// ciClient is the client line Yubico's CI imports with ykval-import-clients.
const ciClient = "1,1,1383728711,EHmo8FMxuhumBlTinC4uYL0Mgwg=,,,"

func TestFormatKey(t *testing.T) {
	tests := []struct {
		k    val.KeyState
		want string
	}{
		{val.KeyState{Active: true, Created: 1359470658, Modified: 1359470658, PublicName: "cccccccccccb", Counter: 2, Use: 1, Low: 32729, High: 4, Nonce: "aoincuhfuahs"},
			"1,1359470658,1359470658,cccccccccccb,2,1,32729,4,aoincuhfuahs,"},
		{val.KeyState{Active: false, Created: 1, Modified: -1, PublicName: "idkfefrdhtru", Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "0000000000000000", Notes: "lost"},
			"0,1,-1,idkfefrdhtru,-1,-1,-1,-1,0000000000000000,lost"},
		{val.KeyState{PublicName: "cccccccccccd", Nonce: `say "hi"`, Notes: "a, b"},
			`0,0,0,cccccccccccd,0,0,0,0,"say ""hi""","a, b"`},
	}
	for _, tt := range tests {
		if got := FormatKey(tt.k); got != tt.want {
			t.Errorf("FormatKey(%+v) = %q, want %q", tt.k, got, tt.want)
		}
	}
}

func TestFormatClient(t *testing.T) {
	tests := []struct {
		c    val.Client
		want string
	}{
		{val.Client{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="}, ciClient},
		{val.Client{ID: 1, Active: true, Created: 1359550387, Secret: "foobar", Email: "user@example.com", OTP: "cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt"},
			"1,1,1359550387,foobar,user@example.com,,cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt"},
		{val.Client{ID: 22, Active: false, Created: 0, Secret: "s", Notes: "line\nbreak"}, "22,0,0,s,,\"line\nbreak\","},
	}
	for _, tt := range tests {
		if got := FormatClient(tt.c); got != tt.want {
			t.Errorf("FormatClient(%+v) = %q, want %q", tt.c, got, tt.want)
		}
	}
}

func TestChecksumLines(t *testing.T) {
	if got, want := ClientChecksumLine(val.Client{ID: 12, Active: false, Secret: "c2VjcmV0"}), "12\t0\tc2VjcmV0\n"; got != want {
		t.Errorf("ClientChecksumLine = %q, want %q", got, want)
	}
	if got, want := KeyChecksumLine(val.KeyState{PublicName: "cccccccccccb", Counter: -1, Use: 7}), "cccccccccccb\t-1\t7\n"; got != want {
		t.Errorf("KeyChecksumLine = %q, want %q", got, want)
	}
}

func TestReadKeys(t *testing.T) {
	tests := []struct {
		in   string
		want []val.KeyState
	}{
		{"", nil},
		{"\n\n# comment, with \"quotes\"\n", nil},
		{"1,1359470658,1359470658,cccccccccccb,2,1,32729,4,aoincuhfuahs\n", // Yubico's documented example: 9 fields
			[]val.KeyState{{Active: true, Created: 1359470658, Modified: 1359470658, PublicName: "cccccccccccb", Counter: 2, Use: 1, Low: 32729, High: 4, Nonce: "aoincuhfuahs"}}},
		{"0,1,-1,idkfefrdhtru,-1,-1,-1,-1,0000000000000000,lost\r\n\r\n\"#x\",skipped\n1,2,3,cccccccccccd,4,5,6,7,\"a\"\"b\",\"c,d\"", []val.KeyState{
			{Active: false, Created: 1, Modified: -1, PublicName: "idkfefrdhtru", Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "0000000000000000", Notes: "lost"},
			{Active: true, Created: 2, Modified: 3, PublicName: "cccccccccccd", Counter: 4, Use: 5, Low: 6, High: 7, Nonce: `a"b`, Notes: "c,d"},
		}},
		{"true, 5 ,6,cccccccccccb,1,2,3,4,n,x\n", []val.KeyState{{Active: true, Created: 5, Modified: 6, PublicName: "cccccccccccb", Counter: 1, Use: 2, Low: 3, High: 4, Nonce: "n", Notes: "x"}}},
	}
	for _, tt := range tests {
		got, err := ReadKeys(strings.NewReader(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ReadKeys(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestReadKeysErrors(t *testing.T) {
	good := "1,1,1,cccccccccccb,1,1,1,1,n,x\n"
	tests := []struct {
		in       string
		wantLine int
		wantText string
	}{
		{"1,1,1,cccccccccccb,1,1,1,1\n", 1, "8 fields"},
		{good + "1,1,1,cccccccccccb,1,1,1,1,n,x,extra\n", 2, "11 fields"},
		{good + "\n" + "2,1,1,cccccccccccb,1,1,1,1,n,x\n", 3, `active "2"`},
		{"1,1,1,cccccccccccb,abc,1,1,1,n,x\n", 1, `yk_counter "abc": not a decimal integer`},
		{"1,1,1,cccccccccccb,1,1,0x10,1,n,x\n", 1, "yk_low"},
		{"1,2147483648,1,cccccccccccb,1,1,1,1,n,x\n", 1, "created \"2147483648\": out of range"},
		{"1,1,1,,1,1,1,1,n,x\n", 1, "yk_publicname \"\": empty"},
		{"1,1,1,ccccccccccccccccc,1,1,1,1,n,x\n", 1, "longer than 16"},
		{"1,1,1,cccc cccc,1,1,1,1,n,x\n", 1, "not printable ASCII"},
		{"1,1,1,cccccccccccb,1,1,1,1," + strings.Repeat("n", 41) + ",x\n", 1, "nonce"},
		{"1,1,1,cccccccccccb,1,1,1,1,n," + strings.Repeat("x", 101) + "\n", 1, "notes"},
		{"1,1,1,cccccccccccb,1,1,1,1,n,\"a\nb\"\n", 1, "control character"},
		{"1,1,1,cccccccccccb,1,1,1,1,n,\xff\n", 1, "not UTF-8"},
		{good + good + "1,1,1,cccccccccccb,1,1,1,1,n,\"unterminated\n", 3, "malformed"},
	}
	for _, tt := range tests {
		got, err := ReadKeys(strings.NewReader(tt.in))
		var le *LineError
		if !errors.As(err, &le) || !errors.Is(err, ErrSyntax) {
			t.Errorf("ReadKeys(%q) = %+v, %v; want a *LineError wrapping ErrSyntax", tt.in, got, err)
			continue
		}
		if le.Line != tt.wantLine || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("ReadKeys(%q) error = %q (line %d), want line %d mentioning %q", tt.in, err, le.Line, tt.wantLine, tt.wantText)
		}
		if got != nil {
			t.Errorf("ReadKeys(%q) returned keys with its error", tt.in)
		}
	}
}

func TestReadClients(t *testing.T) {
	tests := []struct {
		in   string
		want []val.Client
	}{
		{ciClient + "\n", []val.Client{{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="}}},
		{"# id,active,created,secret,email,notes,otp\n1,1,1359550387,foobar,user@example.com,,cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt\n2,0,5,s\n", []val.Client{
			{ID: 1, Active: true, Created: 1359550387, Secret: "foobar", Email: "user@example.com", OTP: "cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt"},
			{ID: 2, Active: false, Created: 5, Secret: "s"},
		}},
	}
	for _, tt := range tests {
		got, err := ReadClients(strings.NewReader(tt.in))
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ReadClients(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestReadClientsErrors(t *testing.T) {
	tests := []struct {
		in       string
		wantLine int
		wantText string
	}{
		{"1,1,1\n", 1, "3 fields"},
		{ciClient + "\n" + ciClient + ",x\n", 2, "8 fields"},
		{"x,1,1,s,,,\n", 1, `id "x"`},
		{"-1,1,1,s,,,\n", 1, `id "-1": negative`},
		{"1,yes,1,s,,,\n", 1, "active"},
		{"1,1,1," + strings.Repeat("s", 61) + ",,,\n", 1, "secret"},
		{"1,1,1,s," + strings.Repeat("e", 256) + ",,\n", 1, "email"},
		{"1,1,1,s,,,\t\n", 1, "otp"},
	}
	for _, tt := range tests {
		_, err := ReadClients(strings.NewReader(tt.in))
		var le *LineError
		if !errors.As(err, &le) || !errors.Is(err, ErrSyntax) || le.Line != tt.wantLine || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("ReadClients(%q) error = %v, want a *LineError for line %d mentioning %q", tt.in, err, tt.wantLine, tt.wantText)
		}
	}
}

// seeds are the inputs of the table tests, for the fuzz targets.
var seeds = []string{
	"", ciClient, "\n# c\n", "1,1359470658,1359470658,cccccccccccb,2,1,32729,4,aoincuhfuahs\n",
	"0,1,-1,idkfefrdhtru,-1,-1,-1,-1,0000000000000000,lost\r\n\"#x\",y\n1,2,3,cccccccccccd,4,5,6,7,\"a\"\"b\",\"c,d\"",
	"1,1,1,cccccccccccb,1,1,1,1,n,\"unterminated\n", "2,0,5,s\n", "1,1,1,s,,,\t\n", "true, 5 ,6,cccccccccccb,1,2,3,4,n,x\n",
}

// FuzzReadKeys checks that ReadKeys never panics and that what it accepts
// survives FormatKey and ReadKeys unchanged.
func FuzzReadKeys(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		keys, err := ReadKeys(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ReadKeys(%q) error %v does not wrap ErrSyntax", in, err)
			}
			return
		}
		var b strings.Builder
		for _, k := range keys {
			b.WriteString(FormatKey(k) + "\n")
		}
		again, err := ReadKeys(strings.NewReader(b.String()))
		if err != nil || !reflect.DeepEqual(again, keys) {
			t.Fatalf("ReadKeys(FormatKey(%+v)) = %+v, %v", keys, again, err)
		}
	})
}

// FuzzReadClients is FuzzReadKeys for client lines.
func FuzzReadClients(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		clients, err := ReadClients(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, ErrSyntax) {
				t.Fatalf("ReadClients(%q) error %v does not wrap ErrSyntax", in, err)
			}
			return
		}
		var b strings.Builder
		for _, c := range clients {
			b.WriteString(FormatClient(c) + "\n")
		}
		again, err := ReadClients(strings.NewReader(b.String()))
		if err != nil || !reflect.DeepEqual(again, clients) {
			t.Fatalf("ReadClients(FormatClient(%+v)) = %+v, %v", clients, again, err)
		}
	})
}
