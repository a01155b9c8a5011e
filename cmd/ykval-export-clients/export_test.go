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
	code = cli.Report("ykval-export-clients", &errOut, err)
	return out.String(), errOut.String(), code
}

func newDB(t *testing.T, dsn string, clients ...val.Client) {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.ImportClients(context.Background(), clients); err != nil {
		t.Fatal(err)
	}
}

// clients are stored out of order; the export sorts them by id (10 after 2).
var clients = []val.Client{
	{ID: 10, Active: false, Created: 1359550387, Secret: "foobar", Email: "user@example.com", OTP: "cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt"},
	{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="}, // Yubico's CI client
	{ID: 2, Active: true, Created: 5, Secret: "c2VjcmV0", Notes: "billing, EU"},
}

const want = "1,1,1383728711,EHmo8FMxuhumBlTinC4uYL0Mgwg=,,,\n" +
	"2,1,5,c2VjcmV0,,\"billing, EU\",\n" +
	"10,0,1359550387,foobar,user@example.com,,cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt\n"

func TestExportClients(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn, clients...)
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 0 || out != want || stderr != "" {
				t.Errorf("ykval-export-clients: exit %d, stderr %q, stdout\n%s\nwant\n%s", code, stderr, out, want)
			}
			out, _, code = runCmd(t, map[string]string{"YKVAL_DB": dsn})
			if code != 0 || out != want {
				t.Errorf("YKVAL_DB=… ykval-export-clients: exit %d, stdout\n%s\nwant\n%s", code, out, want)
			}
		})
	}
}

func TestExportClientsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"--db", "sqlite:" + missing}, 1, "nope.db"},
		{[]string{"extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-x"}, 2, "unknown shorthand flag"},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, tt.args...)
		if code != tt.wantCode || out != "" || !strings.HasPrefix(stderr, "ykval-export-clients: ") || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("ykval-export-clients %q: exit %d, stdout %q, stderr %q; want exit %d and an error mentioning %q", tt.args, code, out, stderr, tt.wantCode, tt.wantStderr)
		}
	}
	out, stderr, code := runCmd(t, nil, "-h")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykval-export-clients") || stderr != "" {
		t.Errorf("ykval-export-clients -h: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
