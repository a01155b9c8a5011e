package logscan_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/logscan"
	"github.com/ykstack/ykstack/internal/pgp/pgptest"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/internal/tlsutil/tlstest"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/seal"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/val"
)

// buildBinaries builds the commands the test runs into a temporary
// directory.
func buildBinaries(t *testing.T, names ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build the binaries with: %v", err)
	}
	bin := t.TempDir()
	args := []string{"build", "-o", bin + string(os.PathSeparator)}
	for _, n := range names {
		args = append(args, "./cmd/"+n)
	}
	build := exec.Command(goBin, args...)
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a server process started by the test, with its standard error.
type proc struct {
	name   string
	cmd    *exec.Cmd
	stderr logscan.Buffer
	done   chan error
}

var listenLine = regexp.MustCompile(`listening"? addr=(\S+)`)

// startProc starts a server and waits for its "listening addr=" line.
func startProc(t *testing.T, name, path string, args ...string) (*proc, string) {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(path, args...), done: make(chan error, 1)}
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	var copied sync.WaitGroup
	copied.Go(func() {
		sc := bufio.NewScanner(pipe)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.stderr.Write([]byte(line + "\n"))
			if m := listenLine.FindStringSubmatch(line); m != nil && !sent {
				addrs <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, pipe)
	})
	go func() {
		copied.Wait()
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.stderr.String())
		}
	})
	select {
	case a := <-addrs:
		return p, a
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before listening: %v\n%s", name, err, p.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report its address:\n%s", name, p.stderr.String())
	}
	return nil, ""
}

// stop sends SIGTERM, waits for a clean exit and returns the log.
func (p *proc) stop(t *testing.T) string {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit 0", p.name, err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("%s did not stop after SIGTERM", p.name)
	}
	return p.stderr.String()
}

// tool runs a command-line tool with stdin and returns what it printed,
// standard output and error together.
func tool(t *testing.T, path, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", filepath.Base(path), args, err, out)
	}
	return string(out)
}

