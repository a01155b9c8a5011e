package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] }})
	code = cli.Report("ykval-gen-clients", &errOut, err)
	return out.String(), errOut.String(), code
}

func clients(t *testing.T, dsn string) []val.Client {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var out []val.Client
	if err := s.EachClient(context.Background(), func(c val.Client) error { out = append(out, c); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkOutput parses "id,secret" lines, checks the secrets and returns the ids.
func checkOutput(t *testing.T, out string, seen map[string]bool) []int64 {
	t.Helper()
	var ids []int64
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		idText, secret, ok := strings.Cut(line, ",")
		id, err := strconv.ParseInt(idText, 10, 64)
		if !ok || err != nil {
			t.Fatalf("output line %q is not id,secret", line)
		}
		key, err := base64.StdEncoding.DecodeString(secret)
		if len(secret) != 28 || err != nil || len(key) != 20 {
			t.Errorf("secret %q: %d characters, decodes to %d bytes (%v); want 28 characters of base64 for 20 bytes", secret, len(secret), len(key), err)
		}
		if seen[secret] {
			t.Errorf("secret %q handed out twice", secret)
		}
		seen[secret] = true
		ids = append(ids, id)
	}
	return ids
}

func TestGenClients(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			seen := map[string]bool{}
			out, stderr, code := runCmd(t, nil, "--database", dsn, "3")
			if code != 0 || stderr != "" {
				t.Fatalf("ykval-gen-clients 3: exit %d, stderr %q", code, stderr)
			}
			if ids := checkOutput(t, out, seen); fmt.Sprint(ids) != "[1 2 3]" {
				t.Errorf("ykval-gen-clients 3 on an empty table gave ids %v, want [1 2 3]", ids)
			}
			env := map[string]string{"YKVAL_DB": dsn}
			out, _, code = runCmd(t, env, "--urandom", "--email=it@example.com", "--notes=it's \"ours\"; DROP TABLE clients", "--otp=cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt", "2")
			if ids := checkOutput(t, out, seen); code != 0 || fmt.Sprint(ids) != "[4 5]" {
				t.Errorf("ykval-gen-clients … 2: exit %d, ids %v; want [4 5]", code, ids)
			}
			all := clients(t, dsn)
			if len(all) != 5 {
				t.Fatalf("the table holds %d clients, want 5", len(all))
			}
			for _, c := range all {
				if !c.Active || c.Created < 1700000000 || !seen[c.Secret] {
					t.Errorf("client %+v: want active, created now, with a secret that was printed", c)
				}
			}
			if c := all[4]; c.Email != "it@example.com" || c.Notes != "it's \"ours\"; DROP TABLE clients" || c.OTP != "cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt" {
				t.Errorf("client 5 = %+v, want the --email, --notes and --otp values", c)
			}
			if c := all[0]; c.Email != "" || c.Notes != "" || c.OTP != "" {
				t.Errorf("client 1 = %+v, want empty email, notes and otp", c)
			}
		})
	}
}

// TestGenClientsArguments pins the original's argument quirks.
func TestGenClientsArguments(t *testing.T) {
	tests := []struct {
		args      []string
		wantN     int
		wantEmail string
		wantNote  bool // the note that num_clients was not last
	}{
		{nil, 1, "", false},
		{[]string{"2"}, 2, "", false},
		{[]string{"--urandom", "2"}, 2, "", false},
		{[]string{"2", "--urandom"}, 1, "", true}, // the count must be last
		{[]string{"--email=a@example.com", "2"}, 2, "a@example.com", false},
		{[]string{"--email", "a@example.com"}, 1, "", true}, // values need '='
		{[]string{"--email", "2"}, 2, "", false},
		{[]string{"--email="}, 1, "", false},
		{[]string{"1", "2x"}, 2, "", false}, // intval("2x") = 2; other arguments are ignored
		{[]string{"0"}, 1, "", true},
	}
	for _, tt := range tests {
		dsn := testdb.SQLite(t)
		out, stderr, code := runCmd(t, nil, append([]string{"--db", dsn}, tt.args...)...)
		if code != 0 {
			t.Errorf("ykval-gen-clients %q: exit %d, stderr %q", tt.args, code, stderr)
			continue
		}
		if n := strings.Count(out, "\n"); n != tt.wantN {
			t.Errorf("ykval-gen-clients %q made %d clients, want %d", tt.args, n, tt.wantN)
		}
		if note := strings.Contains(stderr, "note: creating 1 client"); note != tt.wantNote {
			t.Errorf("ykval-gen-clients %q: stderr %q, want the note %v", tt.args, stderr, tt.wantNote)
		}
		if all := clients(t, dsn); len(all) != tt.wantN || all[0].Email != tt.wantEmail {
			t.Errorf("ykval-gen-clients %q stored %+v, want %d clients with email %q", tt.args, all, tt.wantN, tt.wantEmail)
		}
	}
}

