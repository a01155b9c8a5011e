package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
)

// The YK-KSM CI key (spec §5.1).
const (
	ciPub = "idkfefrdhtru"
	ciUID = "609963eae7b5"
	ciAES = "c68c9df8cbfe7d2f994cb904046c7218"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }})
	code := cli.Report("ykgenerate", &stderr, err)
	return stdout.String(), stderr.String(), code
}

// decrypt checks that out is one OTP line for the CI key and returns its token.
func decrypt(t *testing.T, out, wantPub string) otp.Token {
	t.Helper()
	line, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(line, "\n") {
		t.Fatalf("output %q is not one line", out)
	}
	pub, token, err := otp.Split(line)
	if err != nil || pub != wantPub {
		t.Fatalf("Split(%q) = %q, %v; want public ID %q", line, pub, err, wantPub)
	}
	key, _ := otp.ParseKey(ciAES)
	uid, _ := otp.ParseUID(ciUID)
	tok, err := otp.Decrypt(key, uid, token)
	if err != nil {
		t.Fatalf("Decrypt(%q) error: %v", line, err)
	}
	return tok
}

// TestPositionalVectors reproduces the OTPs of spec §5.1/§5.2 (random field
// bytes 47 54, i.e. RND 5447 as libyubikey's ykgenerate reads it).
func TestPositionalVectors(t *testing.T) {
	tests := []struct {
		counter, low, high, use string
		want                    string
	}{
		{"0001", "8d40", "0f", "00", "idkfefrdhtrutjduvtcjbfeuvhehdvjjlbchtlenfgku"},
		{"0001", "8d48", "0f", "01", "idkfefrdhtrubfjfdhrjhtkehrntiubuvnkgeieirkfb"},
		{"0001", "8D50", "0F", "02", "idkfefrdhtrurlfvluuihdhitjnriedgtfufejrlgbhu"},
		{"0002", "1234", "00", "00", "idkfefrdhtruvbfrdfdtrfencnvvhhernhujccbnveej"},
		{"8002", "0001", "01", "05", "idkfefrdhtrunrtedfbdbfdebgjvtfbrrcvbdghhkrhf"},
	}
	for _, tt := range tests {
		args := []string{ciAES, ciUID, tt.counter, tt.low, tt.high, tt.use, "5447"}
		out, stderr, code := runCmd(t, nil, append(args, "--public-id", ciPub)...)
		if code != 0 || out != tt.want+"\n" {
			t.Errorf("ykgenerate %q --public-id %s = %q (exit %d, %s), want %q", args, ciPub, out, code, stderr, tt.want)
		}
		out, _, _ = runCmd(t, nil, args...)
		if want := strings.TrimPrefix(tt.want, ciPub) + "\n"; out != want {
			t.Errorf("ykgenerate %q = %q, want %q", args, out, want)
		}
	}
}

