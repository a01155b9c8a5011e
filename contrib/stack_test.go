package contrib

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valclient"
)

// The YubiKey and API client the stack tests provision.
var (
	testKey    = ksm.Key{SerialNr: 1, PublicName: "cccccccccccb", InternalName: "a1b2c3d4e5f6", AESKey: "00112233445566778899aabbccddeeff", Active: true, Hardware: true}
	testClient = val.Client{ID: 1, Active: true, Created: 1700000000, Secret: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 20))}
)

// mint returns an OTP of testKey at (counter, use).
func mint(t *testing.T, counter uint16, use uint8) string {
	t.Helper()
	key, err := otp.ParseKey(testKey.AESKey)
	if err != nil {
		t.Fatal(err)
	}
	uid, err := otp.ParseUID(testKey.InternalName)
	if err != nil {
		t.Fatal(err)
	}
	return otp.Generate(testKey.PublicName, key, otp.Token{UID: uid, Counter: counter, Use: use, TimestampLow: 0x1234, TimestampHigh: 0x56, Random: 0x789a})
}

// rooted moves a /var/lib/ykstack or /etc/ykstack path or DSN under root.
func rooted(root, s string) string { return rootedPaths(root, s) }

// newRoot makes a scratch root with the directories and files tmpfiles.d
// makes: the state directories, and /etc/ykstack with its files empty.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for path, e := range parseTmpfiles(t, "systemd/tmpfiles.d/ykstack.conf") {
		p := rooted(root, path)
		switch e.typ {
		case "d":
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
		case "f":
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("tmpfiles.d: %s has type %s; newRoot knows d and f", path, e.typ)
		}
	}
	return root
}