func TestGenClientsErrors(t *testing.T) {
	dsn := testdb.SQLite(t)
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"--", "-3"}, 2, `num_clients "-3" is negative`},
		{[]string{"3000000000"}, 2, "too large"},
		{[]string{"--email=" + strings.Repeat("e", 256)}, 2, "--email is longer than 255 bytes"},
		{[]string{"--notes=" + strings.Repeat("n", 101)}, 2, "--notes is longer than 100 bytes"},
		{[]string{"--bogus"}, 2, "unknown flag: --bogus"},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, append([]string{"--db", dsn}, tt.args...)...)
		if code != tt.wantCode || out != "" || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("ykval-gen-clients %q: exit %d, stdout %q, stderr %q; want exit %d mentioning %q", tt.args, code, out, stderr, tt.wantCode, tt.wantStderr)
		}
	}
	if all := clients(t, dsn); len(all) != 0 {
		t.Errorf("refused commands created %d clients", len(all))
	}
	out, stderr, code := runCmd(t, nil, "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykval-gen-clients") || !strings.Contains(out, "--urandom") || stderr != "" {
		t.Errorf("ykval-gen-clients -h: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// A database that cannot be opened is a runtime error.
	if _, stderr, code := runCmd(t, nil, "--db", "mysql:nobody@tcp(127.0.0.1:1)/x"); code != 1 || !strings.Contains(stderr, "ykval-gen-clients: ") {
		t.Errorf("ykval-gen-clients with an unreachable database: exit %d, stderr %q; want 1", code, stderr)
	}
}

func TestIntval(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"", 0}, {"5", 5}, {"+5", 5}, {"-3", -3}, {" \t7", 7}, {"7 ", 7}, {"12abc", 12},
		{"--urandom", 0}, {"--email=5", 0}, {"ykval-gen-clients", 0}, {"abc5", 0},
		{"1.9", 1}, {"-1.9", -1}, {".5", 0}, {"5.", 5}, {".", 0}, {"-", 0},
		{"1e3", 1000}, {"1E+2", 100}, {"2e-1", 0}, {"1e", 1}, {"1ex", 1}, {"0x1A", 0}, {"007", 7},
		{"99999999999999999999", math.MaxInt64}, {"-99999999999999999999", math.MinInt64}, {"1e30", math.MaxInt64},
	}
	for _, tt := range tests {
		if got := intval(tt.in); got != tt.want {
			t.Errorf("intval(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func FuzzIntval(f *testing.F) {
	for _, s := range []string{"5", "1e3", "-1.9", "12abc", " 7", ".5", "99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := intval(s)
		// Whatever follows the number does not change it.
		if m := intval(s + "x"); m != n && !strings.ContainsAny(s, "eE.") {
			t.Errorf("intval(%q) = %d but intval(%q) = %d", s, n, s+"x", m)
		}
	})
}

// TestGenerateConcurrent runs several generators on one database at once, as
// two admins might: every id is handed out once.
func TestGenerateConcurrent(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			clients(t, dsn) // create the tables
			const workers, each = 4, 5
			outs := make([]string, workers)
			done := make(chan struct{})
			for w := range workers {
				go func() {
					defer func() { done <- struct{}{} }()
					outs[w], _, _ = runCmd(t, nil, "--db", dsn, strconv.Itoa(each))
				}()
			}
			for range workers {
				<-done
			}
			seen := map[string]bool{}
			ids := map[int64]bool{}
			for _, out := range outs {
				for _, id := range checkOutput(t, out, seen) {
					if ids[id] {
						t.Errorf("id %d handed out twice", id)
					}
					ids[id] = true
				}
			}
			if len(ids) != workers*each {
				t.Errorf("%d ids handed out, want %d", len(ids), workers*each)
			}
			for id := int64(1); id <= workers*each; id++ {
				if !ids[id] {
					t.Errorf("id %d missing: ids are not consecutive", id)
				}
			}
		})
	}
}
