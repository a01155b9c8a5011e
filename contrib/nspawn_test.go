package contrib

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// writeFiles writes name -> content under dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestUnitsUnderSystemd boots a real systemd in a container
// (systemd-nspawn --volatile=yes: an empty /etc and /var over the host's
// read-only /usr) with the units, drop-ins, sysusers.d and tmpfiles.d files
// installed as docs/OPERATIONS.md says, and the programs in /usr/local/bin.
// systemd creates the users and files and starts ykksmd, ykvald and
// ykval-queue in their sandboxes (seccomp filter, no capabilities, W^X,
// private users, read-only system, credentials: the KEK drop-ins with sealed
// AES keys and API secrets, the TLS drop-ins and the pool key drop-ins with %d). ykvald asks
// ykksmd over mutual TLS. The test validates OTPs through them from outside,
// with the container's ykvald in a sync pool with a ykvald outside: a replay
// across the pool is refused, and an OTP accepted while the peer was down
// reaches it through ykval-queue. systemctl reload (ExecReload=) makes ykksmd
// serve a renewed certificate, and ykksm-seal runs through systemd-run, as
// docs/OPERATIONS.md shows. It shows the hardening
// leaves the Go servers, SQLite in WAL mode and the credentials working;
// then the container halts and all must stop cleanly.
func TestUnitsUnderSystemd(t *testing.T) {
	nspawn := need(t, "systemd-nspawn", "systemd-container")
	need(t, "dbus-daemon", "dbus") // the system bus that systemd-run needs, as on a Debian server
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-nspawn needs root; CI runs as root")
		}
		t.Skip("systemd-nspawn needs root")
	}
	bin := binaries(t)

	// Databases as ykksm-import and ykval-gen-clients would leave them,
	// copied into the state directories at boot.
	// The KSM's AES keys are sealed under a KEK that the drop-in
	// ykksmd.service.d/kek.conf loads as a credential.
	seed := t.TempDir()
	raw := seal.GenerateKEK()
	kek, err := seal.NewKEK(raw)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := ksmsqlstore.OpenOptions(t.Context(), sqldb.Config{DSN: "sqlite:" + filepath.Join(seed, "ykksm.db")}, ksmsqlstore.Options{Sealer: seal.New(kek)})
	if err != nil {
		t.Fatal(err)
	}
	if err := sealed.Import(t.Context(), []ksm.Key{testKey}); err != nil {
		t.Fatal(err)
	}
	sealed.Close()
	// The API secrets are sealed too, under a VAL KEK that the drop-in
	// ykvald.service.d/kek.conf loads.
	rawValKEK := valseal.GenerateKEK()
	valKEK, err := valseal.NewKEK(rawValKEK)
	if err != nil {
		t.Fatal(err)
	}
	valDB, err := valsqlstore.OpenOptions(t.Context(), sqldb.Config{DSN: "sqlite:" + filepath.Join(seed, "ykval.db")}, valsqlstore.Options{Sealer: valseal.New(valKEK)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := valDB.ImportClients(t.Context(), []val.Client{testClient}); err != nil {
		t.Fatal(err)
	}
	valDB.Close()

	// The container's ykvald is in a sync pool with a ykvald outside,
	// started from its unit too (with an in-process KSM), sharing a pool key
	// that the drop-ins sync-key.conf hand over; the container's queue is
	// worked by ykval-queue.service.
	ksmPort, valPort, queuePort, peerPort := freePort(t), freePort(t), freePort(t), freePort(t)
	var rawPoolKey [32]byte
	rand.Read(rawPoolKey[:])
	poolKey := base64.StdEncoding.EncodeToString(rawPoolKey[:]) + "\n"
	peerRoot := newRoot(t)
	seedVAL(t, rooted(peerRoot, "sqlite:/var/lib/ykstack/val/ykval.db"))
	seedKSM(t, rooted(peerRoot, "sqlite:/var/lib/ykstack/val/ykksm.db"))
	writeConf(t, peerRoot, "sync-peer = "+syncURL(valPort), "sync-allow = 127.0.0.1")
	startPeer := func() *server {
		return startUnit(t, "ykvald", servers[1].unit, peerRoot, map[string]string{
			"YKVAL_LISTEN": fmt.Sprintf("127.0.0.1:%d", peerPort), "YKVAL_KSM_URL": "", "YKVAL_KSM_DB": "sqlite:/var/lib/ykstack/val/ykksm.db",
		}, map[string]string{"sync-key": poolKey}, valSyncKeyDropin)
	}
	peer := startPeer()

	// ykksmd serves HTTPS with the drop-in tls.conf and admits ykvald by its
	// client certificate (ksm-tls.conf); the files are in /etc/ykstack/tls,
	// a directory of the host's, so that the test can renew a certificate.
	tlsRoot := t.TempDir()
	tlsDir := rooted(tlsRoot, "/etc/ykstack/tls")
	if err := os.MkdirAll(tlsDir, 0o755); err != nil {
		t.Fatal(err)
	}
	ksmTLS := writeTLS(t, tlsRoot, "ykksmd")
	clientKey := newECKey(t)
	clientCert, _ := ksmTLS.clientCA.issue(t, clientKey, "val1.example.net", false)
	for name, b := range map[string][]byte{
		"ykksmd.key": keyPEM(t, ksmTLS.key), "ykvald-client.key": keyPEM(t, clientKey),
		"ksm-ca.crt": ksmTLS.serverCA.pem, "ykvald-client.crt": clientCert,
	} {
		mode := os.FileMode(0o644) // certificates; keys root only
		if strings.HasSuffix(name, ".key") {
			mode = 0o600
		}
		replaceFile(t, filepath.Join(tlsDir, name), b, mode)
	}

	writeFiles(t, seed, map[string]string{
		"ksm.kek":  seal.FormatKEK(raw),
		"val.kek":  valseal.FormatKEK(rawValKEK),
		"sync.key": poolKey,
		"ykvald.conf": fmt.Sprintf("sync-peer = %s\nsync-allow = 127.0.0.1\nqueue-worker = false\nqueue-interval = 200ms\nqueue-max-backoff = 1s\n",
			syncURL(peerPort)),
		"report.sh": `
ps -o user=,comm= -C ykksmd,ykvald,ykval-queue > /out/ps
stat -c "%U %G %a %n" /etc/ykstack/*-password /etc/ykstack/ykvald.conf /var/lib/ykstack/ksm /var/lib/ykstack/val > /out/stat
for p in ykksmd ykvald ykval-queue; do
	grep -E "^(Seccomp|NoNewPrivs|CapEff|CapBnd):" /proc/$(pidof $p)/status | sed "s/^/$p /"
done > /out/status
# The way docs/OPERATIONS.md runs the KSM tools: as ykksm, the KEK as a credential.
systemd-run --pipe --wait --quiet -p User=ykksm -p LoadCredential=ykksm-kek:/etc/ykstack/ksm.kek -- ykksm-seal status --database sqlite:/var/lib/ykstack/ksm/ykksm.db > /out/seal-status 2>&1
systemd-run --pipe --wait --quiet -p User=ykval -p LoadCredential=ykval-kek:/etc/ykstack/val.kek -- ykval-seal status --database sqlite:/var/lib/ykstack/val/ykval.db > /out/val-seal-status 2>&1
`})

	etc := t.TempDir()
	out := t.TempDir()
	unit := func(p string) string { return readFile(t, p) }
	writeFiles(t, etc, map[string]string{
		"systemd/system/ykksmd.service":                      unit("systemd/ykksmd.service"),
		"systemd/system/ykvald.service":                      unit("systemd/ykvald.service"),
		"systemd/system/ykksmd.service.d/kek.conf":           unit("systemd/ykksmd.service.d/kek.conf"),
		"systemd/system/ykval-queue.service":                 unit("systemd/ykval-queue.service"),
		"systemd/system/ykvald.service.d/sync-key.conf":      unit("systemd/ykvald.service.d/sync-key.conf"),
		"systemd/system/ykval-queue.service.d/sync-key.conf": unit("systemd/ykval-queue.service.d/sync-key.conf"),
		"systemd/system/ykvald.service.d/kek.conf":           unit("systemd/ykvald.service.d/kek.conf"),
		"systemd/system/ykksmd.service.d/tls.conf":           unit("systemd/ykksmd.service.d/tls.conf"),
		"systemd/system/ykvald.service.d/ksm-tls.conf":       unit("systemd/ykvald.service.d/ksm-tls.conf"),
		"sysusers.d/ykstack.conf":                            unit("systemd/sysusers.d/ykstack.conf"),
		"tmpfiles.d/ykstack.conf":                            unit("systemd/tmpfiles.d/ykstack.conf"),
		// The environment files as an administrator edits them.
		"ykstack/ykksmd.env": fmt.Sprintf("YKKSM_LISTEN=127.0.0.1:%d\n", ksmPort),
		"ykstack/ykvald.env": fmt.Sprintf("YKVAL_LISTEN=127.0.0.1:%d\nYKVAL_KSM_URL=https://127.0.0.1:%d/wsapi/decrypt\nYKVAL_QUEUE_ARGS=--listen=127.0.0.1:%d\n",
			valPort, ksmPort, queuePort),
		// Test scaffolding: the seed, a report of what systemd made, a
		// target that starts only these.
		"systemd/system/ykstack-seed.service": `[Unit]
Description=ykstack test: provisioned databases
After=systemd-sysusers.service systemd-tmpfiles-setup.service
Before=ykksmd.service ykvald.service ykval-queue.service
[Service]
Type=oneshot
ExecStart=/usr/bin/install -o ykksm -g ykksm -m 0600 /seed/ykksm.db /var/lib/ykstack/ksm/ykksm.db
ExecStart=/usr/bin/install -o ykval -g ykval -m 0600 /seed/ykval.db /var/lib/ykstack/val/ykval.db
ExecStart=/usr/bin/install -o root -g root -m 0600 /seed/ksm.kek /etc/ykstack/ksm.kek
ExecStart=/usr/bin/install -o root -g root -m 0600 /seed/val.kek /etc/ykstack/val.kek
ExecStart=/usr/bin/install -o root -g root -m 0600 /seed/sync.key /etc/ykstack/sync.key
ExecStart=/usr/bin/install -o root -g ykval -m 0640 /seed/ykvald.conf /etc/ykstack/ykvald.conf
`,
		"systemd/system/ykstack-report.service": `[Unit]
Description=ykstack test: report
After=dbus.socket ykksmd.service ykvald.service ykval-queue.service
[Service]
Type=oneshot
ExecStart=/bin/sh /seed/report.sh
`,
		// systemctl reload of both servers when the test asks for it.
		"systemd/system/ykstack-reload.path": `[Unit]
Description=ykstack test: reload on request
[Path]
PathExists=/out/reload
`,
		"systemd/system/ykstack-reload.service": `[Unit]
Description=ykstack test: systemctl reload
[Service]
Type=oneshot
ExecStart=/bin/rm -f /out/reload
ExecStart=/bin/systemctl reload ykksmd.service ykvald.service
ExecStart=/bin/touch /out/reloaded
`,
		"systemd/system/ykstack-test.target": `[Unit]
Description=ykstack test
Wants=dbus.socket ykstack-reload.path ykstack-seed.service ykksmd.service ykvald.service ykval-queue.service ykstack-report.service
`,
	})
	args := []string{"-q", "-D", "/", "--volatile=yes", "--register=no", "--keep-unit",
		"--bind-ro=" + bin + ":/usr/local/bin", "--bind-ro=" + seed + ":/seed", "--bind=" + out + ":/out"}
	// Directories systemd only reads, and single files in /etc/ykstack,
	// where systemd-tmpfiles must create the password files.
	for _, d := range []string{"systemd/system", "sysusers.d", "tmpfiles.d", "ykstack/ykksmd.env", "ykstack/ykvald.env"} {
		args = append(args, "--bind-ro="+filepath.Join(etc, d)+":/etc/"+d)
	}
	args = append(args, "--bind="+tlsDir+":/etc/ykstack/tls")
	args = append(args, "-b", "--", "systemd.unit=ykstack-test.target", "systemd.firstboot=off",
		"systemd.journald.forward_to_console=1", "systemd.log_color=0", "systemd.show_status=1")

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, nspawn, args...)
	console := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = console, console
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	halted := false
	halt := func() {
		if halted {
			return
		}
		halted = true
		cmd.Process.Signal(syscall.SIGTERM) // nspawn halts the container cleanly
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("systemd-nspawn: %v", err)
			}
		case <-time.After(time.Minute):
			cmd.Process.Kill()
			t.Errorf("the container did not halt within a minute")
		}
	}
	defer halt()
	failed := func(format string, a ...any) {
		t.Helper()
		halt()
		t.Fatalf(format+"\nconsole:\n%s", append(a, clean(console.String()))...)
	}

	// Prometheus, say, with a client certificate of ykksmd's client CA.
	scraperKey := newECKey(t)
	scraperCert, _ := ksmTLS.clientCA.issue(t, scraperKey, "prometheus", false)
	k := &server{name: "ykksmd", addr: fmt.Sprintf("127.0.0.1:%d", ksmPort), client: httpsClient(t, ksmTLS.serverCA, scraperCert, scraperKey)}
	v := &server{name: "ykvald", addr: fmt.Sprintf("127.0.0.1:%d", valPort)}
	q := &server{name: "ykval-queue", addr: fmt.Sprintf("127.0.0.1:%d", queuePort)}
	for _, s := range []*server{k, v, q} {
		deadline := time.Now().Add(90 * time.Second)
		for {
			conn, err := net.DialTimeout("tcp", s.addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case err := <-done:
				done <- err
				failed("the container stopped before %s listened: %v", s.name, err)
			default:
			}
			if strings.Contains(console.String(), s.name+".service: Failed") {
				failed("%s.service failed", s.name)
			}
			if time.Now().After(deadline) {
				failed("%s did not listen on %s within 90s", s.name, s.addr)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if s == q {
			continue // it serves /metrics only
		}
		if code, body := s.get(t, "/healthz"); code != 200 || body != "OK\n" {
			t.Errorf("%s /healthz = %d %q, want 200 \"OK\\n\"", s.name, code, body)
		}
	}
	v.log = console
	// An OTP accepted in the container is a replay at its peer outside: the
	// sync, signed with the pool key of the credential, got there.
	first := mint(t, 5, 0)
	for i, want := range []val.Status{val.StatusOK, val.StatusReplayedOTP} {
		if got := verify(t, v, first); got != want {
			t.Errorf("verify #%d of one OTP under systemd = %s, want %s", i+1, got, want)
		}
	}
	if got := verify(t, peer, first); got != val.StatusReplayedOTP {
		t.Errorf("the OTP accepted under systemd, at its sync peer = %s, want REPLAYED_OTP", got)
	}
	// With the peer down, the next OTP waits in the queue; ykval-queue in the
	// container delivers it once the peer is back.
	peer.stop(t)
	second := mint(t, 5, 1)
	if got := verify(t, v, second); got != val.StatusNotEnoughAnswers {
		t.Errorf("verify under systemd with the sync peer down = %s, want NOT_ENOUGH_ANSWERS", got)
	}
	peer = startPeer()
	waitFor(t, "ykval-queue under systemd to deliver the queued OTP", func() bool {
		return scrape(t, v).value("ykval_queue_length", map[string]string{"peer": syncURL(peerPort)}) == "0"
	})
	if got := verify(t, peer, second); got != val.StatusReplayedOTP {
		t.Errorf("the queued OTP at the sync peer = %s, want REPLAYED_OTP", got)
	}
	if got := scrape(t, q).value("ykval_sync_requests_total", map[string]string{"peer": syncURL(peerPort), "result": "ok"}); got == "0" || got == "" {
		t.Errorf("ykval-queue under systemd: ykval_sync_requests_total{result=\"ok\"} = %q, want the delivery counted", got)
	}

	// A certificate renewed for the same key, and systemctl reload.
	renewed, serial := ksmTLS.serverCA.issue(t, ksmTLS.key, "127.0.0.1", true)
	replaceFile(t, filepath.Join(tlsDir, "ykksmd.crt"), renewed, 0o644)
	writeFiles(t, out, map[string]string{"reload": ""})
	waitFor(t, "systemctl reload in the container", func() bool {
		_, err := os.Stat(filepath.Join(out, "reloaded"))
		return err == nil
	})
	if got := servedSerial(t, k.addr, ksmTLS.serverCA); got.Cmp(serial) != 0 {
		t.Errorf("after systemctl reload ykksmd, it serves the certificate with serial %v, want the renewed %v", got, serial)
	}
	if got := verify(t, v, mint(t, 5, 2)); got != val.StatusOK {
		t.Errorf("verify after systemctl reload = %s, want OK", got)
	}
	if got := scrape(t, k).value("ykksm_decrypt_total", map[string]string{"result": "ok"}); got != "4" {
		t.Errorf("ykksmd under systemd: ykksm_decrypt_total{result=\"ok\"} = %q, want 4", got)
	}
	if got := scrape(t, v).value("process_open_fds", nil); got == "" {
		t.Errorf("ykvald under systemd exports no process_open_fds (ProcSubset=pid hides what the process collector reads?)")
	}
	halt()

	con := clean(console.String())
	for _, want := range []string{
		"ykksmd listening", "ykvald listening", "ykksmd stopped", "ykvald stopped",
		`sync="1 peers, pool key"`, "ykval-queue running", "queue worker stopped",
		"tls=true mutual_tls=true", "client=val1.example.net", "tls: certificate reloaded", "tls: KSM client certificate reloaded",
		`msg="ykksmd: AES keys sealed at rest" kek=` + kek.ID() + ` kek_source="credential /run/credentials/ykksmd.service/ykksm-kek"`,
		`msg="ykvald: API secrets sealed at rest" kek=` + valKEK.ID() + ` kek_source="credential /run/credentials/ykvald.service/ykval-kek"`,
	} {
		if !strings.Contains(con, want) {
			t.Errorf("console has no %q", want)
		}
	}
	if regexp.MustCompile(`(?m)(ykksmd|ykvald|ykval-queue)\.service: (Failed|Main process exited, code=(exited|killed|dumped), status=[1-9])`).MatchString(con) {
		t.Errorf("a server failed under systemd")
	}
	ps := readFile(t, filepath.Join(out, "ps"))
	for _, want := range []string{`(?m)^ykksm\s+ykksmd$`, `(?m)^ykval\s+ykvald$`, `(?m)^ykval\s+ykval-queue$`} {
		if !regexp.MustCompile(want).MatchString(ps) {
			t.Errorf("ps in the container:\n%s\nwant ykksmd as ykksm, ykvald and ykval-queue as ykval", ps)
		}
	}
	stat := readFile(t, filepath.Join(out, "stat"))
	for _, want := range []string{
		"root root 600 /etc/ykstack/ksm-db-password", "root root 600 /etc/ykstack/val-db-password",
		"root ykval 640 /etc/ykstack/ykvald.conf",
		"ykksm ykksm 700 /var/lib/ykstack/ksm", "ykval ykval 700 /var/lib/ykstack/val",
	} {
		if !strings.Contains(stat, want+"\n") {
			t.Errorf("stat in the container:\n%s\nwant %q", stat, want)
		}
	}
	status := readFile(t, filepath.Join(out, "status"))
	for _, name := range []string{"ykksmd", "ykvald", "ykval-queue"} {
		for _, want := range []string{"Seccomp:\t2", "NoNewPrivs:\t1", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000"} {
			if !strings.Contains(status, name+" "+want+"\n") {
				t.Errorf("/proc/PID/status of %s in the container:\n%s\nwant %q (seccomp filter, no new privileges, no capabilities)", name, status, want)
			}
		}
	}
	if st := readFile(t, filepath.Join(out, "seal-status")); !strings.Contains(st, "mode: sealed\n") || !strings.Contains(st, "KEK "+kek.ID()+": 1 (the KEK of --kek-file)") {
		t.Errorf("ykksm-seal status through systemd-run, as ykksm with the KEK as a credential:\n%s\nwant mode: sealed and KEK %s: 1 (the KEK of --kek-file)", st, kek.ID())
	}
	if st := readFile(t, filepath.Join(out, "val-seal-status")); !strings.Contains(st, "mode: sealed\n") || !strings.Contains(st, "KEK "+valKEK.ID()+": 1 (the KEK of --kek-file)") {
		t.Errorf("ykval-seal status through systemd-run, as ykval with the KEK as a credential:\n%s\nwant mode: sealed and KEK %s: 1 (the KEK of --kek-file)", st, valKEK.ID())
	}
	if t.Failed() {
		t.Logf("console:\n%s", con)
	}
}

// clean drops the terminal escapes of a console log.
func clean(s string) string {
	return regexp.MustCompile(`\x1b\[[0-9;]*[a-zA-Z]`).ReplaceAllString(s, "")
}
