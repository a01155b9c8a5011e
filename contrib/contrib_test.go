package contrib

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The servers the units run: the unit, the example environment file it
// reads, its user and state directory, and the variable of extra flags its
// ExecStart= ends with. ykval-queue shares ykvald's user, state directory
// and environment file.
var servers = []struct {
	name, unit, envFile, user, stateDir, argsVar string
}{
	{"ykksmd", "systemd/ykksmd.service", "config/ykksmd.env", "ykksm", "/var/lib/ykstack/ksm", "YKKSMD_ARGS"},
	{"ykvald", "systemd/ykvald.service", "config/ykvald.env", "ykval", "/var/lib/ykstack/val", "YKVALD_ARGS"},
	{"ykval-queue", "systemd/ykval-queue.service", "config/ykvald.env", "ykval", "/var/lib/ykstack/val", "YKVAL_QUEUE_ARGS"},
}

// dropins returns the drop-ins beside a unit (UNIT.d/*.conf).
func dropins(t *testing.T, unit string) []string {
	t.Helper()
	ds, err := filepath.Glob(unit + ".d/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

// binDir holds the servers built once for the whole test binary.
var binDir struct {
	once sync.Once
	dir  string
	out  []byte
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir.dir != "" {
		os.RemoveAll(binDir.dir)
	}
	os.Exit(code)
}

// binaries builds ykksmd, ykvald, ykval-queue, ykksm-seal and ykval-seal
// (once) and returns their directory.
func binaries(t *testing.T) string {
	t.Helper()
	binDir.once.Do(func() {
		binDir.dir, binDir.err = os.MkdirTemp("", "ykstack-contrib-bin-")
		if binDir.err != nil {
			return
		}
		// Like /usr/local/bin: the servers' users run the binaries from here.
		if binDir.err = os.Chmod(binDir.dir, 0o755); binDir.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir.dir+string(filepath.Separator), "./cmd/ykksmd", "./cmd/ykvald", "./cmd/ykval-queue", "./cmd/ykksm-seal", "./cmd/ykval-seal")
		cmd.Dir = ".."
		binDir.out, binDir.err = cmd.CombinedOutput()
	})
	if binDir.err != nil {
		t.Fatalf("go build the servers and the seal tools: %v\n%s", binDir.err, binDir.out)
	}
	return binDir.dir
}

// need returns the path of an external tool from a Debian package. Without
// it the test is skipped, or fails when CI=true.
func need(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is missing (Debian package %s); CI must have it", tool, pkg)
	}
	t.Skipf("%s is missing (apt-get install %s)", tool, pkg)
	return ""
}

// run runs a tool and returns its combined output and exit error.
func run(t *testing.T, dir, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// setting is one Key=Value line of a unit file.
type setting struct {
	section, key, value string
	line                int
}

// unitFile is a parsed systemd unit file.
type unitFile []setting

// parseUnit reads a unit file: sections, Key=Value, comments (# and ;). It
// fails on anything else, and on line continuations, which the units do not
// use.
func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var u unitFile
	section := ""
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case strings.HasSuffix(line, `\`):
			t.Fatalf("%s:%d: line continuation; keep each setting on one line", path, i+1)
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not Key=Value in a section: %q", path, i+1, line)
			}
			u = append(u, setting{section, strings.TrimSpace(k), strings.TrimSpace(v), i + 1})
		}
	}
	return u
}

// resettable are the list settings an empty assignment clears in systemd.
var resettable = map[string]bool{"ExecStart": true, "ExecReload": true, "Environment": true, "EnvironmentFile": true, "LoadCredential": true}

// loadUnit reads a unit and its drop-ins as systemd combines them: a drop-in's
// settings come after the unit's, and an empty assignment of a list setting
// clears what came before.
func loadUnit(t *testing.T, path string, dropins ...string) unitFile {
	t.Helper()
	u := parseUnit(t, path)
	for _, d := range dropins {
		for _, s := range parseUnit(t, d) {
			if s.value == "" && resettable[s.key] {
				u = slices.DeleteFunc(u, func(o setting) bool { return o.section == s.section && o.key == s.key })
				continue
			}
			u = append(u, s)
		}
	}
	return u
}

// all returns the values of a key in a section, in order.
func (u unitFile) all(section, key string) []string {
	var vs []string
	for _, s := range u {
		if s.section == section && s.key == key {
			vs = append(vs, s.value)
		}
	}
	return vs
}

// get returns the only value of a key, or fails.
func (u unitFile) get(t *testing.T, section, key string) string {
	t.Helper()
	vs := u.all(section, key)
	if len(vs) != 1 {
		t.Fatalf("[%s] %s= is set %d times, want once", section, key, len(vs))
	}
	return vs[0]
}

// environment returns the unit's Environment= assignments, later ones
// winning. A line holds one or more, separated by blanks; double quotes
// keep blanks in one (the units use no escapes).
func (u unitFile) environment(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, v := range u.all("Service", "Environment") {
		words, err := systemdWords(v)
		if err != nil {
			t.Fatalf("Environment=%s: %v", v, err)
		}
		for _, w := range words {
			k, val, ok := strings.Cut(w, "=")
			if !ok || !envName.MatchString(k) {
				t.Fatalf("Environment=%s: %q is not NAME=VALUE", v, w)
			}
			env[k] = val
		}
	}
	return env
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// systemdWords splits a value into blank-separated words, a double-quoted
// stretch being one word without its quotes. Backslashes and single quotes
// are refused: the units do not use them.
func systemdWords(v string) ([]string, error) {
	if strings.ContainsAny(v, `\'`) {
		return nil, errors.New("backslash or single quote: not expected")
	}
	var words []string
	var w strings.Builder
	in, started := false, false
	for _, r := range v {
		switch {
		case r == '"':
			in, started = !in, true
		case (r == ' ' || r == '\t') && !in:
			if started {
				words = append(words, w.String())
				w.Reset()
				started = false
			}
		default:
			w.WriteRune(r)
			started = true
		}
	}
	if in {
		return nil, errors.New("unbalanced double quote")
	}
	if started {
		words = append(words, w.String())
	}
	return words, nil
}

