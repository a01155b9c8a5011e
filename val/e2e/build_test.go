package e2e_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
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