// seedKSM imports testKey into a KSM database, as ykksm-import would.
func seedKSM(t *testing.T, dsn string) {
	t.Helper()
	st, err := ksmsqlstore.Open(t.Context(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Import(t.Context(), []ksm.Key{testKey}); err != nil {
		t.Fatal(err)
	}
}

// seedVAL adds testClient to a validation database, as ykval-gen-clients
// would.
func seedVAL(t *testing.T, dsn string) {
	t.Helper()
	st, err := valsqlstore.Open(t.Context(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.ImportClients(t.Context(), []val.Client{testClient}); err != nil {
		t.Fatal(err)
	}
}

// stack is ykksmd and ykvald started by their units, on SQLite, with
// testKey and testClient provisioned.
type stack struct{ ksm, val *server }

func startStack(t *testing.T) stack {
	t.Helper()
	root := newRoot(t)
	ku, vu := parseUnit(t, servers[0].unit), parseUnit(t, servers[1].unit)
	kenv, venv := ku.environment(t), vu.environment(t)
	seedKSM(t, rooted(root, kenv["YKKSM_DB"]))
	seedVAL(t, rooted(root, venv["YKVAL_DB"]))

	k := startUnit(t, "ykksmd", servers[0].unit, root, map[string]string{"YKKSM_LISTEN": "127.0.0.1:0"}, nil)
	// ykvald's default KSM is the local ykksmd: its URL names ykksmd's
	// default address; point it at the port this test got.
	ksmURL, err := url.Parse(venv["YKVAL_KSM_URL"])
	if err != nil || ksmURL.Host != kenv["YKKSM_LISTEN"] || ksmURL.Path != "/wsapi/decrypt" {
		t.Fatalf("ykvald.service YKVAL_KSM_URL=%s, want http://%s/wsapi/decrypt (ykksmd.service's YKKSM_LISTEN)", venv["YKVAL_KSM_URL"], kenv["YKKSM_LISTEN"])
	}
	ksmURL.Host = k.addr
	v := startUnit(t, "ykvald", servers[1].unit, root, map[string]string{"YKVAL_LISTEN": "127.0.0.1:0", "YKVAL_KSM_URL": ksmURL.String()}, nil)
	return stack{k, v}
}

// verify asks a ykvald for a verdict on an OTP as testClient.
func verify(t *testing.T, s *server, otp string) val.Status {
	t.Helper()
	c, err := valclient.New(valclient.Config{URLs: []string{s.url("/wsapi/2.0/verify")}, ClientID: testClient.ID, APIKey: testClient.Secret, HTTPClient: s.client})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Verify(t.Context(), otp)
	var se *valclient.StatusError
	if err != nil && !errors.As(err, &se) {
		t.Fatalf("verify %s: %v\n%s", otp[:12], err, s.log)
	}
	return res.Status
}

// TestUnitsServeOTPs starts ykksmd and ykvald from their units (command
// line, environment, credentials) and validates OTPs through both, as a
// fresh install with the example files does.
func TestUnitsServeOTPs(t *testing.T) {
	st := startStack(t)
	for _, s := range []*server{st.ksm, st.val} {
		if code, body := s.get(t, "/healthz"); code != 200 || body != "OK\n" {
			t.Errorf("%s /healthz = %d %q, want 200 \"OK\\n\"", s.name, code, body)
		}
	}
	if _, body := st.ksm.get(t, "/wsapi/decrypt?otp=notanotp"); body != "ERR Invalid OTP format\n" {
		t.Errorf("ykksmd decrypt of a bad OTP = %q, want \"ERR Invalid OTP format\\n\"", body)
	}
	first := mint(t, 1, 0)
	for i, want := range []val.Status{val.StatusOK, val.StatusReplayedOTP} {
		if got := verify(t, st.val, first); got != want {
			t.Errorf("verify #%d of one OTP = %s, want %s", i+1, got, want)
		}
	}
	if got := verify(t, st.val, mint(t, 1, 1)); got != val.StatusOK {
		t.Errorf("verify of the next OTP = %s, want OK", got)
	}

	// The counters the alerts watch count these requests. The replayed OTP
	// is decrypted too: the KSM's verdict comes before the replay check.
	km, vm := scrape(t, st.ksm), scrape(t, st.val)
	for _, c := range []struct {
		m      metrics
		name   string
		labels map[string]string
		want   string
	}{
		{km, "ykksm_decrypt_total", map[string]string{"result": "ok"}, "3"},
		{km, "ykksm_decrypt_total", map[string]string{"result": "invalid_format"}, "1"},
		{km, "ykksm_decrypt_total", map[string]string{"result": "database_error"}, "0"},
		{vm, "ykval_verify_total", map[string]string{"status": "OK", "client": "1"}, "2"},
		{vm, "ykval_verify_total", map[string]string{"status": "REPLAYED_OTP", "client": "1"}, "1"},
		{vm, "ykval_ksm_duration_seconds_count", map[string]string{"result": "ok"}, "3"},
	} {
		if got := c.m.value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %q, want %s", c.name, c.labels, got, c.want)
		}
	}
}

// TestUnitEmbeddedKSM runs ykvald with the in-process KSM the way
// config/ykvald.env describes it: the unit's KSM URL emptied, the key
// database in ykvald's own state directory.
func TestUnitEmbeddedKSM(t *testing.T) {
	env := map[string]string{}
	for _, ex := range parseEnvExamples(t, servers[1].envFile) {
		if (ex.name == "YKVAL_KSM_URL" && ex.value == "") || ex.name == "YKVAL_KSM_DB" {
			env[ex.name] = ex.value
		}
	}
	dsn, ok := env["YKVAL_KSM_DB"]
	if _, emptied := env["YKVAL_KSM_URL"]; !ok || !emptied {
		t.Fatalf("%s has no example YKVAL_KSM_URL= (empty) and YKVAL_KSM_DB=: %v", servers[1].envFile, env)
	}
	if !strings.HasPrefix(dsn, "sqlite:"+servers[1].stateDir+"/") {
		t.Errorf("example YKVAL_KSM_DB=%s is outside ykvald's state directory %s", dsn, servers[1].stateDir)
	}
	root := newRoot(t)
	vu := parseUnit(t, servers[1].unit)
	seedKSM(t, rooted(root, dsn))
	seedVAL(t, rooted(root, vu.environment(t)["YKVAL_DB"]))
	env["YKVAL_LISTEN"] = "127.0.0.1:0"
	v := startUnit(t, "ykvald", servers[1].unit, root, env, nil)
	if !regexp.MustCompile(`ksm="default: in-process"`).MatchString(v.log.String()) {
		t.Errorf("ykvald does not say it decrypts in-process:\n%s", v.log)
	}
	if got := verify(t, v, mint(t, 3, 0)); got != val.StatusOK {
		t.Errorf("verify with the in-process KSM = %s, want OK", got)
	}
}

// TestUnitsMariaDB runs both units against MariaDB as the users that
// config/mariadb-grants.sql creates, with the passwords handed over as
// systemd credentials, and checks that the grants are as narrow as they say.
func TestUnitsMariaDB(t *testing.T) {
	admin := testdb.RequireMySQL(t)
	kdsn, vdsn := testdb.MySQL(t), testdb.MySQL(t)
	// The tables and the provisioning, as the administrator does them.
	seedKSM(t, kdsn)
	seedVAL(t, vdsn)
	kdb, vdb := dbName(t, kdsn), dbName(t, vdsn)

	// The grants file, for these databases, over TCP, with users and
	// passwords of this test only.
	var suffix [4]byte
	rand.Read(suffix[:])
	tag := hex.EncodeToString(suffix[:])
	users := map[string]string{} // user -> password
	sqlText := readFile(t, "config/mariadb-grants.sql")
	for _, u := range regexp.MustCompile(`CREATE USER '(\w+)'@'localhost' IDENTIFIED BY '([^']+)'`).FindAllStringSubmatch(sqlText, -1) {
		pw := "pw-" + tag + "-" + u[1]
		users[u[1]] = pw
		sqlText = strings.ReplaceAll(sqlText, "'"+u[2]+"'", "'"+pw+"'")
	}
	for _, u := range []string{"ykksmreader", "ykksmimporter", "ykval_verifier"} {
		if users[u] == "" {
			t.Fatalf("config/mariadb-grants.sql creates no user %s", u)
		}
	}
	sqlText = strings.NewReplacer(
		"'localhost'", "'127.0.0.1'",
		" ykksm.", " `"+kdb+"`.",
		" ykval.", " `"+vdb+"`.",
		"'ykksmreader'", "'ykksmreader_"+tag+"'",
		"'ykksmimporter'", "'ykksmimporter_"+tag+"'",
		"'ykval_verifier'", "'ykval_verifier_"+tag+"'",
	).Replace(sqlText)
	adb, err := sqldb.Open(t.Context(), sqldb.Config{DSN: "mysql:" + testdb.AdminDSN()})
	if err != nil {
		t.Fatal(err)
	}
	defer adb.Close()
	t.Cleanup(func() {
		for u := range users {
			adb.Exec("DROP USER IF EXISTS '" + u + "_" + tag + "'@'127.0.0.1'")
		}
	})
	for _, stmt := range strings.Split(sqlText, ";\n") {
		var lines []string
		for _, l := range strings.Split(stmt, "\n") {
			if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "--") {
				lines = append(lines, l)
			}
		}
		if len(lines) == 0 {
			continue
		}
		if _, err := adb.ExecContext(t.Context(), strings.Join(lines, " ")); err != nil {
			t.Fatalf("config/mariadb-grants.sql: %s: %v", strings.Join(lines, " "), err)
		}
	}
	dsn := func(user, db string) string {
		return "mysql:" + user + "_" + tag + "@tcp(" + admin.Addr + ")/" + db
	}

	root := newRoot(t)
	k := startUnit(t, "ykksmd", servers[0].unit, root,
		map[string]string{"YKKSM_LISTEN": "127.0.0.1:0", "YKKSM_DB": dsn("ykksmreader", kdb)},
		map[string]string{"db-password": users["ykksmreader"] + "\n"})
	v := startUnit(t, "ykvald", servers[1].unit, root,
		map[string]string{"YKVAL_LISTEN": "127.0.0.1:0", "YKVAL_DB": dsn("ykval_verifier", vdb), "YKVAL_KSM_URL": "http://" + k.addr + "/wsapi/decrypt"},
		map[string]string{"db-password": users["ykval_verifier"] + "\n"})
	first := mint(t, 7, 0)
	for i, want := range []val.Status{val.StatusOK, val.StatusReplayedOTP} {
		if got := verify(t, v, first); got != want {
			t.Errorf("verify #%d of one OTP on MariaDB = %s, want %s", i+1, got, want)
		}
	}
	if got := verify(t, v, mint(t, 7, 1)); got != val.StatusOK {
		t.Errorf("verify of the next OTP on MariaDB = %s, want OK", got)
	}

	// ykksm-import's user adds keys.
	imp, err := ksmsqlstore.Open(t.Context(), sqldb.Config{DSN: dsn("ykksmimporter", kdb), Password: users["ykksmimporter"]})
	if err != nil {
		t.Fatalf("open the KSM database as ykksmimporter: %v", err)
	}
	defer imp.Close()
	second := testKey
	second.SerialNr, second.PublicName = 2, "cccccccccccd"
	if err := imp.Import(t.Context(), []ksm.Key{second}); err != nil {
		t.Errorf("import as ykksmimporter: %v", err)
	}

	// And the grants are no wider than they say.
	for _, c := range []struct{ user, db, stmt string }{
		{"ykksmreader", kdb, "UPDATE yubikeys SET active = 0"},
		{"ykksmreader", kdb, "INSERT INTO yubikeys (serialnr, publicname, created, internalname, aeskey, lockcode, creator) VALUES (3, 'ccccccccccce', '', '', '', '', '')"},
		{"ykksmimporter", kdb, "UPDATE yubikeys SET aeskey = ''"},
		{"ykksmimporter", kdb, "DELETE FROM yubikeys"},
		{"ykval_verifier", vdb, "UPDATE yubikeys SET yk_publicname = 'x'"},
		{"ykval_verifier", vdb, "DELETE FROM clients"},
		{"ykval_verifier", vdb, "DROP TABLE queue"},
	} {
		db, err := sqldb.Open(t.Context(), sqldb.Config{DSN: dsn(c.user, c.db), Password: users[c.user]})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(t.Context(), c.stmt); err == nil {
			t.Errorf("%s may %s; config/mariadb-grants.sql should not allow it", c.user, c.stmt)
		}
		db.Close()
	}
}

// dbName returns the database name of a "mysql:" DSN.
func dbName(t *testing.T, dsn string) string {
	t.Helper()
	tg, err := sqldb.ParseDSN(dsn)
	if err != nil || tg.MySQL == nil || tg.MySQL.DBName == "" {
		t.Fatalf("ParseDSN(%q) = %+v, %v; want a MySQL database", dsn, tg, err)
	}
	return tg.MySQL.DBName
}
