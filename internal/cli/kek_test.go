package cli

import (
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/ksm/seal"
)

func TestKEKFlags(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, key []byte, mode os.FileMode) (string, string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(seal.FormatKEK(key)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		k, err := seal.NewKEK(key)
		if err != nil {
			t.Fatal(err)
		}
		return p, k.ID()
	}
	curFile, cur := write("cur", seal.GenerateKEK(), 0o600)
	oldFile, old := write("old", seal.GenerateKEK(), 0o400)
	openFile, _ := write("open", seal.GenerateKEK(), 0o644)
	credDir := filepath.Join(dir, "creds")
	_, credCur := write("creds/ykksm-kek", seal.GenerateKEK(), 0o644)
	_, credOld := write("creds/ykksm-old-kek", seal.GenerateKEK(), 0o444)
	envRaw := seal.GenerateKEK()
	envK, _ := seal.NewKEK(envRaw)

	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    []string // key IDs, current first; nil: no sealer
		source  string
		wantErr string
		usage   bool
	}{
		{"nothing", nil, nil, nil, "", "", false},
		{"flag", []string{"--kek-file", curFile}, nil, []string{cur}, "--kek-file " + curFile, "", false},
		{"flags for a rotation", []string{"--kek-file", curFile, "--old-kek-file", oldFile}, nil, []string{cur, old}, "--kek-file " + curFile + ", old KEK from --old-kek-file " + oldFile, "", false},
		{"env file", nil, map[string]string{"YKKSM_KEK_FILE": curFile}, []string{cur}, "$YKKSM_KEK_FILE " + curFile, "", false},
		{"env value", nil, map[string]string{"YKKSM_KEK": hex.EncodeToString(envRaw)}, []string{envK.ID()}, "$YKKSM_KEK", "", false},
		{"flag beats env", []string{"--kek-file", curFile}, map[string]string{"YKKSM_KEK": "junk"}, []string{cur}, "--kek-file " + curFile, "", false},
		{"credentials", nil, map[string]string{"CREDENTIALS_DIRECTORY": credDir}, []string{credCur, credOld}, "credential " + credDir + "/ykksm-kek, old KEK from credential " + credDir + "/ykksm-old-kek", "", false},
		{"env beats credentials", nil, map[string]string{"CREDENTIALS_DIRECTORY": credDir, "YKKSM_KEK_FILE": curFile, "YKKSM_OLD_KEK_FILE": oldFile}, []string{cur, old}, "$YKKSM_KEK_FILE " + curFile + ", old KEK from $YKKSM_OLD_KEK_FILE " + oldFile, "", false},
		{"empty credentials directory", nil, map[string]string{"CREDENTIALS_DIRECTORY": dir + "/none"}, nil, "", "", false},
		{"world-readable file", []string{"--kek-file", openFile}, nil, nil, "", "--kek-file: seal: invalid KEK: " + openFile + " has mode 0644", false},
		{"missing file", []string{"--kek-file", dir + "/nope"}, nil, nil, "", "no such file", false},
		{"bad env value", nil, map[string]string{"YKKSM_KEK": "c2hvcnQ="}, nil, "", "$YKKSM_KEK: seal: invalid KEK", false},
		{"old without current", []string{"--old-kek-file", oldFile}, nil, nil, "", "no current KEK", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f KEKFlags
			fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
			f.Register(fs, "YKKSM")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			s, err := f.Sealer(func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || errors.Is(err, ErrUsage) != tt.usage {
					t.Errorf("Sealer() = %v, want an error with %q (usage %v)", err, tt.wantErr, tt.usage)
				}
				return
			}
			if err != nil {
				t.Fatalf("Sealer() = %v", err)
			}
			if tt.want == nil {
				if s != nil || f.Source() != "" {
					t.Errorf("Sealer() = %v from %q, want none", s.KeyIDs(), f.Source())
				}
				return
			}
			if s == nil {
				t.Fatalf("Sealer() = nil, want key IDs %v", tt.want)
			}
			if got := s.KeyIDs(); strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("Sealer().KeyIDs() = %v, want %v", got, tt.want)
			}
			if f.Source() != tt.source {
				t.Errorf("Source() = %q, want %q", f.Source(), tt.source)
			}
		})
	}
}

// TestKEKFlagsRegisterAs: the same KEK flags under other names, as ykvald
// takes its in-process KSM's KEK.
func TestKEKFlagsRegisterAs(t *testing.T) {
	dir := t.TempDir()
	raw := seal.GenerateKEK()
	k, _ := seal.NewKEK(raw)
	credDir := filepath.Join(dir, "creds")
	os.MkdirAll(credDir, 0o700)
	os.WriteFile(filepath.Join(credDir, "ykksm-kek"), []byte(seal.FormatKEK(raw)), 0o644)
	file := filepath.Join(dir, "k")
	os.WriteFile(file, []byte(seal.FormatKEK(raw)), 0o600)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		source  string
		wantErr string
	}{
		{"flag", []string{"--ksm-kek-file", file}, nil, "--ksm-kek-file " + file, ""},
		{"env", nil, map[string]string{"YKVAL_KSM_KEK_FILE": file, "YKKSM_KEK_FILE": "/nonexistent"}, "$YKVAL_KSM_KEK_FILE " + file, ""},
		{"credential", nil, map[string]string{"CREDENTIALS_DIRECTORY": credDir}, "credential " + credDir + "/ykksm-kek", ""},
		{"old without current", []string{"--ksm-old-kek-file", file}, nil, "", "no current KEK is given (--ksm-kek-file)"},
		{"missing file", []string{"--ksm-kek-file", dir + "/nope"}, nil, "", "--ksm-kek-file: "},
	}
	for _, tt := range tests {
		var f KEKFlags
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		f.RegisterAs(fs, "ksm-", "YKVAL_KSM", "ykksm")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		s, err := f.Sealer(func(k string) string { return tt.env[k] })
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: Sealer() = %v, want an error with %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil || s == nil || s.KeyID() != k.ID() || f.Source() != tt.source {
			t.Errorf("%s: Sealer() = %v from %q, %v; want key ID %s from %q", tt.name, s, f.Source(), err, k.ID(), tt.source)
		}
	}
}
