package contrib

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
)

// hardening is what issue 6 asks of both units, setting by setting.
var hardening = []struct{ key, want string }{
	{"Type", "exec"},
	{"Restart", "on-failure"},
	{"ProtectSystem", "strict"},
	{"ProtectHome", "yes"},
	{"PrivateTmp", "yes"},
	{"PrivateDevices", "yes"},
	{"NoNewPrivileges", "yes"},
	{"CapabilityBoundingSet", ""},
	{"AmbientCapabilities", ""},
	{"RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"},
	{"MemoryDenyWriteExecute", "yes"},
	{"LockPersonality", "yes"},
	{"ProtectKernelTunables", "yes"},
	{"ProtectKernelModules", "yes"},
	{"ProtectKernelLogs", "yes"},
	{"ProtectControlGroups", "yes"},
	{"RestrictNamespaces", "yes"},
	{"RestrictRealtime", "yes"},
	{"RestrictSUIDSGID", "yes"},
	{"UMask", "0077"},
	{"StateDirectoryMode", "0700"},
}

func TestUnitHardening(t *testing.T) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			u := parseUnit(t, s.unit)
			for _, h := range hardening {
				if got := u.get(t, "Service", h.key); got != h.want {
					t.Errorf("%s: %s=%s, want %s=%s", s.unit, h.key, got, h.key, h.want)
				}
			}
			if got := u.get(t, "Service", "User"); got != s.user {
				t.Errorf("%s: User=%s, want %s", s.unit, got, s.user)
			}
			if got := u.get(t, "Service", "Group"); got != s.user {
				t.Errorf("%s: Group=%s, want %s", s.unit, got, s.user)
			}
			if got := u.all("Service", "DynamicUser"); len(got) != 0 {
				t.Errorf("%s: DynamicUser=%v; the units use the sysusers.d users", s.unit, got)
			}
			if got, want := u.get(t, "Service", "StateDirectory"), strings.TrimPrefix(s.stateDir, "/var/lib/"); got != want {
				t.Errorf("%s: StateDirectory=%s, want %s", s.unit, got, want)
			}
			if got, want := u.get(t, "Service", "EnvironmentFile"), "-/etc/ykstack/"+filepath.Base(s.envFile); got != want {
				t.Errorf("%s: EnvironmentFile=%s, want %s", s.unit, got, want)
			}
			if got := u.all("Service", "SystemCallFilter"); !contains(got, "@system-service") {
				t.Errorf("%s: SystemCallFilter=%q, want @system-service among them", s.unit, got)
			}
			if got := u.get(t, "Install", "WantedBy"); got != "multi-user.target" {
				t.Errorf("%s: WantedBy=%s, want multi-user.target", s.unit, got)
			}
			exec := strings.Fields(u.get(t, "Service", "ExecStart"))
			if want := "/usr/local/bin/" + s.name; exec[0] != want { // make install's PREFIX
				t.Errorf("%s: ExecStart= runs %s, want %s", s.unit, exec[0], want)
			}
			// The database DSNs the unit sets live in its state directory.
			for k, v := range u.environment(t) {
				if strings.HasPrefix(v, "sqlite:") && !strings.HasPrefix(v, "sqlite:"+s.stateDir+"/") {
					t.Errorf("%s: Environment=%s=%s is outside StateDirectory %s", s.unit, k, v, s.stateDir)
				}
			}
		})
	}
}

// TestUnitCredentials checks that every credential a unit loads is passed to
// the server by a flag it has, that every ${CREDENTIALS_DIRECTORY} file it
// names is loaded, and that tmpfiles.d creates the source files root-only.
func TestUnitCredentials(t *testing.T) {
	tmp := parseTmpfiles(t, "systemd/tmpfiles.d/ykstack.conf")
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			u := parseUnit(t, s.unit)
			creds := u.credentials(t)
			if creds["db-password"] == "" {
				t.Errorf("%s: no LoadCredential=db-password:...", s.unit)
			}
			execStart := u.get(t, "Service", "ExecStart")
			named := regexp.MustCompile(`(--[a-z-]+)=\$\{CREDENTIALS_DIRECTORY\}/([a-z-]+)`).FindAllStringSubmatch(execStart, -1)
			used := map[string]bool{}
			flags := helpFlags(t, filepath.Join(binaries(t), s.name))
			for _, m := range named {
				used[m[2]] = true
				if creds[m[2]] == "" {
					t.Errorf("%s: ExecStart= reads credential %q, which no LoadCredential= loads", s.unit, m[2])
				}
				if !contains(flags, m[1]) {
					t.Errorf("%s: ExecStart= passes %s, which %s --help does not list", s.unit, m[1], s.name)
				}
			}
			if !strings.Contains(execStart, "--db-passwd-file=${CREDENTIALS_DIRECTORY}/db-password") {
				t.Errorf("%s: ExecStart=%s does not pass --db-passwd-file=${CREDENTIALS_DIRECTORY}/db-password", s.unit, execStart)
			}
			for id, path := range creds {
				if !used[id] {
					t.Errorf("%s: credential %q is loaded but ExecStart= never names it", s.unit, id)
				}
				e, ok := tmp[path]
				switch {
				case !ok:
					t.Errorf("%s: credential %s is not created by tmpfiles.d (a missing file stops the unit)", s.unit, path)
				case e.typ != "f" || e.mode != "0600" || e.user != "root" || e.group != "root":
					t.Errorf("tmpfiles.d: %s is %s %s %s:%s, want f 0600 root:root (read by systemd only)", path, e.typ, e.mode, e.user, e.group)
				}
			}
		})
	}
}