func TestPositionalRandom(t *testing.T) {
	seen := map[string]bool{}
	for range 5 {
		out, stderr, code := runCmd(t, nil, strings.ToUpper(ciAES), ciUID, "7fff", "ffff", "ff", "ff")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		tok := decrypt(t, out, "")
		if tok.Counter != 0x7fff || tok.TimestampLow != 0xffff || tok.TimestampHigh != 0xff || tok.Use != 0xff {
			t.Errorf("ykgenerate … 7fff ffff ff ff decrypts to %+v", tok)
		}
		seen[out] = true
	}
	if len(seen) < 2 {
		t.Errorf("5 OTPs with a random field gave %d distinct OTPs", len(seen))
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "want AESKEY UID COUNTER LOW HIGH USE, or --public-id to look the key up (see --help)"},
		{[]string{ciAES, ciUID, "0001", "8d40", "0f"}, "want 6 or 7 arguments (AESKEY UID COUNTER LOW HIGH USE [RND]), have 5 (see --help)"},
		{[]string{ciAES, ciUID, "0001", "8d40", "0f", "00", "5447", "x"}, "want 6 or 7 arguments (AESKEY UID COUNTER LOW HIGH USE [RND]), have 8 (see --help)"},
		{[]string{ciAES[:30], ciUID, "0001", "8d40", "0f", "00"}, "AESKEY: want 32 hex digits"},
		{[]string{ciAES[:31] + "g", ciUID, "0001", "8d40", "0f", "00"}, "AESKEY: want 32 hex digits"},
		{[]string{ciAES, "60996", "0001", "8d40", "0f", "00"}, `UID: want 12 hex digits, have "60996"`},
		{[]string{ciAES, ciUID, "001", "8d40", "0f", "00"}, `COUNTER: want 4 hex digits, have "001"`},
		{[]string{ciAES, ciUID, "0001", "8d4g", "0f", "00"}, `LOW: want 4 hex digits, have "8d4g"`},
		{[]string{ciAES, ciUID, "0001", "8d40", "+f", "00"}, `HIGH: want 2 hex digits, have "+f"`},
		{[]string{ciAES, ciUID, "0001", "8d40", "0f", "100"}, `USE: want 2 hex digits, have "100"`},
		{[]string{ciAES, ciUID, "0001", "8d40", "0f", "00", "0x47"}, `RND: want 4 hex digits, have "0x47"`},
		{[]string{ciAES, ciUID, "0001", "8d40", "0f", "00", "--counter", "2"}, "--counter goes with the database form, not with AESKEY UID … (see --help)"},
		{[]string{ciAES, ciUID, "0001", "8d40", "0f", "00", "--db", "x.db"}, "--db goes with the database form, not with AESKEY UID … (see --help)"},
		{[]string{"--public-id", "abc"}, `--public-id: want up to 16 modhex characters (cbdefghijklnrtuv), have "abc"`},
		{[]string{"--public-id", "ccccccccccccccccc"}, `--public-id: want up to 16 modhex characters (cbdefghijklnrtuv), have "ccccccccccccccccc"`},
		{[]string{"--public-id", ciPub, "--counter", "65536"}, "--counter: want at most 65535, have 65536"},
		{[]string{"--public-id", ciPub, "--use", "256"}, "--use: want at most 255, have 256"},
		{[]string{"--public-id", ciPub, "--timestamp", "16777216"}, "--timestamp: want at most 16777215, have 16777216"},
		{[]string{"--public-id", ciPub, "--random", "65536"}, "--random: want at most 65535, have 65536"},
		{[]string{"--public-id", ciPub, "--use", "-1"}, `invalid argument "-1" for "--use" flag: strconv.ParseUint: parsing "-1": invalid syntax (see --help)`},
		{[]string{"--public-id", ciPub, "--db", "dbi:Pg:dbname=ykksm"}, ""},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, tt.args...)
		want := "ykgenerate: usage error: " + tt.want + "\n"
		if code != 2 || out != "" || (tt.want != "" && stderr != want) {
			t.Errorf("ykgenerate %q: exit %d, stdout %q, stderr %q; want 2, nothing, %q", tt.args, code, out, stderr, want)
		}
	}
	out, _, code := runCmd(t, nil, "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykgenerate") || !strings.Contains(out, "--public-id") {
		t.Errorf("ykgenerate -h: exit %d, stdout %q", code, out)
	}
}

