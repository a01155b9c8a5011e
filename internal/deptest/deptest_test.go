// Package deptest checks the import rules of the repository: which packages
// may depend on which, so that layering cannot erode unnoticed.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

type pkg struct {
	ImportPath string
	Deps       []string
	Standard   bool
}

func listDeps(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-e", "-json=ImportPath,Deps,Standard", "github.com/ykstack/ykstack/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	return pkgs
}

const mod = "github.com/ykstack/ykstack"

func under(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

func isStd(dep string) bool {
	first, _, _ := strings.Cut(dep, "/")
	return !strings.Contains(first, ".")
}

// drivers are the SQL driver modules; only storage code may link them.
var drivers = []string{"github.com/go-sql-driver/mysql", "modernc.org/sqlite"}

func TestImportRules(t *testing.T) {
	for _, p := range listDeps(t) {
		for _, d := range p.Deps {
			switch {
			case under(p.ImportPath, mod+"/otp") && !isStd(d) && !under(d, mod+"/otp"):
				t.Errorf("%s imports %s: otp may import only the standard library", p.ImportPath, d)
			case under(p.ImportPath, mod+"/ksm") && under(d, mod+"/val"):
				t.Errorf("%s imports %s: ksm and val never import each other", p.ImportPath, d)
			case under(p.ImportPath, mod+"/val") && under(d, mod+"/ksm"):
				t.Errorf("%s imports %s: ksm and val never import each other (wire them in cmd/)", p.ImportPath, d)
			case pamModule(p.ImportPath) && (under(d, mod+"/internal/sqldb") || under(d, mod+"/ksm") ||
				under(d, mod+"/val/valserver") || under(d, mod+"/val/sqlstore") || isDriver(d)):
				t.Errorf("%s imports %s: the PAM module links no SQL driver or server code", p.ImportPath, d)
			}
			for _, drv := range drivers {
				if under(d, drv) && !allowedDriverUser(p.ImportPath) {
					t.Errorf("%s imports %s: only sqlstores, internal/sqldb, internal/testdb and cmd/ link SQL drivers", p.ImportPath, d)
				}
			}
		}
	}
}

// pamModule reports whether path is part of what the PAM module or its
// helper executable link (the test harnesses under pam/ are not).
func pamModule(path string) bool {
	if under(path, mod+"/pam/internal/pamtest") || under(path, mod+"/pam/integration") {
		return false
	}
	return under(path, mod+"/pam") || under(path, mod+"/cmd/pam_yubico_helper")
}

func isDriver(dep string) bool {
	for _, drv := range drivers {
		if under(dep, drv) {
			return true
		}
	}
	return false
}

func allowedDriverUser(path string) bool {
	for _, ok := range []string{"/internal/sqldb", "/internal/testdb", "/internal/galera", "/internal/cli", "/ksm/sqlstore", "/val/sqlstore", "/cmd", "/ksm/storetest", "/val/storetest", "/internal/deptest", "/pam/internal/pamtest"} {
		if under(path, mod+ok) {
			return true
		}
	}
	// Packages that import a sqlstore (e.g. servers' tests, e2e, tools) link the driver
	// transitively; those are checked through the rules above instead.
	return strings.HasSuffix(path, "/e2e") || strings.Contains(path, "/cmd/")
}