// TestUnitExecFlags checks that every flag a unit, its drop-ins or an
// example environment file passes is one the server has, and that the
// example settings parse.
func TestUnitExecFlags(t *testing.T) {
	// The variables each example environment file may set: those its
	// servers read (they appear in their --help), and their *_ARGS.
	type reader struct{ name, argsVar string }
	readers := map[string][]reader{}
	for _, s := range servers {
		readers[s.envFile] = append(readers[s.envFile], reader{s.name, s.argsVar})
		t.Run(s.name, func(t *testing.T) {
			flags := helpFlags(t, filepath.Join(binaries(t), s.name))
			u := parseUnit(t, s.unit)
			execStart := u.get(t, "Service", "ExecStart")
			if !strings.HasSuffix(execStart, " $"+s.argsVar) {
				t.Errorf("%s: ExecStart= does not end with $%s (extra flags from the environment file)", s.unit, s.argsVar)
			}
			for _, f := range regexp.MustCompile(`--[a-z][a-z0-9-]*`).FindAllString(execStart, -1) {
				if !contains(flags, f) {
					t.Errorf("%s: ExecStart= passes %s, which %s --help does not list", s.unit, f, s.name)
				}
			}
			// Variables the drop-ins set are read by the server, and the
			// flags in them are its own.
			help, _ := exec.Command(filepath.Join(binaries(t), s.name), "--help").CombinedOutput()
			for _, d := range dropins(t, s.unit) {
				for k, v := range parseUnit(t, d).environment(t) {
					if !strings.Contains(string(help), k) && !strings.Contains(execStart, "$"+k) {
						t.Errorf("%s: sets %s, which neither %s reads nor ExecStart= names", d, k, s.name)
					}
					for _, f := range regexp.MustCompile(`--[a-z][a-z0-9-]*`).FindAllString(v, -1) {
						if !contains(flags, f) {
							t.Errorf("%s: %s passes %s, which %s --help does not list", d, k, f, s.name)
						}
					}
				}
			}
		})
	}
	for envFile, rs := range readers {
		t.Run(envFile, func(t *testing.T) {
			examples := parseEnvExamples(t, envFile)
			if len(examples) < 3 {
				t.Fatalf("%s: %d example settings, want the database, listen address and extra flags at least", envFile, len(examples))
			}
			helps := map[string]string{}
			for _, r := range rs {
				help, _ := exec.Command(filepath.Join(binaries(t), r.name), "--help").CombinedOutput()
				helps[r.name] = string(help)
			}
		examples:
			for _, ex := range examples {
				if strings.HasSuffix(ex.name, "_DB") && ex.value != "" {
					if _, err := sqldb.ParseDSN(ex.value); err != nil {
						t.Errorf("%s:%d: %s=%s: %v", envFile, ex.line, ex.name, ex.value, err)
					}
				}
				for _, r := range rs {
					if ex.name != r.argsVar {
						continue
					}
					flags := helpFlags(t, filepath.Join(binaries(t), r.name))
					for _, f := range regexp.MustCompile(`--[a-z][a-z0-9-]*`).FindAllString(ex.value, -1) {
						if !contains(flags, f) {
							t.Errorf("%s:%d: %s passes %s, which %s --help does not list", envFile, ex.line, r.argsVar, f, r.name)
						}
					}
					continue examples
				}
				for _, r := range rs {
					if strings.Contains(helps[r.name], ex.name) {
						continue examples
					}
				}
				if ex.name != "YKVAL_REVOKE_IPS" {
					t.Errorf("%s:%d: %s is not a variable its servers read (see their --help)", envFile, ex.line, ex.name)
				}
			}
		})
	}
}

