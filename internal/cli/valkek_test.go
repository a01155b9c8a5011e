package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/val/valseal"
)

func TestValKEKFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) (string, string) {
		raw := valseal.GenerateKEK()
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, []byte(valseal.FormatKEK(raw)), mode)
		os.Chmod(p, mode)
		k, _ := valseal.NewKEK(raw)
		return p, k.ID()
	}
	curFile, cur := write("cur", 0o600)
	oldFile, old := write("old", 0o600)
	openFile, _ := write("open", 0o644)
	credDir := filepath.Join(dir, "creds")
	_, credCur := write("creds/ykval-kek", 0o644)
	envRaw := valseal.GenerateKEK()
	envK, _ := valseal.NewKEK(envRaw)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string
		source  string
		wantErr string
	}{
		{"nothing", nil, nil, nil, "", ""},
		{"flags", []string{"--kek-file", curFile, "--old-kek-file", oldFile}, nil, []string{cur, old}, "--kek-file " + curFile + ", old KEK from --old-kek-file " + oldFile, ""},
		{"env value", nil, map[string]string{"YKVAL_KEK": strings.TrimSpace(valseal.FormatKEK(envRaw))}, []string{envK.ID()}, "$YKVAL_KEK", ""},
		{"env file", nil, map[string]string{"YKVAL_KEK_FILE": curFile, "YKKSM_KEK_FILE": oldFile}, []string{cur}, "$YKVAL_KEK_FILE " + curFile, ""},
		{"credential", nil, map[string]string{"CREDENTIALS_DIRECTORY": credDir}, []string{credCur}, "credential " + credDir + "/ykval-kek", ""},
		{"world-readable file", []string{"--kek-file", openFile}, nil, nil, "", "--kek-file: sealbox: invalid KEK: " + openFile + " has mode 0644"},
		{"bad env value", nil, map[string]string{"YKVAL_KEK": "c2hvcnQ="}, nil, "", "$YKVAL_KEK: sealbox: invalid KEK"},
		{"old without current", []string{"--old-kek-file", oldFile}, nil, nil, "", "no current KEK"},
	}
	for _, tt := range tests {
		var f ValKEKFlags
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		f.Register(fs, "YKVAL")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		s, err := f.Sealer(func(k string) string { return tt.env[k] })
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: Sealer() = %v, want an error with %q", tt.name, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%s: Sealer() = %v", tt.name, err)
		case tt.want == nil && s != nil:
			t.Errorf("%s: Sealer() = %v, want none", tt.name, s.KeyIDs())
		case tt.want != nil && (s == nil || strings.Join(s.KeyIDs(), " ") != strings.Join(tt.want, " ") || f.Source() != tt.source):
			t.Errorf("%s: Sealer() from %q, want %v from %q", tt.name, f.Source(), tt.want, tt.source)
		}
	}
}
