package e2e_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
)

// phpEnv names a checkout of Yubico/yubikey-val (YK-VAL 2.4x) to test the
// sync pool against. Nothing of it is stored in this repository.
const phpEnv = "YKSTACK_YKVAL_PHP"

// php8Edits are the local edits YK-VAL 2.41 needs to run on PHP 8, applied
// at test time to a temporary copy of the checkout (never to the checkout).
// PHP 8 made curl handles objects: YK-VAL logs the array of
// curl_multi_info_read, which holds the handle, and dies on every KSM call
// ("Object of class CurlHandle could not be converted to string"), so its
// logger names objects by their class instead.
var php8Edits = []struct{ file, old, new string }{
	{"ykval-log.php", "if (is_array($value)) {", "if (is_object($value)) { $value = get_class($value); } if (is_array($value)) {"},
}

// phpConfig is the ykval-config.php the test writes: its own database, the
// ykvald as its only peer, our ykksmd as its KSM, a 1 s queue daemon.
const phpConfig = `<?php
$baseParams = array();
$baseParams['__YKVAL_DB_DSN__'] = %q;
$baseParams['__YKVAL_DB_USER__'] = %q;
$baseParams['__YKVAL_DB_PW__'] = %q;
$baseParams['__YKVAL_DB_OPTIONS__'] = array(PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION);
$baseParams['__YKVAL_SYNC_POOL__'] = array(%q);
$baseParams['__YKVAL_ALLOWED_SYNC_POOL__'] = array('127.0.0.1');
$baseParams['__YKREV_IPS__'] = array('127.0.0.1');
$baseParams['__YKRESYNC_IPS__'] = array('127.0.0.1');
$baseParams['__YKVAL_SYNC_INTERVAL__'] = 1;
$baseParams['__YKVAL_SYNC_RESYNC_TIMEOUT__'] = 10;
$baseParams['__YKVAL_SYNC_OLD_LIMIT__'] = 1;
$baseParams['__YKVAL_SYNC_FAST_LEVEL__'] = 1;
$baseParams['__YKVAL_SYNC_SECURE_LEVEL__'] = 40;
$baseParams['__YKVAL_SYNC_DEFAULT_LEVEL__'] = 60;
$baseParams['__YKVAL_SYNC_DEFAULT_TIMEOUT__'] = 1;
$baseParams['__YKVAL_SYNC_CURL_OPTS__'] = array();
$baseParams['__YKVAL_KSM_CURL_OPTS__'] = array();
function otp2ksmurls($otp, $client) {
    return array(%q . $otp);
}
`

// phpRouter maps YK-VAL's URLs to its scripts for PHP's built-in server.
const phpRouter = `<?php
$map = array(
    '/wsapi/2.0/verify' => 'ykval-verify.php',
    '/wsapi/verify' => 'ykval-verify.php',
    '/wsapi/2.0/sync' => 'ykval-sync.php',
    '/wsapi/2.0/resync' => 'ykval-resync.php',
    '/wsapi/revoke' => 'ykval-revoke.php',
);
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (!isset($map[$path])) {
    http_response_code(404);
    return true;
}
require %q . '/' . $map[$path];
`

// phpVAL is Yubico's YK-VAL run by PHP's built-in web server, with its queue
// daemon.
type phpVAL struct {
	php, dir, conf, errLog string
	port                   int
	web, queue             *exec.Cmd
	webDone, queueDone     chan error
	logs                   *syncBuffer
}

func (p *phpVAL) base() string    { return "http://127.0.0.1:" + strconv.Itoa(p.port) }
func (p *phpVAL) syncURL() string { return p.base() + "/wsapi/2.0/sync" }

func (p *phpVAL) phpArgs() []string {
	return []string{"-d", "include_path=" + p.conf + string(os.PathListSeparator) + p.dir,
		"-d", "display_errors=0", "-d", "log_errors=1", "-d", "error_log=" + p.errLog}
}

func (p *phpVAL) spawn(t *testing.T, args ...string) (*exec.Cmd, chan error) {
	t.Helper()
	cmd := exec.Command(p.php, append(p.phpArgs(), args...)...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		done <- <-done // leave the result for another cleanup
	})
	return cmd, done
}