func TestDatabase(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			st, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			keys := []ksm.Key{
				{SerialNr: 0, PublicName: ciPub, InternalName: ciUID, AESKey: ciAES, Created: "0", Active: true, Hardware: true},
				{SerialNr: 1, PublicName: "cccccccccccb", InternalName: ciUID, AESKey: ciAES, Created: "0", Active: false, Hardware: true},
				{SerialNr: 2, PublicName: "cccccccccccd", InternalName: ciUID, AESKey: "", Created: "0", Active: true, Hardware: true},
			}
			if err := st.Import(context.Background(), keys); err != nil {
				t.Fatal(err)
			}
			st.Close()

			// Fixed timestamp and random field: spec §5.2's fourth OTP.
			out, stderr, code := runCmd(t, nil, "--db", dsn, "--public-id", ciPub, "--counter", "2", "--use", "0",
				"--timestamp", "4660", "--random", "21575")
			if want := "idkfefrdhtruvbfrdfdtrfencnvvhhernhujccbnveej\n"; code != 0 || out != want || stderr != "" {
				t.Errorf("ykgenerate --db … --counter 2 --timestamp 4660 --random 21575 = %q (exit %d, stderr %q), want %q", out, code, stderr, want)
			}

			// Defaults and the environment's database.
			env := map[string]string{"YKKSM_DB": dsn}
			before := time.Now()
			out, _, code = runCmd(t, env, "--public-id", ciPub)
			after := time.Now()
			tok := decrypt(t, out, ciPub)
			c0, u0 := clockPosition(before)
			c1, u1 := clockPosition(after)
			if got := uint64(tok.Counter)<<8 | uint64(tok.Use); code != 0 || got < c0<<8|u0 || got > c1<<8|u1 {
				t.Errorf("ykgenerate --public-id %s decrypts to %+v, want the clock's position (counter %d use %d)", ciPub, tok, c0, u0)
			}
			out, _, _ = runCmd(t, env, "--public-id", ciPub, "--counter", "32770", "--use", "255")
			if tok := decrypt(t, out, ciPub); tok.Counter != 0x8002 || tok.Use != 0xff {
				t.Errorf("--counter 32770 --use 255 decrypts to %+v", tok)
			}

			// An inactive key still mints, with a warning.
			out, stderr, code = runCmd(t, env, "--public-id", "cccccccccccb", "--counter", "7", "--use", "9")
			if tok := decrypt(t, out, "cccccccccccb"); code != 0 || tok.Counter != 7 || tok.Use != 9 ||
				stderr != "ykgenerate: warning: key cccccccccccb is inactive; a KSM answers \"ERR Unknown yubikey\" to its OTPs\n" {
				t.Errorf("inactive key: exit %d, token %+v, stderr %q", code, tok, stderr)
			}

			for _, tt := range []struct{ pub, want string }{
				{"cccccccccccd", "ykgenerate: key cccccccccccd has no AES key in the database\n"},
				{"cccccccccccf", "ykgenerate: no key with public ID cccccccccccf in the database\n"},
			} {
				out, stderr, code = runCmd(t, env, "--public-id", tt.pub)
				if code != 1 || out != "" || stderr != tt.want {
					t.Errorf("ykgenerate --public-id %s: exit %d, stdout %q, stderr %q; want 1, nothing, %q", tt.pub, code, out, stderr, tt.want)
				}
			}
		})
	}
}

func TestDatabaseMissingFile(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	out, stderr, code := runCmd(t, nil, "--database", "sqlite:"+missing, "--public-id", ciPub)
	if want := "ykgenerate: database " + missing + ": stat " + missing + ": no such file or directory\n"; code != 1 || out != "" || stderr != want {
		t.Errorf("missing database: exit %d, stdout %q, stderr %q; want 1, nothing, %q", code, out, stderr, want)
	}
	if m, _ := filepath.Glob(missing + "*"); len(m) != 0 {
		t.Errorf("ykgenerate created %v", m)
	}
}

// TestClockPosition: positions from the clock rise second by second, so
// successive default OTPs are each new to a validation server.
func TestClockPosition(t *testing.T) {
	start := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	pc, pu := clockPosition(start)
	for i := 1; i < 100_000; i += 7 {
		c, u := clockPosition(start.Add(time.Duration(i) * time.Second))
		if c < pc || c == pc && u <= pu {
			t.Fatalf("clockPosition(+%ds) = (%d, %d), not after (%d, %d)", i, c, u, pc, pu)
		}
		if c < 1 || c > 0x7fff || u > 0xff {
			t.Fatalf("clockPosition(+%ds) = (%d, %d): out of range", i, c, u)
		}
		pc, pu = c, u
	}
}
