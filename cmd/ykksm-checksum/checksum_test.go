package main

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

func key(serial int64, pub, uid, aes string, active bool) ksm.Key {
	return ksm.Key{SerialNr: serial, PublicName: pub, InternalName: uid, AESKey: aes, LockCode: "881ae7bee927",
		Created: "2009-12-14T16:40:57", Creator: "8B88A11B", Active: active, Hardware: true}
}

// keys are imported out of order: serial 10 must follow 9 (numeric, not
// text, order) and equal serials go by public name. One key is inactive: it
// still counts.
var keys = []ksm.Key{
	key(10, "cccccccccccl", "d74fbdf6a890", "82211e0854e7369e83d941f24761a84e", true),
	key(9, "ccccccccccck", "7a5ad1886b70", "3091a8048524ab8407ae816457d764e5", true),
	key(9, "cccccccccccb", "981abbbeafb8", "91be4bfd2f40e24ebd39386868aa9619", false),
	key(0, "idkfefrdhtru", "609963eae7b5", "c68c9df8cbfe7d2f994cb904046c7218", true),
}

// wantSum is computed independently: SHA-1 over the fields in
// ORDER BY serialnr, publicname, written out by hand.
var wantSum = func() string {
	s := sha1.Sum([]byte("0" + "idkfefrdhtru" + "609963eae7b5" + "c68c9df8cbfe7d2f994cb904046c7218" +
		"9" + "cccccccccccb" + "981abbbeafb8" + "91be4bfd2f40e24ebd39386868aa9619" +
		"9" + "ccccccccccck" + "7a5ad1886b70" + "3091a8048524ab8407ae816457d764e5" +
		"10" + "cccccccccccl" + "d74fbdf6a890" + "82211e0854e7369e83d941f24761a84e"))
	return hex.EncodeToString(s[:])[:10]
}()

func newDB(t *testing.T, dsn string, keys []ksm.Key) {
	t.Helper()
	st, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if len(keys) > 0 {
		if err := st.Import(context.Background(), keys); err != nil {
			t.Fatal(err)
		}
	}
}

func runCmd(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }})
	code := cli.Report("ykksm-checksum", &stderr, err)
	return stdout.String(), stderr.String(), code
}

func TestChecksum(t *testing.T) {
	if wantSum != "e8e55fd369" {
		// Pinned with: printf %s "0idkfefrdhtru…84e" | sha1sum | cut -c1-10
		t.Fatalf("wantSum = %s, want e8e55fd369", wantSum)
	}
	sums := map[string]string{}
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn, keys)
			out, stderr, code := runCmd(t, nil, "--database", dsn)
			if code != 0 || out != wantSum+"\n" || stderr != "" {
				t.Errorf("ykksm-checksum: exit %d, stdout %q, stderr %q; want 0, %q", code, out, stderr, wantSum+"\n")
			}
			sums[b.Name] = out

			out, _, code = runCmd(t, map[string]string{"YKKSM_DB": dsn}, "-v")
			want := "# serialnr=0 publicname=idkfefrdhtru\n# serialnr=9 publicname=cccccccccccb\n" +
				"# serialnr=9 publicname=ccccccccccck\n# serialnr=10 publicname=cccccccccccl\n" + wantSum + "\n"
			if code != 0 || out != want {
				t.Errorf("YKKSM_DB=… ykksm-checksum -v: exit %d, stdout\n%s\nwant\n%s", code, out, want)
			}
		})
	}
	if len(sums) == 2 && sums["sqlite"] != sums["mysql"] {
		t.Errorf("checksums differ: SQLite %q, MariaDB %q", sums["sqlite"], sums["mysql"])
	}
}

func TestChecksumEmpty(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			newDB(t, dsn, nil)
			out, stderr, code := runCmd(t, nil, "--db", dsn, "--verbose")
			if code != 1 || out != "No data?!\n\n" || stderr != "ykksm-checksum: the yubikeys table is empty\n" {
				t.Errorf("ykksm-checksum on an empty database: exit %d, stdout %q, stderr %q; want 1, %q", code, out, stderr, "No data?!\n\n")
			}
		})
	}
}

func TestChecksumErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.db")
	tests := []struct {
		args       []string
		wantCode   int
		wantStderr string
	}{
		{[]string{"--database", "sqlite:" + missing}, 1, "ykksm-checksum: database " + missing + ": stat " + missing + ": no such file or directory\n"},
		{[]string{"extra"}, 2, "ykksm-checksum: usage error: unexpected argument \"extra\" (see --help)\n"},
		{[]string{"--bogus"}, 2, "ykksm-checksum: usage error: unknown flag: --bogus (see --help)\n"},
		{[]string{"--database", "dbi:Pg:dbname=ykksm"}, 2, ""},
		{[]string{"--database", "mysql:root@tcp(127.0.0.1:1)/ykksm"}, 1, ""},
	}
	for _, tt := range tests {
		out, stderr, code := runCmd(t, nil, tt.args...)
		if code != tt.wantCode || out != "" || (tt.wantStderr != "" && stderr != tt.wantStderr) || stderr == "" {
			t.Errorf("ykksm-checksum %q: exit %d, stdout %q, stderr %q; want %d, nothing, %q", tt.args, code, out, stderr, tt.wantCode, tt.wantStderr)
		}
	}
	out, _, code := runCmd(t, nil, "--help")
	if code != 0 || !strings.HasPrefix(out, "Usage: ykksm-checksum") || !strings.Contains(out, "--db-passwd-file") {
		t.Errorf("ykksm-checksum --help: exit %d, stdout %q", code, out)
	}
}