// startWeb starts php -S and waits until it accepts connections.
func (p *phpVAL) startWeb(t *testing.T) {
	t.Helper()
	p.web, p.webDone = p.spawn(t, "-S", "127.0.0.1:"+strconv.Itoa(p.port), filepath.Join(p.conf, "router.php"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p.port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case err := <-p.webDone:
			p.webDone <- err
			t.Fatalf("php -S exited: %v\n%s", err, p.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php -S does not listen on %d:\n%s", p.port, p.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *phpVAL) stopWeb(t *testing.T) {
	t.Helper()
	p.web.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.webDone:
		p.webDone <- err
	case <-time.After(30 * time.Second):
		t.Fatal("php -S did not stop")
	}
}

// startPHPVAL copies the checkout, applies php8Edits, writes the
// configuration and starts php -S and ykval-queue.
func startPHPVAL(t *testing.T, php, checkout, dsn, peerURL, ksmURL string) *phpVAL {
	t.Helper()
	tmp := t.TempDir()
	p := &phpVAL{php: php, dir: filepath.Join(tmp, "yubikey-val"), conf: filepath.Join(tmp, "conf"),
		errLog: filepath.Join(tmp, "php-errors.log"), port: freePort(t), logs: &syncBuffer{}}
	for _, d := range []string{p.dir, p.conf} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	files, err := filepath.Glob(filepath.Join(checkout, "*.php"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s=%s: no YK-VAL PHP files there (%v)", phpEnv, checkout, err)
	}
	for _, f := range append(files, filepath.Join(checkout, "ykval-queue")) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for _, e := range php8Edits {
			if e.file != filepath.Base(f) {
				continue
			}
			switch {
			case strings.Count(s, e.old) == 1:
				s = strings.Replace(s, e.old, e.new, 1)
			case !strings.Contains(s, e.new):
				t.Fatalf("PHP 8 edit: %s has no %q (another YK-VAL version?)", e.file, e.old)
			}
		}
		if err := os.WriteFile(filepath.Join(p.dir, filepath.Base(f)), []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	cfg, err := mysql.ParseDSN(strings.TrimPrefix(dsn, "mysql:"))
	if err != nil {
		t.Fatal(err)
	}
	pdo := "mysql:dbname=" + cfg.DBName
	if cfg.Net == "unix" {
		pdo += ";unix_socket=" + cfg.Addr
	} else {
		host, port, err := net.SplitHostPort(cfg.Addr)
		if err != nil {
			t.Fatal(err)
		}
		pdo += ";host=" + host + ";port=" + port
	}
	conf := fmt.Sprintf(phpConfig, pdo, cfg.User, cfg.Passwd, peerURL, ksmURL+"?otp=")
	if err := os.WriteFile(filepath.Join(p.conf, "ykval-config.php"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf, "router.php"), fmt.Appendf(nil, phpRouter, p.dir), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			errs, _ := os.ReadFile(p.errLog)
			t.Logf("output of php:\n%s\nPHP error log:\n%s", p.logs, errs)
		}
	})
	p.startWeb(t)
	p.queue, p.queueDone = p.spawn(t, filepath.Join(p.dir, "ykval-queue"))
	return p
}

// loadPHPSchema creates YK-VAL's tables from the checkout's ykval-db.sql.
func loadPHPSchema(t *testing.T, checkout, dsn string) {
	t.Helper()
	schema, err := os.ReadFile(filepath.Join(checkout, "ykval-db.sql"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("mysql", strings.TrimPrefix(dsn, "mysql:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	for stmt := range strings.SplitSeq(string(schema), ";") {
		var lines []string
		for l := range strings.SplitSeq(stmt, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if s := strings.TrimSpace(strings.Join(lines, "\n")); s != "" {
			if _, err := db.Exec(s); err != nil {
				t.Fatalf("ykval-db.sql: %v", err)
			}
			n++
		}
	}
	if n < 3 {
		t.Fatalf("ykval-db.sql: %d statements, want the 3 tables", n)
	}
}

// verifyAt sends a verify request to base and returns the parsed answer,
// which must be well-formed and signed with the client's key.
func verifyAt(c *http.Client, base, query string) (val.Reply, error) {
	resp, err := c.Get(base + "/wsapi/2.0/verify?id=1&" + query)
	if err != nil {
		return val.Reply{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return val.Reply{}, err
	}
	r, err := val.ParseResponse(body)
	switch {
	case err != nil:
		return val.Reply{}, fmt.Errorf("%s: %q: %w", base, body, err)
	case resp.StatusCode != http.StatusOK || !r.Verify(clientKey):
		return val.Reply{}, fmt.Errorf("%s: HTTP %d %q, not signed with the client key", base, resp.StatusCode, body)
	}
	return r, nil
}

// syncAt sends a sync request and returns the body and the parsed answer,
// which must be signed with the empty key (YK-VAL's sync answers are).
func syncAt(t *testing.T, base, query string) (string, val.Reply) {
	t.Helper()
	resp, err := http.Get(base + "/wsapi/2.0/sync" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r, err := val.ParseResponse(body)
	if err != nil || resp.StatusCode != http.StatusOK || !r.Verify(nil) {
		t.Fatalf("sync answer of %s: HTTP %d %q (%v), want 200, well-formed, signed with the empty key", base, resp.StatusCode, body, err)
	}
	return string(body), r
}

// keyStateAt reads the CI key's state from a YK-VAL database (either's).
func keyStateAt(t *testing.T, who, dsn string) val.KeyState {
	t.Helper()
	st, err := valsqlstore.OpenExisting(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.KeyState(context.Background(), ciPublicID)
	if err != nil {
		t.Fatalf("%s: %v", who, err)
	}
	return k
}

// queueRows counts the rows of a YK-VAL queue table.
func queueRows(t *testing.T, dsn string) int {
	t.Helper()
	db, err := sql.Open("mysql", strings.TrimPrefix(dsn, "mysql:"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM queue").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// ksmCount returns ykksmd's count of decryptions with result.
func ksmCount(t *testing.T, ksmBase, result string) int {
	t.Helper()
	return metricAt(t, ksmBase, `ykksm_decrypt_total{result="`+result+`"}`)
}

// TestPHPInterop runs a sync pool of one ykvald and Yubico's own PHP YK-VAL
// (the checkout named by YKSTACK_YKVAL_PHP, on PHP 8 with php8Edits, its own
// MariaDB database, its queue daemon), both decrypting with one ykksmd and
// holding the same API client, and checks that they interoperate (with
// ykvald on SQLite, then on MariaDB):
//
//  1. the same sync request gets the same answer, byte for byte after h and
//     t, from both endpoints, signed with the empty key;
//  2. an OTP accepted on one (sl=100: the other answered) is REPLAYED_OTP on
//     the other, and REPLAYED_REQUEST with the same nonce; both ways; also
//     with protocol 1.0, whose sync carries a nonce the server made up;
//  3. with either server stopped, the other's verifies store their counters
//     and queue them; restarted, the queue (ykvald's worker, YK-VAL's
//     ykval-queue) drains, the two databases hold the same counters, and
//     older OTPs are refused by both;
//  4. ykclient checks YK-VAL's response signatures, and YK-VAL's decrypt
//     calls are answered by ykksmd, its refusals included;
//  5. refused verify requests get the same status and signature from both;
//  6. sl=150 is NOT_ENOUGH_ANSWERS sl=100 on both;
//  7. a key disabled at one server: the other's verify is
//     NOT_ENOUGH_ANSWERS and its queue drops the row; both ways;
//  8. resync and revoke answer the same text, and resync all drains;
//  9. a peer's sync answer alone makes an OTP REPLAYED_OTP; both ways.
//
// It skips unless YKSTACK_YKVAL_PHP is set: CI cannot download YK-VAL.
func TestPHPInterop(t *testing.T) {
	checkout := os.Getenv(phpEnv)
	if checkout == "" {
		t.Skipf("%s is not set: name a checkout of github.com/Yubico/yubikey-val to test the sync pool against YK-VAL (needs php-cli, php-mysql, php-curl and MariaDB)", phpEnv)
	}
	if testing.Short() {
		t.Skip("runs YK-VAL and the binaries")
	}
	php, err := exec.LookPath("php")
	if err != nil {
		t.Fatalf("%s is set but there is no php: %v (apt-get install php-cli php-mysql php-curl)", phpEnv, err)
	}
	if out, err := exec.Command(php, "-m").Output(); err != nil || !strings.Contains(string(out), "pdo_mysql") || !strings.Contains(string(out), "curl") {
		t.Fatalf("php -m = %q, %v: want the pdo_mysql and curl modules (apt-get install php-mysql php-curl)", out, err)
	}
	bin := buildBinaries(t, "./cmd/ykksmd", "./cmd/ykvald", "./cmd/ykclient")

	// ykksmd with the CI key.
	ksmDSN := testdb.SQLite(t)
	seedKSM(t, ksmDSN)
	_, ksmAddr := startProc(t, "ykksmd", filepath.Join(bin, "ykksmd"), "--listen", "127.0.0.1:0", "--db", ksmDSN)
	ksmBase := "http://" + ksmAddr

	for _, b := range testdb.Backends() {
		t.Run("ykvald-"+b.Name, func(t *testing.T) {
			testPHPInterop(t, bin, php, checkout, ksmBase, b)
		})
	}
}

func testPHPInterop(t *testing.T, bin, php, checkout, ksmBase string, b testdb.Backend) {
	ctx := context.Background()
	ksmURL := ksmBase + "/wsapi/decrypt"

	// YK-VAL's database: its own schema, our client written into it as
	// ykval-import-clients would.
	phpDSN := testdb.MySQL(t)
	loadPHPSchema(t, checkout, phpDSN)
	goDSN := b.DSN(t)
	for _, dsn := range []string{phpDSN, goDSN} {
		st, err := valsqlstore.Open(ctx, sqldb.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.ImportClients(ctx, []val.Client{ciClient})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
	}

	g := &valNode{name: "ykvald", port: freePort(t), dsn: goDSN}
	p := startPHPVAL(t, php, checkout, phpDSN, g.syncURL(), ksmURL)
	g.args = []string{"--listen", "127.0.0.1:" + strconv.Itoa(g.port), "--db", goDSN, "--ksm-url", ksmURL,
		"--sync-peer", p.syncURL(), "--sync-allow", "127.0.0.1",
		"--revoke-ip", "127.0.0.1", "--queue-interval", "200ms", "--queue-old-limit", "1s", "--queue-max-backoff", "1s"}
	g.start(t, bin)

	client := &http.Client{Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	servers := []struct {
		name, base string
	}{{"YK-VAL", p.base()}, {"ykvald", g.base()}}
	verify := func(step, base, query string) (val.Status, string) {
		t.Helper()
		r, err := verifyAt(client, base, query)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		return r.Status(), r.Get("sl")
	}

	// 1. The sync endpoints, side by side, on a key nobody verified.
	const other = "cccccccccccd"
	syncQ := func(counter, use int, modified, nonce string) string {
		return fmt.Sprintf("?otp=%s&modified=%s&yk_publicname=%s&yk_counter=%d&yk_use=%d&yk_high=10&yk_low=20&nonce=%s",
			other+strings.Repeat("c", 32), modified, other, counter, use, nonce)
	}
	tStamp := regexp.MustCompile(`^h=\S+\r\nt=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ0\d{3}\r\n`)
	for _, tc := range []struct {
		name, query, want string
	}{
		{"unknown key: enrolled, -1s answered", syncQ(5, 1, "1700000000", "eeeeeeeeeeeeeeee"),
			"modified=-1\r\nnonce=0000000000000000\r\nyk_publicname=" + other + "\r\nyk_counter=-1\r\nyk_use=-1\r\nyk_high=-1\r\nyk_low=-1\r\nstatus=OK\r\n\r\n"},
		{"lower counters: the stored ones answered", syncQ(4, 9, "1700000001", "ffffffffffffffff"),
			"modified=1700000000\r\nnonce=eeeeeeeeeeeeeeee\r\nyk_publicname=" + other + "\r\nyk_counter=5\r\nyk_use=1\r\nyk_high=10\r\nyk_low=20\r\nstatus=OK\r\n\r\n"},
		{"higher counters: stored, the old ones answered", syncQ(6, 0, "1700000002", "gggggggggggggggg"),
			"modified=1700000000\r\nnonce=eeeeeeeeeeeeeeee\r\nyk_publicname=" + other + "\r\nyk_counter=5\r\nyk_use=1\r\nyk_high=10\r\nyk_low=20\r\nstatus=OK\r\n\r\n"},
		{"after it", syncQ(6, 0, "1700000002", "gggggggggggggggg"),
			"modified=1700000002\r\nnonce=gggggggggggggggg\r\nyk_publicname=" + other + "\r\nyk_counter=6\r\nyk_use=0\r\nyk_high=10\r\nyk_low=20\r\nstatus=OK\r\n\r\n"},
		{"use not a number", strings.Replace(syncQ(6, 0, "1", "gggggggggggggggg"), "yk_use=0", "yk_use=x", 1), "status=MISSING_PARAMETER\r\n\r\n"},
		{"modified -1", syncQ(6, 0, "-1", "gggggggggggggggg"), "status=MISSING_PARAMETER\r\n\r\n"},
		{"nonce too short", syncQ(6, 0, "1", "ggg"), "status=MISSING_PARAMETER\r\n\r\n"},
		{"no nonce", strings.TrimSuffix(syncQ(6, 0, "1", "x"), "&nonce=x"), "status=MISSING_PARAMETER\r\n\r\n"},
		{"empty query", "", "status=MISSING_PARAMETER\r\n\r\n"},
	} {
		t.Run("sync/"+tc.name, func(t *testing.T) {
			for _, s := range servers {
				body, _ := syncAt(t, s.base, tc.query)
				if !tStamp.MatchString(body) {
					t.Errorf("%s: %q does not start with h and t lines", s.name, body)
					continue
				}
				if got := tStamp.ReplaceAllString(body, ""); got != tc.want {
					t.Errorf("%s: sync answer after h and t = %q, want %q", s.name, got, tc.want)
				}
			}
		})
	}

	// 2. Accepted on one, refused on the other; both ways.
	for i, tc := range []struct {
		name       string
		first, sec string
	}{{"YK-VAL then ykvald", p.base(), g.base()}, {"ykvald then YK-VAL", g.base(), p.base()}} {
		o := mint(3, uint8(i))
		okBefore := ksmCount(t, ksmBase, "ok")
		if st, sl := verify(tc.name, tc.first, "otp="+o+"&nonce=firstfirstfirst"+strconv.Itoa(i)+"&sl=100&timeout=10"); st != val.StatusOK || sl != "100" {
			t.Fatalf("%s: verify at the first = %s sl=%s, want OK sl=100", tc.name, st, sl)
		}
		if got := ksmCount(t, ksmBase, "ok") - okBefore; got != 1 {
			t.Errorf("%s: ykksmd decrypted %d OTPs for the first verify, want 1", tc.name, got)
		}
		if st, _ := verify(tc.name, tc.sec, "otp="+o+"&nonce=secondsecondsec"+strconv.Itoa(i)); st != val.StatusReplayedOTP {
			t.Errorf("%s: the same OTP at the second = %s, want REPLAYED_OTP", tc.name, st)
		}
		if st, _ := verify(tc.name, tc.sec, "otp="+o+"&nonce=firstfirstfirst"+strconv.Itoa(i)); st != val.StatusReplayedRequest {
			t.Errorf("%s: the same OTP and nonce at the second = %s, want REPLAYED_REQUEST", tc.name, st)
		}
	}

	// 2b. Protocol 1.0 (/wsapi/verify): the server makes up the nonce it
	// syncs (YK-VAL: 32 hex digits); the peer must take it. Both ways.
	for i, tc := range []struct {
		name       string
		first, sec string
	}{{"1.0: YK-VAL then ykvald", p.base(), g.base()}, {"1.0: ykvald then YK-VAL", g.base(), p.base()}} {
		o := mint(3, uint8(2+i))
		resp, err := client.Get(tc.first + "/wsapi/verify?id=1&otp=" + o)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if r, err := val.ParseResponse(body); err != nil || !r.Verify(clientKey) || r.Status() != val.StatusOK {
			t.Fatalf("%s: verify 1.0 at the first = %q (%v), want OK signed with the client key", tc.name, body, err)
		}
		if st, _ := verify(tc.name, tc.sec, "otp="+o+"&nonce=secondsecondsec"+strconv.Itoa(i)); st != val.StatusReplayedOTP {
			t.Errorf("%s: the same OTP at the second = %s, want REPLAYED_OTP", tc.name, st)
		}
	}

	// 3. Each server down in turn: the other queues, then drains.
	type downCase struct {
		name         string
		up           string
		stop, start  func()
		counter      uint16
		upQueueCheck func() int
	}
	goQueue := func() int { return g.queued(t, p.syncURL()) }
	phpQueue := func() int { return queueRows(t, phpDSN) }
	for _, tc := range []downCase{
		{"YK-VAL down", g.base(), func() { p.stopWeb(t) }, func() { p.startWeb(t) }, 4, goQueue},
		{"ykvald down", p.base(), func() { g.proc.stop(t) }, func() { g.start(t, bin) }, 5, phpQueue},
	} {
		tc.stop()
		const n = 5
		for u := range uint8(n) {
			if st, sl := verify(tc.name, tc.up, "otp="+mint(tc.counter, u)+"&nonce=downdowndowndown"+strconv.Itoa(int(u))+"&sl=100"); st != val.StatusNotEnoughAnswers || sl != "0" {
				t.Errorf("%s: verify %d/%d = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=0 (its only peer is down)", tc.name, tc.counter, u, st, sl)
			}
		}
		waitFor(t, tc.name+": rows queued", func() bool { return tc.upQueueCheck() == n })
		tc.start()
		waitFor(t, tc.name+": queue drained after the restart", func() bool { return tc.upQueueCheck() == 0 })
		kp, kg := keyStateAt(t, "YK-VAL", phpDSN), keyStateAt(t, "ykvald", goDSN)
		if kp.Counter != int(tc.counter) || kp.Use != n-1 {
			t.Errorf("%s: key at YK-VAL = %+v, want %d/%d", tc.name, kp, tc.counter, n-1)
		}
		if kg.Counter != kp.Counter || kg.Use != kp.Use || kg.Low != kp.Low || kg.High != kp.High || kg.Nonce != kp.Nonce || kg.Modified != kp.Modified {
			t.Errorf("%s: key at ykvald = %+v, want YK-VAL's %+v", tc.name, kg, kp)
		}
		for _, s := range servers {
			for _, u := range []uint8{0, n - 1} {
				if st, _ := verify(tc.name, s.base, "otp="+mint(tc.counter, u)+"&nonce=afterafterafter"+strconv.Itoa(int(u))); st != val.StatusReplayedOTP {
					t.Errorf("%s: OTP %d/%d at %s after the drain = %s, want REPLAYED_OTP", tc.name, tc.counter, u, s.name, st)
				}
			}
		}
	}

	// 4. ykclient against YK-VAL: signed requests, checked answers.
	ykclient := func(key string, o string, extra ...string) (int, string) {
		args := append([]string{"--url", p.base() + "/wsapi/2.0/verify", "--apikey", key}, extra...)
		out, err := exec.Command(filepath.Join(bin, "ykclient"), append(args, "1", o)...).CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("ykclient: %v", err)
		return 0, ""
	}
	good := mint(6, 2)
	corrupt := good[:43] + map[bool]string{true: "b", false: "c"}[good[43] == 'c']
	for _, tc := range []struct {
		name, key, otp string
		extra          []string
		code           int
		out            string
		ksmResult      string // the decryption ykksmd must count
	}{
		{"fresh OTP", ciSecret, mint(6, 0), []string{"--sl", "100"}, 0, "Success", "ok"},
		{"the same again", ciSecret, mint(6, 0), nil, 2, "REPLAYED_OTP", "ok"},
		{"wrong API key", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", mint(6, 1), nil, 3, "BAD_SERVER_SIGNATURE", ""},
		{"corrupt OTP (ykksmd: ERR Corrupt OTP)", ciSecret, corrupt, nil, 3, "BAD_OTP", "corrupt"},
		{"unknown key (ykksmd: ERR Unknown yubikey)", ciSecret, "cccccccccccf" + good[12:], nil, 3, "BAD_OTP", "unknown_key"},
	} {
		t.Run("ykclient/"+tc.name, func(t *testing.T) {
			var before int
			if tc.ksmResult != "" {
				before = ksmCount(t, ksmBase, tc.ksmResult)
			}
			code, out := ykclient(tc.key, tc.otp, tc.extra...)
			if code != tc.code || !strings.Contains(out, tc.out) {
				t.Errorf("ykclient = exit %d %q, want exit %d and %q", code, out, tc.code, tc.out)
			}
			if tc.ksmResult != "" {
				if got := ksmCount(t, ksmBase, tc.ksmResult) - before; got != 1 {
					t.Errorf("ykksmd counted %d decryptions %q, want 1 (YK-VAL's call)", got, tc.ksmResult)
				}
			}
		})
	}
	if st, _ := verify("after ykclient", g.base(), "otp="+mint(6, 0)+"&nonce=ykclientykclient"); st != val.StatusReplayedOTP {
		t.Errorf("ykclient's OTP at ykvald = %s, want REPLAYED_OTP", st)
	}

	// 5. Refused verify requests: the same status from both, signed with
	// the same key (the client's once the client is known, else none).
	fresh := mint(7, 0)
	for _, tc := range []struct{ name, query string }{
		{"no nonce", "id=1&otp=" + fresh},
		{"short nonce", "id=1&otp=" + fresh + "&nonce=short"},
		{"sl=0", "id=1&otp=" + fresh + "&nonce=refusedrefused00&sl=0"},
		{"sl=abc", "id=1&otp=" + fresh + "&nonce=refusedrefused00&sl=abc"},
		{"timeout=1.5", "id=1&otp=" + fresh + "&nonce=refusedrefused00&timeout=1.5"},
		{"unknown client", "id=2&otp=" + fresh + "&nonce=refusedrefused00"},
		{"client id not a number", "id=abc&otp=" + fresh + "&nonce=refusedrefused00"},
		{"no client id", "otp=" + fresh + "&nonce=refusedrefused00"},
		{"bad signature", "id=1&otp=" + fresh + "&nonce=refusedrefused00&h=AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
		{"OTP too short", "id=1&otp=idkf&nonce=refusedrefused00"},
		{"OTP too long", "id=1&otp=" + fresh + "cccccc&nonce=refusedrefused00"},
	} {
		t.Run("refused/"+tc.name, func(t *testing.T) {
			var got [2]string
			for i, s := range servers {
				resp, err := client.Get(s.base + "/wsapi/2.0/verify?" + tc.query)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				r, err := val.ParseResponse(body)
				if err != nil {
					t.Fatalf("%s: %q: %v", s.name, body, err)
				}
				signer := "neither key"
				switch {
				case r.Verify(clientKey):
					signer = "the client's key"
				case r.Verify(nil):
					signer = "the empty key"
				}
				got[i] = fmt.Sprintf("%s signed with %s", r.Status(), signer)
			}
			if got[0] != got[1] {
				t.Errorf("YK-VAL: %s; ykvald: %s, want the same", got[0], got[1])
			}
		})
	}

	// 6. sl above 100 cannot be met with one peer: both answer
	// NOT_ENOUGH_ANSWERS, sl=100 (the peer did answer).
	for i, s := range servers {
		if st, sl := verify("sl=150 at "+s.name, s.base, "otp="+mint(7, uint8(1+i))+"&nonce=slslslslslslslsl&sl=150&timeout=10"); st != val.StatusNotEnoughAnswers || sl != "100" {
			t.Errorf("sl=150 at %s = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=100", s.name, st, sl)
		}
	}

	// 7. A key disabled at one server only (revoke is not replicated): the
	// other's verify gets BAD_OTP from it, which is no answer (only OK
	// counts), so NOT_ENOUGH_ANSWERS sl=0; its queue drops the row; the
	// disabled server stored the counters all the same. Both ways.
	revoke := func(base, do string) string {
		t.Helper()
		resp, err := client.Get(base + "/wsapi/revoke?yk=" + ciPublicID + "&do=" + do)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for i, tc := range []struct {
		name, disabled, other, disabledDSN string
		otherQueue                         func() int
	}{
		{"disabled at YK-VAL", p.base(), g.base(), phpDSN, goQueue},
		{"disabled at ykvald", g.base(), p.base(), goDSN, phpQueue},
	} {
		if got, want := revoke(tc.disabled, "disable"), "OK Processed "+ciPublicID+" with disable\n"; got != want {
			t.Fatalf("%s: revoke = %q, want %q", tc.name, got, want)
		}
		u := uint8(10 + i)
		if st, sl := verify(tc.name, tc.other, "otp="+mint(7, u)+"&nonce=revokedrevoked00&sl=100&timeout=10"); st != val.StatusNotEnoughAnswers || sl != "0" {
			t.Errorf("%s: verify at the other = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=0", tc.name, st, sl)
		}
		waitFor(t, tc.name+": the other's row dropped", func() bool { return tc.otherQueue() == 0 })
		if k := keyStateAt(t, tc.name, tc.disabledDSN); k.Active || k.Counter != 7 || k.Use != int(u) {
			t.Errorf("%s: key at the disabled server = %+v, want inactive at 7/%d", tc.name, k, u)
		}
		if st, _ := verify(tc.name, tc.disabled, "otp="+mint(7, u+5)+"&nonce=revokedrevoked01"); st != val.StatusBadOTP {
			t.Errorf("%s: verify at the disabled server = %s, want BAD_OTP", tc.name, st)
		}
		if got, want := revoke(tc.disabled, "enable"), "OK Processed "+ciPublicID+" with enable\n"; got != want {
			t.Fatalf("%s: revoke = %q, want %q", tc.name, got, want)
		}
	}

	// 8. /wsapi/2.0/resync and /wsapi/revoke: the same text from both;
	// "resync all" queues every key for the peer, and both queues drain.
	for _, q := range []string{
		"/wsapi/2.0/resync?yk=all", "/wsapi/2.0/resync?yk=" + ciPublicID, "/wsapi/2.0/resync?yk=cccccccccccf",
		"/wsapi/2.0/resync?yk=ABC", "/wsapi/2.0/resync",
		"/wsapi/revoke?yk=cccccccccccf&do=enable", "/wsapi/revoke?yk=" + ciPublicID, "/wsapi/revoke?yk=" + ciPublicID + "&do=maybe",
		"/wsapi/revoke?yk=ABC&do=enable", "/wsapi/revoke",
	} {
		var got [2]string
		for i, s := range servers {
			resp, err := client.Get(s.base + q)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got[i] = string(b)
		}
		if got[0] != got[1] {
			t.Errorf("%s: YK-VAL %q, ykvald %q, want the same", q, got[0], got[1])
		}
	}
	waitFor(t, "resync rows delivered both ways", func() bool { return goQueue()+phpQueue() == 0 })
	kp, kg := keyStateAt(t, "YK-VAL", phpDSN), keyStateAt(t, "ykvald", goDSN)
	if kg.Counter != kp.Counter || kg.Use != kp.Use || kg.Nonce != kp.Nonce || kg.Modified != kp.Modified {
		t.Errorf("after resync: key at ykvald = %+v, YK-VAL %+v, want the same counters", kg, kp)
	}

	// 9. Replay votes: the peer learnt of an OTP (a sync from a third
	// server, sent here by the test) and the verifying server did not; the
	// peer's sync answer alone must make it REPLAYED_OTP. Both ways.
	for i, tc := range []struct {
		name, peer, at string
		syncUse, use   uint8
		syncNonce      string
	}{
		{"YK-VAL's answer, equal counters, other nonce", p.base(), g.base(), 0, 0, "thirdthirdthird0"},
		{"YK-VAL's answer, higher counters", p.base(), g.base(), 5, 2, "thirdthirdthird1"},
		{"ykvald's answer, equal counters, other nonce", g.base(), p.base(), 0, 0, "thirdthirdthird2"},
		{"ykvald's answer, higher counters", g.base(), p.base(), 5, 2, "thirdthirdthird3"},
	} {
		counter := 8 + i
		q := fmt.Sprintf("?otp=%s&modified=%d&yk_publicname=%s&yk_counter=%d&yk_use=%d&yk_high=1&yk_low=%d&nonce=%s",
			mint(uint16(counter), tc.syncUse), time.Now().Unix(), ciPublicID, counter, tc.syncUse, 0x1000+int(tc.syncUse)*8, tc.syncNonce)
		if _, r := syncAt(t, tc.peer, q); r.Status() != val.StatusOK {
			t.Fatalf("%s: sync to the peer = %s, want OK", tc.name, r.Status())
		}
		if st, _ := verify(tc.name, tc.at, "otp="+mint(uint16(counter), tc.use)+"&nonce=votevotevotevote&sl=100&timeout=10"); st != val.StatusReplayedOTP {
			t.Errorf("%s: verify = %s, want REPLAYED_OTP", tc.name, st)
		}
	}

	errs, _ := os.ReadFile(p.errLog)
	if strings.Contains(string(errs), "PHP Fatal") {
		t.Errorf("YK-VAL died on a request:\n%s", errs)
	}
	seen := map[string]bool{}
	for l := range strings.SplitSeq(string(errs), "\n") {
		if _, msg, ok := strings.Cut(l, "] "); ok && !seen[msg] {
			seen[msg] = true
			t.Logf("PHP: %s", msg)
		}
	}
	if strings.Contains(g.proc.logs.String(), mint(3, 0)) {
		t.Errorf("ykvald's log shows an OTP")
	}
}