// verifiableUnit writes a copy of a unit whose ExecStart= runs the freshly
// built binary (systemd-analyze verify wants an executable there).
func verifiableUnit(t *testing.T, unit string) string {
	t.Helper()
	b, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "/usr/local/bin/", binaries(t)+"/")
	dir := t.TempDir()
	p := filepath.Join(dir, filepath.Base(unit))
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	// Its drop-ins: systemd-analyze reads UNIT.d/*.conf beside the unit.
	dropins, _ := filepath.Glob(unit + ".d/*.conf")
	for _, d := range dropins {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		writeFiles(t, dir, map[string]string{filepath.Base(unit) + ".d/" + filepath.Base(d): string(b)})
	}
	return p
}

// TestDropInCredentials checks the drop-ins that load secrets: each
// credential is one the server reads by itself (its --help names the
// systemd credential) or one a variable of the drop-in points a flag at
// (%d/ID, %d being the credentials directory), and tmpfiles.d does not
// create its file (an empty KEK, pool key or TLS key stops the server).
// systemd-analyze verifies the drop-ins with their units
// (TestSystemdAnalyzeVerify).
func TestDropInCredentials(t *testing.T) {
	tmp := parseTmpfiles(t, "systemd/tmpfiles.d/ykstack.conf")
	want := map[string]string{ // drop-in -> a credential it must load
		"systemd/ykksmd.service.d/kek.conf":           "ykksm-kek",
		"systemd/ykksmd.service.d/tls.conf":           "tls-key",
		"systemd/ykvald.service.d/sync-key.conf":      "sync-key",
		"systemd/ykvald.service.d/tls.conf":           "tls-key",
		"systemd/ykvald.service.d/ksm-tls.conf":       "ksm-client-key",
		"systemd/ykvald.service.d/ksm-kek.conf":       "ykksm-kek",
		"systemd/ykvald.service.d/kek.conf":           "ykval-kek",
		"systemd/ykval-queue.service.d/sync-key.conf": "sync-key",
	}
	seen := 0
	for _, s := range servers {
		help, _ := exec.Command(filepath.Join(binaries(t), s.name), "--help").CombinedOutput()
		for _, d := range dropins(t, s.unit) {
			u := parseUnit(t, d)
			creds := u.credentials(t)
			if len(creds) == 0 {
				continue
			}
			seen++
			if id := want[d]; id != "" && creds[id] == "" {
				t.Errorf("%s loads %v, want the credential %s", d, creds, id)
			}
			var vars strings.Builder
			for _, v := range u.environment(t) {
				vars.WriteString(v + "\n")
			}
			for id, path := range creds {
				byItself := strings.Contains(string(help), "systemd credential "+id)
				viaFlag := regexp.MustCompile(`(?m)(^|[= ])%d/` + regexp.QuoteMeta(id) + `($|\s)`).MatchString(vars.String())
				if !byItself && !viaFlag {
					t.Errorf("%s: credential %s is neither read by %s itself nor named as %%d/%s in its variables", d, id, s.name, id)
				}
				if _, ok := tmp[path]; ok {
					t.Errorf("tmpfiles.d creates %s: an empty file would stop %s", path, s.name)
				}
			}
		}
	}
	if seen < len(want) {
		t.Errorf("%d drop-ins load credentials, want %d at least", seen, len(want))
	}
}

// TestSystemdAnalyzeVerify runs systemd-analyze verify on each unit. It
// exits 0 even for unknown or malformed settings (it only warns and ignores
// them), so any output at all is a failure.
func TestSystemdAnalyzeVerify(t *testing.T) {
	tool := need(t, "systemd-analyze", "systemd")
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			p := verifiableUnit(t, s.unit)
			out, err := run(t, filepath.Dir(p), tool, "verify", "--man=no", p)
			if err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("systemd-analyze verify %s: %v\n%s", s.unit, err, out)
			}
		})
	}
}

// TestSystemdAnalyzeVerifyCatchesMistakes makes sure the check above would
// see a misspelt setting, a bad value and a missing binary.
func TestSystemdAnalyzeVerifyCatchesMistakes(t *testing.T) {
	tool := need(t, "systemd-analyze", "systemd")
	good, err := os.ReadFile(verifiableUnit(t, servers[0].unit))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, from, to string }{
		{"misspelt key", "ProtectSystem=strict", "ProtectSytem=strict"},
		{"bad value", "ProtectSystem=strict", "ProtectSystem=very"},
		{"missing binary", binaries(t) + "/ykksmd", "/nonexistent/ykksmd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(good), tc.from, tc.to, 1)
			if bad == string(good) {
				t.Fatalf("%q not in the unit", tc.from)
			}
			p := filepath.Join(t.TempDir(), "ykksmd.service")
			if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := run(t, filepath.Dir(p), tool, "verify", "--man=no", p)
			if err == nil && strings.TrimSpace(out) == "" {
				t.Errorf("systemd-analyze verify passed a unit with %s", tc.name)
			}
		})
	}
}

