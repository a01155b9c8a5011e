package main

import (
	"bytes"
	"context"
	"path/filepath"
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
	code = cli.Report("ykval-checksum-deactivated", &errOut, err)
	return out.String(), errOut.String(), code
}

func key(name string, active bool, counter, use int) val.KeyState {
	return val.KeyState{PublicName: name, Active: active, Created: 1, Modified: 2, Counter: counter, Use: use, Low: 3, High: 4, Nonce: "n", Notes: "not hashed"}
}

// keys are stored out of order; only the inactive ones are hashed, by name.
var keys = []val.KeyState{
	key("ccccccccccce", false, 12, 3),
	key("cccccccccccd", true, 5, 5),
	key("cccccccccccb", false, -1, -1),
	key("vvvvvvvvvvvv", true, 1, 0),
}

const (
	data = "cccccccccccb\t-1\t-1\nccccccccccce\t12\t3\n"
	// sum was computed with: printf 'cccccccccccb\t-1\t-1\nccccccccccce\t12\t3\n' | sha1sum | cut -c1-10
	sum = "79e05e57ea"
)

func newDB(t *testing.T, dsn string, keys ...val.KeyState) {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, k := range keys {
		if _, err := s.ImportKey(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
}

func TestChecksumDeactivated(t *testing.T) {
	sums := map[string]string{}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn, keys...)
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 0 || out != sum+"\n" || stderr != "" {
				t.Errorf("ykval-checksum-deactivated: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, sum+"\n")
			}
			sums[b.Name] = out
			out, _, code = runCmd(t, map[string]string{"YKVAL_DB": dsn}, "-v")
			if code != 0 || out != data+sum+"\n" {
				t.Errorf("ykval-checksum-deactivated -v: exit %d, stdout\n%s\nwant\n%s", code, out, data+sum+"\n")
			}
		})
	}
	if len(sums) == 2 && sums["sqlite"] != sums["mysql"] {
		t.Errorf("checksums differ: SQLite %q, MariaDB %q", sums["sqlite"], sums["mysql"])
	}
}

func TestChecksumDeactivatedNone(t *testing.T) {
	dsn := testdb.SQLite(t)
	newDB(t, dsn, key("cccccccccccb", true, 1, 1))
	if out, stderr, code := runCmd(t, nil, "--db", dsn, "-v"); code != 0 || out != "da39a3ee5e\n" || stderr != "" {
		t.Errorf("ykval-checksum-deactivated without inactive keys: exit %d, stdout %q, stderr %q; want da39a3ee5e", code, out, stderr)
	}
}

func TestChecksumDeactivatedErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"--db", "sqlite:" + missing}, 1, "nope.db"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--verbose=maybe"}, 2, "invalid argument"},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, tt.args...)
		if code != tt.wantCode || out != "" || !strings.HasPrefix(stderr, "ykval-checksum-deactivated: ") || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("ykval-checksum-deactivated %q: exit %d, stdout %q, stderr %q; want exit %d and an error mentioning %q", tt.args, code, out, stderr, tt.wantCode, tt.wantStderr)
		}
	}
	out, stderr, code := runCmd(t, nil, "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykval-checksum-deactivated") || stderr != "" {
		t.Errorf("ykval-checksum-deactivated -h: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
