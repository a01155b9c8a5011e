package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/testdb"
)

// tools are the YK-VAL admin commands TestPipeline builds and runs.
var tools = []string{
	"ykval-gen-clients", "ykval-export-clients", "ykval-import-clients", "ykval-checksum-clients",
	"ykval-export", "ykval-import", "ykval-checksum-deactivated",
}

// buildTools compiles the admin commands into a temporary directory.
func buildTools(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the tools with: %v", err)
	}
	dir := t.TempDir()
	args := []string{"build", "-ldflags=-s -w", "-o", dir + string(os.PathSeparator)}
	for _, tool := range tools {
		args = append(args, "./cmd/"+tool)
	}
	cmd := exec.Command(goBin, args...)
	cmd.Dir = filepath.Join("..", "..")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return dir
}

// TestPipeline runs the built commands as an operator would, moving clients
// and counters from a SQLite database to a MariaDB one (or to a second
// SQLite file where no MariaDB runs): every export reads back identically
// and the checksums agree across the databases and with a hand computation.
func TestPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tools")
	}
	bin := buildTools(t)
	src := testdb.SQLite(t)
	dst := testdb.SQLite(t)
	if mysqlUp(t) {
		dst = testdb.MySQL(t)
	}
	tool := func(name, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Stdin = strings.NewReader(stdin)
		cmd.Env = append(os.Environ(), "YKVAL_DB=", "YKVAL_DB_PASSWORD=")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s %q: %v\nstderr: %s", name, args, err, stderr.String())
		}
		return stdout.String()
	}

	// Clients: Yubico's CI client, then three generated ones.
	const ciClient = "1,1,1383728711,EHmo8FMxuhumBlTinC4uYL0Mgwg=,,,\n"
	if out := tool("ykval-import-clients", ciClient, "--db", src); out != "Successfully imported clients to database\n" {
		t.Fatalf("ykval-import-clients printed %q", out)
	}
	gen := tool("ykval-gen-clients", "", "--db", src, "--email=ops@example.com", "3")
	clients := tool("ykval-export-clients", "", "--db", src)
	if !strings.HasPrefix(clients, ciClient) || strings.Count(clients, "\n") != 4 {
		t.Fatalf("ykval-export-clients after gen-clients printed\n%s", clients)
	}
	var sumData strings.Builder
	for i, line := range strings.Split(strings.TrimSuffix(clients, "\n"), "\n") {
		f := strings.Split(line, ",")
		sumData.WriteString(f[0] + "\t" + f[1] + "\t" + f[3] + "\n")
		if i > 0 && !strings.Contains(gen, f[0]+","+f[3]+"\n") {
			t.Errorf("exported client %q was not printed by ykval-gen-clients:\n%s", line, gen)
		}
	}
	tool("ykval-import-clients", clients, "--db", dst)
	if got := tool("ykval-export-clients", "", "--db", dst); got != clients {
		t.Errorf("export → import → export of clients changed\n%s\ninto\n%s", clients, got)
	}
	wantSum := sha1hex(sumData.String())
	for _, db := range []string{src, dst} {
		if got := tool("ykval-checksum-clients", "", "--db", db); got != wantSum+"\n" {
			t.Errorf("ykval-checksum-clients on %s = %q, want %q", db, got, wantSum)
		}
	}

	// Counters.
	keys := "1,1359470658,1359470700,vvvvvvvvvvvv,2,1,32729,4,aoincuhfuahsaoincuhf,\"a, note\"\n" +
		"0,1383728711,-1,cccccccccccb,-1,-1,-1,-1,0000000000000000,\n" +
		"0,1,1700000000,idkfefrdhtru,32767,255,65535,255,kakakakakakakakakakakaka,x\n"
	if out := tool("ykval-import", keys, "--db", src); out != "Successfully imported yubikeys to database\n" {
		t.Fatalf("ykval-import printed %q", out)
	}
	exported := tool("ykval-export", "", "--db", src)
	tool("ykval-import", exported, "--db", dst)
	if got := tool("ykval-export", "", "--db", dst); got != exported {
		t.Errorf("export → import → export of keys changed\n%s\ninto\n%s", exported, got)
	}
	tool("ykval-import", exported, "--db", src)
	if got := tool("ykval-export", "", "--db", src); got != exported {
		t.Errorf("re-importing an export changed it to\n%s", got)
	}
	wantSum = sha1hex("cccccccccccb\t-1\t-1\nidkfefrdhtru\t32767\t255\n")
	for _, db := range []string{src, dst} {
		if got := tool("ykval-checksum-deactivated", "", "--db", db); got != wantSum+"\n" {
			t.Errorf("ykval-checksum-deactivated on %s = %q, want %q", db, got, wantSum)
		}
	}
}

func sha1hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])[:10]
}

// mysqlUp reports whether the test MariaDB answers, without skipping t.
func mysqlUp(t *testing.T) bool {
	up := false
	t.Run("mysql-probe", func(t *testing.T) {
		testdb.RequireMySQL(t) // skips this subtest when none answers
		up = true
	})
	return up
}