// maxExposure is the highest "systemd-analyze security" exposure the units
// may have (2.0 on its 0 to 10 scale, the top of "OK").
const maxExposure = 20

// TestSystemdAnalyzeSecurity scores each unit's sandbox offline.
func TestSystemdAnalyzeSecurity(t *testing.T) {
	tool := need(t, "systemd-analyze", "systemd")
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			p := verifiableUnit(t, s.unit)
			out, err := run(t, filepath.Dir(p), tool, "security", "--offline=true", "--no-pager",
				fmt.Sprintf("--threshold=%d", maxExposure), p)
			m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d) (\w+)`).FindStringSubmatch(out)
			if err != nil || m == nil {
				t.Fatalf("systemd-analyze security %s: %v (threshold %d.%d)\n%s", s.unit, err, maxExposure/10, maxExposure%10, out)
			}
			t.Logf("%s: exposure %s %s", s.unit, m[1], m[2])
		})
	}
}

// tmpfilesEntry is one line of a tmpfiles.d file.
type tmpfilesEntry struct{ typ, mode, user, group string }

func parseTmpfiles(t *testing.T, path string) map[string]tmpfilesEntry {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]tmpfilesEntry{}
	for i, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) < 5 {
			t.Fatalf("%s:%d: want Type Path Mode User Group: %q", path, i+1, line)
		}
		m[f[1]] = tmpfilesEntry{f[0], f[2], f[3], f[4]}
	}
	return m
}

// TestSysusersTmpfiles creates the users and the files into a scratch root
// with the real systemd-sysusers and systemd-tmpfiles, and checks the
// result against the units.
func TestSysusersTmpfiles(t *testing.T) {
	sysusers := need(t, "systemd-sysusers", "systemd")
	tmpfiles := need(t, "systemd-tmpfiles", "systemd")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-tmpfiles needs root to chown; CI runs as root")
		}
		t.Skip("systemd-tmpfiles needs root to chown")
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := run(t, "", sysusers, "--root="+root, abs("systemd/sysusers.d/ykstack.conf")); err != nil {
		t.Fatalf("systemd-sysusers: %v\n%s", err, out)
	}
	passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(passwd)), "\n") {
		f := strings.Split(line, ":")
		uids[f[0]] = f[2]
		if f[6] != "/usr/sbin/nologin" && f[6] != "/sbin/nologin" {
			t.Errorf("user %s has shell %s, want nologin", f[0], f[6])
		}
	}
	// A password that is already there survives another run.
	pw := filepath.Join(root, "etc/ykstack/ksm-db-password")
	for i := range 2 {
		if out, err := run(t, "", tmpfiles, "--root="+root, "--create", abs("systemd/tmpfiles.d/ykstack.conf")); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("systemd-tmpfiles --create (run %d): %v\n%s", i+1, err, out)
		}
		if i == 0 {
			if err := os.WriteFile(pw, []byte("secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if b, err := os.ReadFile(pw); err != nil || string(b) != "secret\n" {
		t.Errorf("after a second systemd-tmpfiles run, %s = %q, %v; want the password kept", pw, b, err)
	}

	for _, s := range servers {
		u := parseUnit(t, s.unit)
		uid, ok := uids[s.user]
		if !ok {
			t.Errorf("sysusers.d does not create %s, the User= of %s", s.user, s.unit)
			continue
		}
		checkPath(t, root, s.stateDir, uid, 0o700|os.ModeDir)
		for _, path := range u.credentials(t) {
			checkPath(t, root, path, "0", 0o600)
		}
	}
}

// checkPath checks the owner and mode of path under root.
func checkPath(t *testing.T, root, path, uid string, mode os.FileMode) {
	t.Helper()
	fi, err := os.Stat(filepath.Join(root, path))
	if err != nil {
		t.Errorf("systemd-tmpfiles did not create %s: %v", path, err)
		return
	}
	if got := fi.Mode() & (os.ModeDir | os.ModePerm); got != mode {
		t.Errorf("%s: mode %v, want %v", path, got, mode)
	}
	if got := fmt.Sprint(fi.Sys().(*syscall.Stat_t).Uid); got != uid {
		t.Errorf("%s: owner uid %s, want %s", path, got, uid)
	}
}
