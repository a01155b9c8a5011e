package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/spf13/pflag"
)

func TestDBFlags(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte("s3cret\nignored\n"), 0o600)
	env := map[string]string{"YKKSM_DB": "sqlite:/env.db", "YKKSM_DB_PASSWORD": "envpw"}
	getenv := func(k string) string { return env[k] }
	tests := []struct {
		args         []string
		wantDSN      string
		wantUser     string
		wantPassword string
		wantErr      error
	}{
		{nil, "sqlite:/env.db", "", "envpw", nil},
		{[]string{"--database", "sqlite:/x.db"}, "sqlite:/x.db", "", "envpw", nil},
		{[]string{"--db=DBI:mysql:dbname=ykksm;host=127.0.0.1", "--db-user", "bob", "--db-passwd", "pw"}, "DBI:mysql:dbname=ykksm;host=127.0.0.1", "bob", "pw", nil},
		{[]string{"--db-passwd-file", pwFile}, "sqlite:/env.db", "", "s3cret", nil},
		{[]string{"--db", "dbi:Pg:dbname=x"}, "", "", "", ErrUsage},
	}
	for _, tt := range tests {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		var f DBFlags
		f.Register(fs, "YKKSM", "sqlite:/default.db")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		cfg, err := f.Config(getenv)
		if tt.wantErr != nil {
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("%v: error = %v, want %v", tt.args, err, tt.wantErr)
			}
			continue
		}
		if err != nil || cfg.DSN != tt.wantDSN || cfg.User != tt.wantUser || cfg.Password != tt.wantPassword {
			t.Errorf("%v: Config() = %+v, %v; want DSN %q user %q password %q", tt.args, cfg, err, tt.wantDSN, tt.wantUser, tt.wantPassword)
		}
	}
	fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
	var f DBFlags
	f.Register(fs, "YKVAL", "sqlite:/default.db")
	if cfg, _ := f.Config(func(string) string { return "" }); cfg.DSN != "sqlite:/default.db" {
		t.Errorf("default DSN = %q", cfg.DSN)
	}
}

func TestReport(t *testing.T) {
	tests := []struct {
		err  error
		code int
	}{
		{nil, ExitOK},
		{pflag.ErrHelp, ExitOK},
		{Usagef("bad flag"), ExitUsage},
		{errors.New("boom"), ExitFailure},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		if got := Report("x", &buf, tt.err); got != tt.code {
			t.Errorf("Report(%v) = %d, want %d", tt.err, got, tt.code)
		}
	}
}
