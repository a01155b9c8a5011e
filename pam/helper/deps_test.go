package helper

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestHelperDeps pins what the PAM helper may link: no SQL driver, no
// database/sql, no server code, no metrics library. It is started for every
// login, by root, inside sshd's PAM stack.
func TestHelperDeps(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.Command("go", "list", "-deps", "./cmd/pam_yubico_helper")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// database/sql/driver (interfaces only) comes with github.com/google/uuid,
	// which go-ldap uses; database/sql itself and every driver stay out.
	forbidden := []string{
		"database/sql",
		"github.com/go-sql-driver/mysql",
		"modernc.org/sqlite",
		"github.com/prometheus/",
		"github.com/ykstack/ykstack/internal/sqldb",
		"github.com/ykstack/ykstack/internal/cli",
		"github.com/ykstack/ykstack/sql",
		"github.com/ykstack/ykstack/ksm",
		"github.com/ykstack/ykstack/val/valserver",
		"github.com/ykstack/ykstack/val/sqlstore",
		"github.com/msteinert/pam",
	}
	deps := strings.Fields(string(out))
	for _, d := range deps {
		if d == "database/sql/driver" {
			continue
		}
		for _, f := range forbidden {
			if d == f || strings.HasPrefix(d, strings.TrimSuffix(f, "/")+"/") {
				t.Errorf("pam_yubico_helper depends on %s (forbidden: %s)", d, f)
			}
		}
	}
	for _, want := range []string{"github.com/ykstack/ykstack/val/valclient", "github.com/ykstack/ykstack/pam/yubipam"} {
		found := false
		for _, d := range deps {
			found = found || d == want
		}
		if !found {
			t.Errorf("pam_yubico_helper does not use %s", want)
		}
	}
}
