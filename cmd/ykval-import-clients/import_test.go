package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valcsv"
)

const success = "Successfully imported clients to database\n"

// ciClient is the client line Yubico's CI imports with ykval-import-clients.
const ciClient = "1,1,1383728711,EHmo8FMxuhumBlTinC4uYL0Mgwg=,,,\n"

func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] }})
	code = cli.Report("ykval-import-clients", &errOut, err)
	return out.String(), errOut.String(), code
}

func openStore(t *testing.T, dsn string) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dump is what ykval-export-clients prints for the database.
func dump(t *testing.T, dsn string) string {
	t.Helper()
	var b strings.Builder
	err := openStore(t, dsn).EachClient(context.Background(), func(c val.Client) error {
		b.WriteString(valcsv.FormatClient(c) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestImportClientsCI(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			out, stderr, code := runCmd(t, nil, ciClient, "--database", dsn)
			if code != 0 || out != success || stderr != "" {
				t.Fatalf("ykval-import-clients: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, success)
			}
			if got := dump(t, dsn); got != ciClient {
				t.Errorf("export after importing the CI client = %q, want %q", got, ciClient)
			}
			c, err := openStore(t, dsn).Client(context.Background(), 1)
			if want := (val.Client{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="}); err != nil || c != want {
				t.Errorf("Client(1) = %+v, %v; want %+v", c, err, want)
			}
		})
	}
}

func TestImportClients(t *testing.T) {
	in := "# id,active,created,secret,email,notes,otp\n" +
		"10,0,1359550387,foobar,user@example.com,,cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt\r\n" +
		"\n" +
		"2,1,5,c2VjcmV0,,\"billing, EU\",\n" +
		"3,1,6,short\n" // email, notes and otp left off
	want := "2,1,5,c2VjcmV0,,\"billing, EU\",\n" +
		"3,1,6,short,,,\n" +
		"10,0,1359550387,foobar,user@example.com,,cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt\n"
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			if out, stderr, code := runCmd(t, map[string]string{"YKVAL_DB": dsn}, in); code != 0 || out != success {
				t.Fatalf("ykval-import-clients: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			if got := dump(t, dsn); got != want {
				t.Errorf("after import the export is\n%s\nwant\n%s", got, want)
			}
			// Existing ids are never updated; new ones are added.
			again := "2,0,99,changed,,,\n10,1,99,changed,,,\n4,1,7,new,,,\n"
			if out, stderr, code := runCmd(t, nil, again, "--db", dsn); code != 0 || out != success {
				t.Fatalf("ykval-import-clients: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			want2 := "2,1,5,c2VjcmV0,,\"billing, EU\",\n" +
				"3,1,6,short,,,\n" +
				"4,1,7,new,,,\n" +
				"10,0,1359550387,foobar,user@example.com,,cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt\n"
			if got := dump(t, dsn); got != want2 {
				t.Errorf("after a second import the export is\n%s\nwant\n%s", got, want2)
			}
		})
	}
}

func TestImportClientsMalformed(t *testing.T) {
	tests := []struct {
		in, wantStderr string
	}{
		{ciClient + "2,1,x,s,,,\n", `line 2: valcsv: malformed line: created "x": not a decimal integer`},
		{ciClient + "\n\n2,1,1\n", "line 4: valcsv: malformed line: 3 fields"},
		{"2,1,1,s,,,,extra\n", "line 1:"},
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			openStore(t, dsn)
			for _, tt := range tests {
				out, stderr, code := runCmd(t, nil, tt.in, "--db", dsn)
				if code != 1 || out != "" || !strings.Contains(stderr, tt.wantStderr) {
					t.Errorf("ykval-import-clients of %q: exit %d, stdout %q, stderr %q; want exit 1 and %q", tt.in, code, out, stderr, tt.wantStderr)
				}
			}
			if got := dump(t, dsn); got != "" {
				t.Errorf("after refused imports the database holds\n%s", got)
			}
		})
	}
}

func TestImportClientsUsage(t *testing.T) {
	dbFile := filepath.Join(t.TempDir(), "new.db")
	if _, _, code := runCmd(t, nil, "garbage\n", "--db", "sqlite:"+dbFile); code != 1 {
		t.Errorf("ykval-import-clients of garbage: exit %d, want 1", code)
	}
	if _, err := os.Stat(dbFile); err == nil {
		t.Errorf("a refused import created %s", dbFile)
	}
	for _, args := range [][]string{{"extra"}, {"--nope"}} {
		if out, stderr, code := runCmd(t, nil, "", args...); code != 2 || out != "" || !strings.HasPrefix(stderr, "ykval-import-clients: usage error") {
			t.Errorf("ykval-import-clients %q: exit %d, stdout %q, stderr %q; want a usage error", args, code, out, stderr)
		}
	}
	if out, _, code := runCmd(t, nil, "", "-h"); code != 0 || !strings.HasPrefix(out, "Usage: ykval-import-clients") {
		t.Errorf("ykval-import-clients -h: exit %d, stdout %q", code, out)
	}
}