// writeFile writes a private file in dir.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// importBatch imports k with ykksm-import from a KEYPROV batch signed and
// encrypted with gpg, and returns what the tool printed.
func importBatch(t *testing.T, path, dir string, k ksm.Key, args ...string) string {
	t.Helper()
	h, err := pgptest.NewHome()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ksmKey, err := h.GenKey("KSM", "ksm@example.org", "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	signer, err := h.GenKey("Generator", "gen@example.org", "ed25519", "")
	if err != nil {
		t.Fatal(err)
	}
	var batch strings.Builder
	keyprov.WriteHeader(&batch)
	batch.WriteString(keyprov.FormatLine(k, "", nil) + "\n")
	msg, err := h.Message([]byte(batch.String()), &signer, true, ksmKey)
	if err != nil {
		t.Fatal(err)
	}
	sec, err := h.ExportSecret(ksmKey, true)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := h.ExportPublic(signer, true)
	if err != nil {
		t.Fatal(err)
	}
	args = append(args, "--keyring", writeFile(t, dir, "ksm-secret.asc", string(sec)), "--keyring", writeFile(t, dir, "signer.asc", string(pub)))
	return tool(t, path, string(msg), args...)
}

// valDatabase returns the validation database for ykvald on b, and the
// --db-user/--db-passwd-file flags: on MariaDB a user of its own with a
// random password, which the scan looks for too.
func (w *world) valDatabase(t *testing.T, b testdb.Backend, dir string) (string, []string) {
	dsn := b.DSN(t)
	if b.Name != "mysql" {
		return dsn, nil
	}
	ctx := context.Background()
	target, err := sqldb.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	root, err := sqldb.Open(ctx, sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	user := "ykls_" + target.MySQL.DBName[len(target.MySQL.DBName)-8:]
	password := base64.RawURLEncoding.EncodeToString(randBytes(18))
	w.set.Text("database password", password)
	for _, q := range []string{
		"CREATE USER '" + user + "'@'%' IDENTIFIED BY '" + password + "'",
		"GRANT ALL PRIVILEGES ON " + target.MySQL.DBName + ".* TO '" + user + "'@'%'",
	} {
		if _, err := root.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", strings.Replace(q, password, "…", 1), err)
		}
	}
	t.Cleanup(func() {
		db, err := sqldb.Open(context.Background(), sqldb.Config{DSN: dsn})
		if err == nil {
			db.ExecContext(context.Background(), "DROP USER IF EXISTS '"+user+"'@'%'")
			db.Close()
		}
	})
	c := target.MySQL.Clone()
	c.User, c.Passwd = "", ""
	return "mysql:" + c.FormatDSN(), []string{"--db-user", user, "--db-passwd-file", writeFile(t, dir, "db.password", password+"\n")}
}

// TestBinaryFlows runs the ykksmd and ykvald binaries over mutual TLS, with
// sealed AES keys and API secrets (sealed by ykksm-seal and written by
// ykval-import-clients), at their default log level, through the main
// flows, and scans the standard error of every process and tool. On
// MariaDB the validation database is reached with a password.
func TestBinaryFlows(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := buildBinaries(t, "ykksmd", "ykvald", "ykksm-import", "ykksm-seal", "ykval-seal", "ykval-import-clients")
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			w := newWorld(t)
			dir := t.TempDir()
			ca := tlstest.NewCA(t, "logscan CA")
			caFile := ca.WriteCert(t, filepath.Join(dir, "ca.crt"))
			ksmCert, ksmKey := ca.Server(t).Write(t, dir, "ksm")
			valCert, valKey := ca.Server(t).Write(t, dir, "val")
			clientCert, clientKey := ca.Client(t, "ykvald").Write(t, dir, "client")
			ksmKEK := writeFile(t, dir, "ykksm.kek", seal.FormatKEK(w.kek("KSM KEK")))
			valKEK := writeFile(t, dir, "ykval.kek", seal.FormatKEK(w.kek("VAL KEK")))

			// The KSM database: k1 imported plaintext, then sealed by
			// ykksm-seal; k2 imported by ykksm-import from a signed and
			// encrypted KEYPROV batch (with gpg).
			k1, k2 := w.key(), w.key()
			ksmDSN := b.DSN(t)
			st, err := ksmsqlstore.Open(ctx, sqldb.Config{DSN: ksmDSN})
			if err != nil {
				t.Fatal(err)
			}
			keys := []ksm.Key{k1}
			if !pgptest.Available() {
				keys = append(keys, k2)
			}
			if err := st.Import(ctx, keys); err != nil {
				t.Fatal(err)
			}
			st.Close()
			w.check("ykksm-seal seal", tool(t, filepath.Join(bin, "ykksm-seal"), "", "seal", "--database", ksmDSN, "--kek-file", ksmKEK))
			if pgptest.Available() {
				out := importBatch(t, filepath.Join(bin, "ykksm-import"), dir, k2, "--database", ksmDSN, "--kek-file", ksmKEK)
				if !strings.Contains(out, "imported 1 keys, sealed under KEK") {
					t.Errorf("ykksm-import printed %q, want one key imported sealed", out)
				}
				w.check("ykksm-import", out)
			} else {
				t.Log("no gpg: k2 imported in process")
			}
			ksmd, ksmAddr := startProc(t, "ykksmd", filepath.Join(bin, "ykksmd"), "--listen", "127.0.0.1:0", "--database", ksmDSN,
				"--kek-file", ksmKEK, "--tls-cert", ksmCert, "--tls-key", ksmKey, "--tls-client-ca", caFile)

			// The validation database: clients imported with sealed secrets.
			valDSN, dbFlags := w.valDatabase(t, b, dir)
			s1, s2 := w.secret(), w.secret()
			imp := append([]string{"--database", valDSN, "--kek-file", valKEK}, dbFlags...)
			w.check("ykval-import-clients", tool(t, filepath.Join(bin, "ykval-import-clients"), "1,1,1,"+s1+",,,\n2,1,1,"+s2+",,,\n", imp...))
			w.check("ykval-seal status", tool(t, filepath.Join(bin, "ykval-seal"), "", append([]string{"status"}, imp...)...))

			args := append([]string{"--listen", "127.0.0.1:0", "--database", valDSN, "--kek-file", valKEK, "--tls-cert", valCert, "--tls-key", valKey,
				"--ksm-url", "https://" + ksmAddr + "/wsapi/decrypt", "--ksm-ca", caFile, "--revoke-ip", "127.0.0.1", "--client-cache-ttl", "0"}, dbFlags...)
			vald, valAddr := startProc(t, "ykvald", filepath.Join(bin, "ykvald"), append(args, "--ksm-cert", clientCert, "--ksm-key", clientKey)...)
			// A second ykvald without the client certificate: the KSM refuses it.
			noCert, noCertAddr := startProc(t, "ykvald without a client certificate", filepath.Join(bin, "ykvald"), args...)

			c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}, Timeout: 30 * time.Second}
			base := "https://" + valAddr
			o1 := w.otp(k1, 1, 0)
			q := "id=1&nonce=aaaaaaaaaaaaaaaaaaaaaaaa&otp=" + o1 + "&timestamp=1"
			expect(t, "verify", verify(t, c, base, signedQuery(s1, q)), val.StatusOK)
			expect(t, "the same request", verify(t, c, base, signedQuery(s1, q)), val.StatusReplayedRequest)
			expect(t, "a replayed OTP", verify(t, c, base, signedQuery(s2, "id=2&nonce=bbbbbbbbbbbbbbbbbbbbbbbb&otp="+o1)), val.StatusReplayedOTP)
			expect(t, "a bad signature", verify(t, c, base, signedQuery(s2, "id=1&nonce=bbbbbbbbbbbbbbbbbbbbbbbb&otp="+w.otp(k1, 1, 1))), val.StatusBadSignature)
			corrupt := k1.PublicName + w.otp(k2, 1, 0)[12:]
			w.set.OTP(corrupt)
			expect(t, "a corrupt OTP", verify(t, c, base, "id=1&nonce=cccccccccccccccccccccccc&otp="+corrupt), val.StatusBadOTP)
			expect(t, "an unknown key", verify(t, c, base, "id=1&nonce=cccccccccccccccccccccccc&otp="+w.otp(w.key(), 1, 0)), val.StatusBadOTP)
			expect(t, "revoke", get(t, c, base+"/wsapi/revoke?yk="+k1.PublicName+"&do=disable"), "OK Processed "+k1.PublicName+" with disable\n")
			expect(t, "verify after revoke", verify(t, c, base, "id=2&nonce=dddddddddddddddddddddddd&otp="+w.otp(k1, 4, 0)), val.StatusBadOTP)
			expect(t, "verify through the refused KSM", verify(t, c, "https://"+noCertAddr, "id=1&nonce=eeeeeeeeeeeeeeeeeeeeeeee&otp="+w.otp(k1, 2, 0)), val.StatusBackendError)
			get(t, c, base+"/metrics")

			// The KSM's own API, with a client certificate.
			pair := ca.Client(t, "operator").TLSCertificate(t)
			kc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{pair}}}, Timeout: 30 * time.Second}
			for _, o := range []string{w.otp(k1, 3, 0), corrupt, "", "xyz"} {
				get(t, kc, "https://"+ksmAddr+"/wsapi/decrypt?otp="+url.QueryEscape(o))
			}

			logs := map[string]string{"ykvald": vald.stop(t), "ykvald without a client certificate": noCert.stop(t), "ykksmd": ksmd.stop(t)}
			for _, want := range []struct{ proc, line string }{
				{"ykvald", "msg=verify status=OK client=1"}, {"ykvald", "status=BAD_SIGNATURE"}, {"ykvald", "msg=revoke"},
				{"ykvald without a client certificate", "msg=verify status=BACKEND_ERROR client=1"},
				{"ykksmd", "msg=decrypt result=ok"}, {"ykksmd", "result=corrupt"}, {"ykksmd", `msg="tls: handshake failed"`},
			} {
				if !strings.Contains(logs[want.proc], want.line) {
					t.Errorf("the log of %s lacks %q: the flows did not run as planned", want.proc, want.line)
				}
			}
			n := 0
			for name, l := range logs {
				w.check(name, l)
				n += strings.Count(l, "\n")
			}
			t.Logf("scanned %d log lines of 3 servers for %d secret strings", n, w.set.Len())
		})
	}
}
