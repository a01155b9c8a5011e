package e2e_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
)

// buildBinaries builds the commands pkgs (paths from the module root, like
// "./cmd/ykvald") into a temporary directory and returns it. Without a go
// command the test is skipped.
func buildBinaries(t *testing.T, pkgs ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the binaries with: %v", err)
	}
	bin := t.TempDir()
	build := exec.Command(goBin, append([]string{"build", "-o", bin + string(os.PathSeparator)}, pkgs...)...)
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// seedKSM stores ciKey in the KSM database dsn (creating its schema) and
// closes it again, for a ykksmd or ykvald --ksm-db process to open.
func seedKSM(t *testing.T, dsn string) {
	t.Helper()
	ks, err := ksmsqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	err = ks.Import(context.Background(), []ksm.Key{ciKey})
	ks.Close()
	if err != nil {
		t.Fatal(err)
	}
}