// credentials returns the unit's LoadCredential= IDs and paths.
func (u unitFile) credentials(t *testing.T) map[string]string {
	t.Helper()
	creds := map[string]string{}
	for _, v := range u.all("Service", "LoadCredential") {
		id, path, ok := strings.Cut(v, ":")
		if !ok || !filepath.IsAbs(path) {
			t.Fatalf("LoadCredential=%s: want ID:/absolute/path", v)
		}
		creds[id] = path
	}
	return creds
}

// envExample is one commented-out NAME=VALUE line of an example environment
// file.
type envExample struct {
	name, value string
	line        int
}

var envLine = regexp.MustCompile(`^#?([A-Z][A-Z0-9_]*)=(.*)$`)

// parseEnvExamples returns the NAME=VALUE lines of an example environment
// file, commented out or not, with systemd's double quotes removed.
func parseEnvExamples(t *testing.T, path string) []envExample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var ex []envExample
	for i, line := range strings.Split(string(b), "\n") {
		m := envLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		v := m[2]
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		ex = append(ex, envExample{m[1], v, i + 1})
	}
	return ex
}

// execArgs expands a unit's ExecStart= the way systemd does for the forms
// the units use: ${NAME} is replaced within a word, a word that is $NAME
// becomes the value's whitespace-separated words (none when empty).
func execArgs(t *testing.T, execStart string, env map[string]string) []string {
	t.Helper()
	if strings.ContainsAny(execStart, `"'\`) {
		t.Fatalf("ExecStart=%s: quoting is not expected", execStart)
	}
	var args []string
	for _, w := range strings.Fields(execStart) {
		if strings.HasPrefix(w, "$") && !strings.HasPrefix(w, "${") {
			args = append(args, strings.Fields(env[w[1:]])...)
			continue
		}
		args = append(args, os.Expand(w, func(k string) string { return env[k] }))
	}
	return args
}

// helpFlags returns the long flags a binary's --help lists.
func helpFlags(t *testing.T, bin string) []string {
	t.Helper()
	out, _ := exec.Command(bin, "--help").CombinedOutput() // exits 0 or 2; the text is what counts
	flags := regexp.MustCompile(`(?m)^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1)
	var names []string
	for _, f := range flags {
		names = append(names, f[1])
	}
	if len(names) < 5 {
		t.Fatalf("%s --help lists %d flags:\n%s", bin, len(names), out)
	}
	return names
}

// server is a ykksmd or ykvald started the way its unit starts it.
type server struct {
	name string
	addr string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
	// stopped is set once stop has run (or the server failed to start),
	// so that a second stop does nothing.
	stopped bool
	// client, when set, speaks HTTPS to the server (see tls_test.go).
	client *http.Client
}

