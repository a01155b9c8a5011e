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

const success = "Successfully imported yubikeys to database\n"

func runCmd(t *testing.T, env map[string]string, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut,
		Getenv: func(k string) string { return env[k] }})
	code = cli.Report("ykval-import", &errOut, err)
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

// dump is what ykval-export prints for the database.
func dump(t *testing.T, dsn string) string {
	t.Helper()
	var b strings.Builder
	err := openStore(t, dsn).EachKey(context.Background(), func(k val.KeyState) error {
		b.WriteString(valcsv.FormatKey(k) + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestImport(t *testing.T) {
	in := "# exported from val1\r\n" +
		"1,1359470658,1359470700,vvvvvvvvvvvv,2,1,32729,4,aoincuhfuahsaoincuhf,\"a, \"\"quoted\"\" note\"\r\n" +
		"\r\n" +
		"0,1383728711,-1,cccccccccccb,-1,-1,-1,-1,0000000000000000,\r\n" +
		"1,1359470658,1359470658,idkfefrdhtru,2,1,32729,4,aoincuhfuahs\r\n" // 9 fields, as in Yubico's format doc
	want := "0,1383728711,-1,cccccccccccb,-1,-1,-1,-1,0000000000000000,\n" +
		"1,1359470658,1359470658,idkfefrdhtru,2,1,32729,4,aoincuhfuahs,\n" +
		"1,1359470658,1359470700,vvvvvvvvvvvv,2,1,32729,4,aoincuhfuahsaoincuhf,\"a, \"\"quoted\"\" note\"\n"
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			out, stderr, code := runCmd(t, nil, in, "--database", dsn)
			if code != 0 || out != success || stderr != "" {
				t.Fatalf("ykval-import: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, success)
			}
			if got := dump(t, dsn); got != want {
				t.Errorf("after import the export is\n%s\nwant\n%s", got, want)
			}
			// Importing the export again changes nothing: export → import → export.
			if _, stderr, code := runCmd(t, map[string]string{"YKVAL_DB": dsn}, want); code != 0 {
				t.Fatalf("re-import: exit %d, stderr %q", code, stderr)
			}
			if got := dump(t, dsn); got != want {
				t.Errorf("after re-importing its own export the export is\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestImportOnlyAhead checks the replay guard of imports: a known key takes
// a line's values only when its counters are ahead.
func TestImportOnlyAhead(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			start := "1,1,100,cccccccccccb,5,5,1,1,first,\n" +
				"1,1,100,cccccccccccc,5,5,1,1,first,\n" +
				"1,1,100,cccccccccccd,5,5,1,1,first,\n" +
				"1,1,100,ccccccccccce,5,5,1,1,first,\n"
			if _, stderr, code := runCmd(t, nil, start, "--db", dsn); code != 0 {
				t.Fatalf("ykval-import: exit %d, %s", code, stderr)
			}
			update := "0,9,200,cccccccccccb,5,5,2,2,equal,x\n" + // same position: kept
				"0,9,200,cccccccccccc,4,200,2,2,behind,x\n" + // lower counter: kept
				"0,9,200,cccccccccccd,5,6,2,2,ahead,x\n" + // higher use: taken, every field
				"0,9,200,ccccccccccce,6,0,2,2,ahead,x\n" + // higher counter: taken
				"1,9,200,cccccccccccf,1,0,2,2,new,x\n" // new: inserted
			if out, stderr, code := runCmd(t, nil, update, "--db", dsn); code != 0 || out != success {
				t.Fatalf("ykval-import: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			want := "1,1,100,cccccccccccb,5,5,1,1,first,\n" +
				"1,1,100,cccccccccccc,5,5,1,1,first,\n" +
				"0,9,200,cccccccccccd,5,6,2,2,ahead,x\n" +
				"0,9,200,ccccccccccce,6,0,2,2,ahead,x\n" +
				"1,9,200,cccccccccccf,1,0,2,2,new,x\n"
			if got := dump(t, dsn); got != want {
				t.Errorf("after the update the export is\n%s\nwant\n%s", got, want)
			}
		})
	}
}

func TestImportMalformed(t *testing.T) {
	good := "1,1,100,cccccccccccb,5,5,1,1,n,\n"
	tests := []struct {
		in, wantStderr string
	}{
		{good + "\n# comment\n1,1,100,cccccccccccd,five,5,1,1,n,\n", `line 4: valcsv: malformed line: yk_counter "five": not a decimal integer`},
		{good + "1,1,100,cccccccccccd,5,5,1\n", "line 2: valcsv: malformed line: 7 fields, want 10"},
		{good + "1,1,100,cccccccccccd,5,5,1,1,n,x,y\n", "line 2:"},
		{"1,1,100,cccccccccccd,5,5,1,1,\"open\n", "line 1:"},
	}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			openStore(t, dsn)
			for _, tt := range tests {
				out, stderr, code := runCmd(t, nil, tt.in, "--db", dsn)
				if code != 1 || out != "" || !strings.Contains(stderr, tt.wantStderr) || !strings.Contains(stderr, "nothing imported") {
					t.Errorf("ykval-import of %q: exit %d, stdout %q, stderr %q; want exit 1 and %q", tt.in, code, out, stderr, tt.wantStderr)
				}
			}
			if got := dump(t, dsn); got != "" {
				t.Errorf("after refused imports the database holds\n%s", got)
			}
		})
	}
}

// TestImportAllOrNothing makes the database refuse the last key of a batch:
// the keys before it are not imported either.
func TestImportAllOrNothing(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			trigger := "CREATE TRIGGER refuse BEFORE INSERT ON yubikeys FOR EACH ROW WHEN NEW.yk_publicname = 'cccccccccccx' BEGIN SELECT RAISE(ABORT, 'refused'); END"
			if b.Name != "sqlite" {
				trigger = "CREATE TRIGGER refuse BEFORE INSERT ON yubikeys FOR EACH ROW BEGIN IF NEW.yk_publicname = 'cccccccccccx' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'refused'; END IF; END"
			}
			if _, err := openStore(t, dsn).DB().Exec(trigger); err != nil {
				t.Fatal(err)
			}
			in := "1,1,1,cccccccccccb,1,0,1,1,n,\n1,1,1,cccccccccccx,1,0,1,1,n,\n"
			out, stderr, code := runCmd(t, nil, in, "--db", dsn)
			if code != 1 || out != "" || !strings.Contains(stderr, "cccccccccccx") {
				t.Errorf("ykval-import with a refused key: exit %d, stdout %q, stderr %q; want exit 1 naming the key", code, out, stderr)
			}
			if got := dump(t, dsn); got != "" {
				t.Errorf("after a failed import the database holds\n%s", got)
			}
		})
	}
}

func TestImportUsage(t *testing.T) {
	dir := t.TempDir()
	dbFile := filepath.Join(dir, "new.db")
	// A malformed input touches no database: the SQLite file is not created.
	if _, _, code := runCmd(t, nil, "garbage\n", "--db", "sqlite:"+dbFile); code != 1 {
		t.Errorf("ykval-import of garbage: exit %d, want 1", code)
	}
	if _, err := os.Stat(dbFile); err == nil {
		t.Errorf("a refused import created %s", dbFile)
	}
	// Empty input into a new database: the tables are created, nothing imported.
	if out, _, code := runCmd(t, nil, "", "--db", "sqlite:"+dbFile); code != 0 || out != success {
		t.Errorf("ykval-import of nothing: exit %d, stdout %q", code, out)
	}
	for _, args := range [][]string{{"extra"}, {"--nope"}} {
		if out, stderr, code := runCmd(t, nil, "", args...); code != 2 || out != "" || !strings.HasPrefix(stderr, "ykval-import: usage error") {
			t.Errorf("ykval-import %q: exit %d, stdout %q, stderr %q; want a usage error", args, code, out, stderr)
		}
	}
	if out, _, code := runCmd(t, nil, "", "--help"); code != 0 || !strings.HasPrefix(out, "Usage: ykval-import") {
		t.Errorf("ykval-import --help: exit %d, stdout %q", code, out)
	}
}
