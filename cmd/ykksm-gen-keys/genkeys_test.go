package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/otp"
)

// counting is a deterministic stand-in for crypto/rand: bytes 0, 1, 2, …
type counting struct{ n byte }

func (c *counting) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = c.n
		c.n++
	}
	return len(p), nil
}

func intp(n int) *int { return &n }

// golden compares got with testdata/name; YKSTACK_GOLDEN_UPDATE=1 rewrites the file.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if os.Getenv("YKSTACK_GOLDEN_UPDATE") != "" {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with YKSTACK_GOLDEN_UPDATE=1 to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func TestParseArgs(t *testing.T) {
	tests := []struct {
		args []string
		want options
	}{
		{[]string{"1"}, options{device: "/dev/random", start: 1, end: 1}},
		{[]string{"1", "0"}, options{device: "/dev/random", start: 1, end: 1}},
		{[]string{"0"}, options{device: "/dev/random", start: 0, end: 0}},
		{[]string{"1", "10", "--urandom"}, options{device: "/dev/urandom", start: 1, end: 10}},
		{[]string{"-v", "5", "--progflags", "4711", "6"}, options{verbose: true, device: "/dev/random", progflags: intp(4711), start: 5, end: 6}},
		{[]string{"--verbose", "--progflags=0", "007"}, options{verbose: true, device: "/dev/random", progflags: intp(0), start: 7, end: 7}},
		{[]string{"--pskc", "2147483647"}, options{pskc: true, device: "/dev/random", start: 2147483647, end: 2147483647}},
	}
	for _, tt := range tests {
		got, err := parseArgs(tt.args)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseArgs(%q) = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestParseArgsErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // error text; "" means pflag.ErrHelp
	}{
		{[]string{"--help", "1"}, ""},
		{[]string{"-h"}, ""},
		{nil, "usage error: missing START (see --help)"},
		{[]string{"-v"}, "usage error: missing START (see --help)"},
		{[]string{"3", "1"}, "usage error: START 3 is greater than END 1"},
		{[]string{"1", "2", "3"}, `usage error: extra argument "3" (want START [END])`},
		{[]string{"one"}, `usage error: START: want a decimal serial number from 0 to 2147483647, have "one"`},
		{[]string{"10abc"}, `usage error: START: want a decimal serial number from 0 to 2147483647, have "10abc"`},
		{[]string{"1", "2147483648"}, `usage error: END: want a decimal serial number from 0 to 2147483647, have "2147483648"`},
		{[]string{"--progflags", "x", "1"}, `usage error: --progflags: want a decimal number from 0 to 2147483647, have "x"`},
		{[]string{"--progflags", "1", "--pskc", "1"}, "usage error: --progflags cannot be used with --pskc"},
		{[]string{"--progflags"}, "usage error: flag needs an argument: --progflags (see --help)"},
		{[]string{"--random", "1"}, "usage error: unknown flag: --random (see --help)"},
	}
	for _, tt := range tests {
		_, err := parseArgs(tt.args)
		if tt.want == "" {
			if err != pflag.ErrHelp {
				t.Errorf("parseArgs(%q) error = %v, want pflag.ErrHelp", tt.args, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.want || !errors.Is(err, cli.ErrUsage) {
			t.Errorf("parseArgs(%q) error = %v, want %q wrapping cli.ErrUsage", tt.args, err, tt.want)
		}
	}
}

func TestGenerateGolden(t *testing.T) {
	now := time.Date(2009, 12, 14, 16, 40, 57, 0, time.UTC)
	tests := []struct {
		file string
		opts options
	}{
		{"plain.golden", options{device: "/dev/urandom", start: 1, end: 5}},
		{"verbose-progflags.golden", options{verbose: true, device: "/dev/random", progflags: intp(4711), start: 4711, end: 4713}},
		{"pskc-one.golden", options{pskc: true, device: "/dev/random", start: 4711, end: 4711}},
		{"pskc-range.golden", options{pskc: true, device: "/dev/random", start: 1, end: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			var b bytes.Buffer
			if err := generate(&b, tt.opts, now, &counting{}); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.file, b.Bytes())
		})
	}
}

func TestPublicID(t *testing.T) {
	tests := []struct {
		serial      int64
		hex, modhex string
	}{
		{0, "000000000000", "cccccccccccc"},
		{1, "000000000001", "cccccccccccb"},
		{5, "000000000005", "cccccccccccg"},
		{4711, "000000001267", "ccccccccbdhi"},
		{2147483647, "00007fffffff", "ccccivvvvvvv"},
	}
	for _, tt := range tests {
		if h, m := publicID(tt.serial); h != tt.hex || m != tt.modhex {
			t.Errorf("publicID(%d) = %q, %q; want %q, %q", tt.serial, h, m, tt.hex, tt.modhex)
		}
	}
}

// runCmd runs the command as main would and returns stdout, stderr and the exit code.
func runCmd(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }})
	code := cli.Report("ykksm-gen-keys", &stderr, err)
	return stdout.String(), stderr.String(), code
}

