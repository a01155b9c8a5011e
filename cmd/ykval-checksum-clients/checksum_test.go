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
	code = cli.Report("ykval-checksum-clients", &errOut, err)
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

// clients are stored out of order: 10 must follow 2 (numeric order), and
// the inactive client counts too.
var clients = []val.Client{
	{ID: 10, Active: false, Created: 1359550387, Secret: "foobar", Email: "user@example.com"},
	{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="},
	{ID: 2, Active: true, Created: 5, Secret: "c2VjcmV0", Notes: "not hashed"},
}

const (
	data = "1\t1\tEHmo8FMxuhumBlTinC4uYL0Mgwg=\n2\t1\tc2VjcmV0\n10\t0\tfoobar\n"
	// sum was computed with: printf '1\t1\tEHmo…=\n2\t1\tc2VjcmV0\n10\t0\tfoobar\n' | sha1sum | cut -c1-10
	sum = "e2c61a712c"
)

func TestChecksumClients(t *testing.T) {
	sums := map[string]string{}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn, clients...)
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 0 || out != sum+"\n" || stderr != "" {
				t.Errorf("ykval-checksum-clients: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, sum+"\n")
			}
			sums[b.Name] = out
			out, _, code = runCmd(t, map[string]string{"YKVAL_DB": dsn}, "-v")
			if code != 0 || out != data+sum+"\n" {
				t.Errorf("ykval-checksum-clients -v: exit %d, stdout\n%s\nwant\n%s", code, out, data+sum+"\n")
			}
		})
	}
	if len(sums) == 2 && sums["sqlite"] != sums["mysql"] {
		t.Errorf("checksums differ: SQLite %q, MariaDB %q", sums["sqlite"], sums["mysql"])
	}
}

func TestChecksumClientsEmpty(t *testing.T) {
	dsn := testdb.SQLite(t)
	newDB(t, dsn)
	// The SHA-1 of nothing, as the original prints for an empty table.
	if out, stderr, code := runCmd(t, nil, "--db", dsn, "--verbose"); code != 0 || out != "da39a3ee5e\n" || stderr != "" {
		t.Errorf("ykval-checksum-clients on an empty table: exit %d, stdout %q, stderr %q; want da39a3ee5e", code, out, stderr)
	}
}

func TestChecksumClientsErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"--db", "sqlite:" + missing}, 1, "nope.db"},
		{[]string{"-v", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"-x"}, 2, "unknown shorthand flag"},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, tt.args...)
		if code != tt.wantCode || out != "" || !strings.HasPrefix(stderr, "ykval-checksum-clients: ") || !strings.Contains(stderr, tt.wantStderr) {
			t.Errorf("ykval-checksum-clients %q: exit %d, stdout %q, stderr %q; want exit %d and an error mentioning %q", tt.args, code, out, stderr, tt.wantCode, tt.wantStderr)
		}
	}
	out, stderr, code := runCmd(t, nil, "--help")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykval-checksum-clients") || stderr != "" {
		t.Errorf("ykval-checksum-clients --help: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
}
