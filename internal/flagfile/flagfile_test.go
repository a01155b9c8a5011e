package flagfile_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/flagfile"
)

func TestParse(t *testing.T) {
	in := "\ufeff# comment\n\n  listen = 0.0.0.0:8080  \nsync-peer=https://a/s\nsync-peer = https://b/s\nnotes = \"  spaced # not a comment \\\"q\\\" \\\\ \"\nempty =\n"
	got, err := flagfile.Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []flagfile.Setting{
		{3, "listen", "0.0.0.0:8080"}, {4, "sync-peer", "https://a/s"}, {5, "sync-peer", "https://b/s"},
		{6, "notes", `  spaced # not a comment "q" \ `}, {7, "empty", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Parse = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"novalue", "--listen = x", "a b = c", `x = "open`, `x = "a" b`, `x = "a\q"`, "= v"} {
		if _, err := flagfile.Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
	_, err = flagfile.Parse([]byte("bad one\nok = 1\nbad two\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1") || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("Parse(two bad lines) = %v, want both reported", err)
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.conf")
	os.WriteFile(path, []byte("listen = 1.2.3.4:5\npeer = https://a/s\npeer = https://b/s\ntimeout = 3s\nverbose = true\nunknown = 1\n"), 0o600)

	newFS := func() (*pflag.FlagSet, *string, *[]string, *time.Duration, *bool) {
		fs := pflag.NewFlagSet("t", pflag.ContinueOnError)
		listen := fs.String("listen", "127.0.0.1:1", "")
		peers := fs.StringArray("peer", nil, "")
		timeout := fs.Duration("timeout", time.Second, "")
		verbose := fs.Bool("verbose", false, "")
		fs.String("config", "", "")
		return fs, listen, peers, timeout, verbose
	}

	fs, listen, peers, timeout, verbose := newFS()
	fs.Parse([]string{"--peer", "https://cli/s"})
	if err := flagfile.Apply(fs, path, flagfile.Options{IgnoreUnknown: true}); err != nil {
		t.Fatal(err)
	}
	if *listen != "1.2.3.4:5" || !slices.Equal(*peers, []string{"https://cli/s"}) || *timeout != 3*time.Second || !*verbose {
		t.Errorf("after Apply: listen %q, peers %q, timeout %v, verbose %v; want the file's except the command line's peers", *listen, *peers, *timeout, *verbose)
	}
	fs, _, peers, _, _ = newFS()
	fs.Parse(nil)
	err := flagfile.Apply(fs, path, flagfile.Options{})
	if err == nil || !strings.Contains(err.Error(), `x.conf:6: unknown setting "unknown"`) {
		t.Errorf("Apply with an unknown setting = %v", err)
	}
	if !slices.Equal(*peers, []string{"https://a/s", "https://b/s"}) {
		t.Errorf("repeated setting: peers = %q", *peers)
	}

	os.WriteFile(path, []byte("timeout = soon\nconfig = other.conf\n"), 0o600)
	fs, _, _, _, _ = newFS()
	err = flagfile.Apply(fs, path, flagfile.Options{Reserved: []string{"config"}})
	if err == nil || !strings.Contains(err.Error(), "x.conf:1: timeout") || !strings.Contains(err.Error(), `x.conf:2: "config" cannot be set`) {
		t.Errorf("Apply(bad value, reserved) = %v, want both reported", err)
	}
	if err := flagfile.Apply(fs, filepath.Join(dir, "missing.conf"), flagfile.Options{}); err == nil {
		t.Error("Apply(missing file) succeeded")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("listen = 0.0.0.0:8080\n# c\nx = \"a \\\" b\"\n")
	f.Add("a=b=c\n\"q\" = 1\n")
	f.Fuzz(func(t *testing.T, s string) {
		settings, err := flagfile.Parse([]byte(s))
		if err != nil {
			return
		}
		for _, st := range settings {
			if st.Name == "" || strings.ContainsAny(st.Name, " \t\"") || strings.HasPrefix(st.Name, "-") || st.Line < 1 {
				t.Fatalf("Parse(%q) gave setting %+v", s, st)
			}
		}
	})
}