// TestRunShape checks the real command's output (real clock, real
// randomness) against the golden shape with the random and time fields masked.
func TestRunShape(t *testing.T) {
	out, stderr, code := runCmd(t, "1", "3", "--urandom", "-v")
	if code != 0 || stderr != "" {
		t.Fatalf("ykksm-gen-keys 1 3 --urandom -v: exit %d, stderr %q", code, stderr)
	}
	mask := regexp.MustCompile(`,[0-9a-f]{12},[0-9a-f]{32},[0-9a-f]{12},\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,`)
	got := mask.ReplaceAllString(out, ",UID,AESKEY,LOCKCODE,CREATED,")
	golden(t, "run-masked.golden", []byte(got))
}

func TestRunHelpAndErrors(t *testing.T) {
	out, stderr, code := runCmd(t, "--help")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykksm-gen-keys ") || stderr != "" {
		t.Errorf("--help: exit %d, stdout %q, stderr %q; want 0, the usage, nothing", code, out, stderr)
	}
	out, stderr, code = runCmd(t)
	if code != 2 || out != "" || stderr != "ykksm-gen-keys: usage error: missing START (see --help)\n" {
		t.Errorf("no arguments: exit %d, stdout %q, stderr %q; want 2, nothing, the error", code, out, stderr)
	}
}

// TestGeneratedKeysWork checks that the real command's keys parse as a key
// file and decrypt OTPs minted with them.
func TestGeneratedKeysWork(t *testing.T) {
	for _, args := range [][]string{{"1", "20"}, {"-v", "--progflags", "4711", "100", "105"}} {
		out, stderr, code := runCmd(t, args...)
		if code != 0 {
			t.Fatalf("ykksm-gen-keys %q: exit %d, %s", args, code, stderr)
		}
		recs, err := keyprov.Parse(strings.NewReader(out))
		if err != nil {
			t.Fatalf("keyprov.Parse(ykksm-gen-keys %q) error: %v", args, err)
		}
		if len(recs) == 0 {
			t.Fatalf("ykksm-gen-keys %q made no keys", args)
		}
		aesKeys := map[string]bool{}
		for i, r := range recs {
			k := r.Key
			if want := recs[0].Key.SerialNr + int64(i); k.SerialNr != want {
				t.Errorf("key %d: serial %d, want %d", i, k.SerialNr, want)
			}
			if _, pub := publicID(k.SerialNr); k.PublicName != pub {
				t.Errorf("serial %d: public name %q, want %q", k.SerialNr, k.PublicName, pub)
			}
			if len(args) > 2 && (r.ProgFlags == nil || *r.ProgFlags != 4711) {
				t.Errorf("serial %d: progflags %v, want 4711", k.SerialNr, r.ProgFlags)
			}
			if aesKeys[k.AESKey] {
				t.Errorf("serial %d: AES key repeats", k.SerialNr)
			}
			aesKeys[k.AESKey] = true
			key, err := otp.ParseKey(k.AESKey)
			if err != nil {
				t.Fatal(err)
			}
			uid, err := otp.ParseUID(k.InternalName)
			if err != nil {
				t.Fatal(err)
			}
			tok := otp.Token{UID: uid, Counter: uint16(i + 1), TimestampLow: 0x1234, TimestampHigh: 0x56, Use: 7, Random: 0xbeef}
			pub, token, err := otp.Split(otp.Generate(k.PublicName, key, tok))
			if err != nil || pub != k.PublicName {
				t.Fatalf("Split(Generate(…)) = %q, %v", pub, err)
			}
			got, err := otp.Decrypt(key, uid, token)
			if err != nil || got.Counter != tok.Counter || got.Use != tok.Use || got.Timestamp() != tok.Timestamp() {
				t.Errorf("serial %d: Decrypt = %+v, %v; want counters of %+v", k.SerialNr, got, err, tok)
			}
		}
	}
}