// url returns the URL of a path on the server.
func (s *server) url(path string) string {
	if s.client != nil {
		return "https://" + s.addr + path
	}
	return "http://" + s.addr + path
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var listening = regexp.MustCompile(`msg="yk[a-z-]+ (?:metrics )?listening" addr=(\S+)`)

// rootedPaths moves the /var/lib/ykstack and /etc/ykstack of a value under
// root.
func rootedPaths(root, v string) string {
	v = strings.ReplaceAll(v, "/var/lib/ykstack", filepath.Join(root, "var/lib/ykstack"))
	return strings.ReplaceAll(v, "/etc/ykstack", filepath.Join(root, "etc/ykstack"))
}

// startUnit starts the server of a unit as systemd would: the unit's
// ExecStart= with its Environment= plus env (what an EnvironmentFile= adds),
// CREDENTIALS_DIRECTORY (and the specifier %d) naming a directory that holds
// its LoadCredential= files with the contents in creds (empty when absent, as
// tmpfiles.d makes them), and /var/lib/ykstack and /etc/ykstack moved under
// root (see newRoot). The drop-ins named are applied to the unit. Listen
// addresses should be 127.0.0.1:0 or a free port; startUnit waits for the
// server to listen. The server is stopped at the end of the test.
func startUnit(t *testing.T, name, unitPath, root string, env, creds map[string]string, dropins ...string) *server {
	t.Helper()
	s := &server{name: name, log: &syncBuffer{}, done: make(chan error, 1)}
	s.cmd = unitCommand(t, unitPath, root, env, creds, dropins...)
	args := s.cmd.Args
	pr, pw := io.Pipe()
	s.cmd.Stderr = pw
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logged := make(chan struct{}) // closed once every line is in s.log
	go func() {
		err := s.cmd.Wait()
		pw.Close()
		<-logged // the last lines, such as "… stopped", before done
		s.done <- err
	}()
	addr := make(chan string, 1)
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			fmt.Fprintln(s.log, sc.Text())
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() { s.stop(t) })
	select {
	case s.addr = <-addr:
	case err := <-s.done:
		s.stopped = true
		t.Fatalf("%s %s exited before listening: %v\n%s", name, strings.Join(args[1:], " "), err, s.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not listen within 30s:\n%s", name, s.log)
	}
	return s
}

// unitCommand returns the command of a unit's ExecStart=, prepared as
// startUnit describes.
func unitCommand(t *testing.T, unitPath, root string, env, creds map[string]string, dropins ...string) *exec.Cmd {
	t.Helper()
	u := loadUnit(t, unitPath, dropins...)
	credDir := filepath.Join(t.TempDir(), "credentials")
	if err := os.Mkdir(credDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for id := range u.credentials(t) {
		if err := os.WriteFile(filepath.Join(credDir, id), []byte(creds[id]), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	full := u.environment(t)
	maps.Copy(full, env)
	for k, v := range full {
		full[k] = strings.ReplaceAll(rootedPaths(root, v), "%d", credDir)
	}
	full["CREDENTIALS_DIRECTORY"] = credDir
	args := execArgs(t, rootedPaths(root, u.get(t, "Service", "ExecStart")), full)
	cmd := exec.Command(filepath.Join(binaries(t), filepath.Base(args[0])), args[1:]...)
	for k, v := range full {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	return cmd
}

// stopped is what each server logs last when it stops cleanly.
var stopped = map[string]string{"ykksmd": "ykksmd stopped", "ykvald": "ykvald stopped", "ykval-queue": "queue worker stopped"}

// stop sends SIGTERM, as systemctl stop does, and wants a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	select {
	case err := <-s.done:
		t.Errorf("%s exited before it was stopped: %v\n%s", s.name, err, s.log)
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("%s after SIGTERM: %v (systemd would count a failure)\n%s", s.name, err, s.log)
		}
		if !strings.Contains(s.log.String(), stopped[s.name]) {
			t.Errorf("%s did not log %q after SIGTERM:\n%s", s.name, stopped[s.name], s.log)
		}
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		t.Errorf("%s ignored SIGTERM for 30s", s.name)
	}
}

// get fetches a path from the server and returns the status and body.
func (s *server) get(t *testing.T, path string) (int, string) {
	t.Helper()
	c := s.client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Get(s.url(path))
	if err != nil {
		t.Fatalf("GET %s from %s: %v", path, s.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// readFile returns a file's contents.
func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// contains reports whether list has v.
func contains(list []string, v string) bool { return slices.Contains(list, v) }
