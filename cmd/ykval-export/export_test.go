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
	code = cli.Report("ykval-export", &errOut, err)
	return out.String(), errOut.String(), code
}

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

// keys are stored out of order; the export sorts them by public name.
var keys = []val.KeyState{
	{PublicName: "vvvvvvvvvvvv", Active: true, Created: 1359470658, Modified: 1359470700, Counter: 2, Use: 1, Low: 32729, High: 4, Nonce: "aoincuhfuahsaoincuhf", Notes: "a, \"quoted\" note"},
	{PublicName: "cccccccccccb", Active: false, Created: 1383728711, Modified: -1, Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "0000000000000000"},
	{PublicName: "idkfefrdhtru", Active: true, Created: 1, Modified: 1700000000, Counter: 32767, Use: 255, Low: 65535, High: 255, Nonce: "kakakakakakakakakakakaka", Notes: "x"},
}

const want = "0,1383728711,-1,cccccccccccb,-1,-1,-1,-1,0000000000000000,\n" +
	"1,1,1700000000,idkfefrdhtru,32767,255,65535,255,kakakakakakakakakakakaka,x\n" +
	"1,1359470658,1359470700,vvvvvvvvvvvv,2,1,32729,4,aoincuhfuahsaoincuhf,\"a, \"\"quoted\"\" note\"\n"

func TestExport(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn, keys...)
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 0 || out != want || stderr != "" {
				t.Errorf("ykval-export: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, stderr, out, want)
			}
			out, _, code = runCmd(t, map[string]string{"YKVAL_DB": dsn})
			if code != 0 || out != want {
				t.Errorf("YKVAL_DB=… ykval-export: exit %d, stdout\n%s\nwant\n%s", code, out, want)
			}
		})
	}
}

func TestExportEmpty(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn)
			if out, stderr, code := runCmd(t, nil, "--db", dsn); code != 0 || out != "" || stderr != "" {
				t.Errorf("ykval-export of an empty database: exit %d, stdout %q, stderr %q; want 0 and nothing", code, out, stderr)
			}
		})
	}
}

func TestExportErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"--db", "sqlite:" + missing}, 1, "nope.db"},
		{[]string{"--db", "sqlite:" + missing, "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"--bogus"}, 2, "unknown flag: --bogus"},
		{[]string{"--db", "dbi:Pg:dbname=x"}, 2, "unsupported DBI driver"},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, tt.args...)
		if code != tt.wantCode || out != "" || !strings.HasPrefix(stderr, "ykval-export: ") || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("ykval-export %q: exit %d, stdout %q, stderr %q; want exit %d and an error mentioning %q", tt.args, code, out, stderr, tt.wantCode, tt.wantStderr)
		}
	}
	out, stderr, code := runCmd(t, nil, "--help")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykval-export") || !strings.Contains(out, "--database") || stderr != "" {
		t.Errorf("ykval-export --help: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