// pskcContainer is the part of a PSKC document the test reads back.
type pskcContainer struct {
	XMLName  xml.Name `xml:"urn:ietf:params:xml:ns:keyprov:pskc KeyContainer"`
	Version  string   `xml:"Version,attr"`
	ID       string   `xml:"Id,attr"`
	Packages []struct {
		Manufacturer string `xml:"DeviceInfo>Manufacturer"`
		SerialNo     string `xml:"DeviceInfo>SerialNo"`
		StartDate    string `xml:"DeviceInfo>StartDate"`
		ModuleID     string `xml:"CryptoModuleInfo>Id"`
		Key          struct {
			ID        string `xml:"Id,attr"`
			Algorithm string `xml:"Algorithm,attr"`
			Issuer    string `xml:"Issuer"`
			Format    struct {
				Encoding string `xml:"Encoding,attr"`
				Length   string `xml:"Length,attr"`
			} `xml:"AlgorithmParameters>ResponseFormat"`
			Secret string `xml:"Data>Secret>PlainValue"`
			UserID string `xml:"UserId"`
		} `xml:"Key"`
	} `xml:"KeyPackage"`
}

func TestPSKC(t *testing.T) {
	for _, tt := range []struct {
		args   []string
		id     string
		serial []string
	}{
		{[]string{"--pskc", "4711"}, "yk-4711-pskc", []string{"4711"}},
		{[]string{"1", "--pskc", "3", "-v"}, "yk-1-to-3-pskc", []string{"1", "2", "3"}},
	} {
		before := time.Now().UTC().Truncate(time.Second)
		out, stderr, code := runCmd(t, tt.args...)
		after := time.Now().UTC()
		if code != 0 {
			t.Fatalf("ykksm-gen-keys %q: exit %d, %s", tt.args, code, stderr)
		}
		var c pskcContainer
		if err := xml.Unmarshal([]byte(out), &c); err != nil {
			t.Fatalf("ykksm-gen-keys %q: XML: %v\n%s", tt.args, err, out)
		}
		if c.Version != "1.0" || c.ID != tt.id || len(c.Packages) != len(tt.serial) {
			t.Fatalf("ykksm-gen-keys %q: container %q %q with %d keys; want 1.0 %q with %d", tt.args, c.Version, c.ID, len(c.Packages), tt.id, len(tt.serial))
		}
		userID := regexp.MustCompile(`^CN=([cbdefghijklnrtuv]{12}), UID=([0-9a-f]{12})$`)
		for i, p := range c.Packages {
			k := p.Key
			if p.Manufacturer != "oath.UB" || p.SerialNo != tt.serial[i] || p.ModuleID != "1" ||
				k.ID != "yk-key-"+tt.serial[i]+"-slot-1" || k.Algorithm != "http://www.yubico.com/#yubikey-aes" ||
				k.Issuer != "Yubico" || k.Format.Encoding != "ALPHANUMERIC" || k.Format.Length != "44" {
				t.Errorf("package %d = %+v", i, p)
			}
			start, err := time.Parse("2006-01-02T15:04:05Z", p.StartDate)
			if err != nil || start.Before(before) || start.After(after) {
				t.Errorf("package %d: StartDate %q, want the UTC time of the run (%v … %v)", i, p.StartDate, before, after)
			}
			aes, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k.Secret))
			if err != nil || len(aes) != 16 {
				t.Errorf("package %d: PlainValue %q is not a base64 AES-128 key: %v", i, k.Secret, err)
			}
			m := userID.FindStringSubmatch(k.UserID)
			if m == nil {
				t.Fatalf("package %d: UserId %q", i, k.UserID)
			}
			var serial int64
			for _, c := range p.SerialNo {
				serial = serial*10 + int64(c-'0')
			}
			if _, pub := publicID(serial); m[1] != pub {
				t.Errorf("package %d: CN=%s, want %s", i, m[1], pub)
			}
			if _, err := hex.DecodeString(m[2]); err != nil {
				t.Errorf("package %d: UID %q: %v", i, m[2], err)
			}
		}
	}
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestRunWriteError(t *testing.T) {
	err := run(context.Background(), cli.Env{Args: []string{"1", "1000"}, Stdout: failingWriter{}, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("run with a failing stdout = %v, want the write error", err)
	}
}
