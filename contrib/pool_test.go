package contrib

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/flagfile"
	"github.com/ykstack/ykstack/val"
)

// The pool key drop-ins of ykvald and ykval-queue.
const (
	valSyncKeyDropin   = "systemd/ykvald.service.d/sync-key.conf"
	queueSyncKeyDropin = "systemd/ykval-queue.service.d/sync-key.conf"
)

// valPool is ykksmd and two ykvald servers started by their units as a sync
// pool, each in its own root (its own SQLite database and /etc/ykstack):
// each ykvald.conf lists the other server, allows loopback, and the drop-in
// sync-key.conf hands both the same pool key.
type valPool struct {
	ksm   *server
	vals  [2]*server
	roots [2]string
	urls  [2]string // sync URLs
	env   [2]map[string]string
	key   string
}

// syncURL is the sync URL of a server on a loopback port.
func syncURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d/wsapi/2.0/sync", port) }

// startPool starts a pool; extra are more ykvald.conf lines of each server.
func startPool(t *testing.T, extra [2][]string) *valPool {
	t.Helper()
	p := &valPool{}
	var raw [32]byte
	rand.Read(raw[:])
	p.key = base64.StdEncoding.EncodeToString(raw[:]) + "\n"

	kroot := newRoot(t)
	kenv := parseUnit(t, servers[0].unit).environment(t)
	seedKSM(t, rooted(kroot, kenv["YKKSM_DB"]))
	p.ksm = startUnit(t, "ykksmd", servers[0].unit, kroot, map[string]string{"YKKSM_LISTEN": "127.0.0.1:0"}, nil)

	ports := [2]int{freePort(t), freePort(t)}
	for i := range p.vals {
		p.urls[i] = syncURL(ports[i])
	}
	for i := range p.vals {
		p.roots[i] = newRoot(t)
		seedVAL(t, rooted(p.roots[i], parseUnit(t, servers[1].unit).environment(t)["YKVAL_DB"]))
		conf := append([]string{"sync-peer = " + p.urls[1-i], "sync-allow = 127.0.0.1"}, extra[i]...)
		writeConf(t, p.roots[i], conf...)
		p.env[i] = map[string]string{
			"YKVAL_LISTEN":  fmt.Sprintf("127.0.0.1:%d", ports[i]),
			"YKVAL_KSM_URL": "http://" + p.ksm.addr + "/wsapi/decrypt",
		}
	}
	for i := range p.vals {
		p.vals[i] = p.startVal(t, i)
	}
	return p
}

// startVal starts (or restarts) the i-th ykvald of the pool.
func (p *valPool) startVal(t *testing.T, i int) *server {
	t.Helper()
	return startUnit(t, "ykvald", servers[1].unit, p.roots[i], p.env[i],
		map[string]string{"sync-key": p.key}, valSyncKeyDropin)
}

// writeConf writes /etc/ykstack/ykvald.conf under root.
func writeConf(t *testing.T, root string, lines ...string) {
	t.Helper()
	if err := os.WriteFile(rooted(root, "/etc/ykstack/ykvald.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond for up to 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
	}
}

// TestUnitsPool runs two ykvald servers from ykvald.service as a sync pool
// configured the way contrib/config/ykvald.conf and the drop-in
// sync-key.conf describe it, with ykval-queue.service working the queue of
// the first: an OTP accepted by one is a replay at the other, the pool key
// is required, and an OTP accepted while the peer is down reaches it through
// ykval-queue once it is back.
func TestUnitsPool(t *testing.T) {
	queue := []string{"queue-interval = 100ms", "queue-max-backoff = 500ms"}
	// The first server leaves its queue to ykval-queue.service.
	p := startPool(t, [2][]string{append([]string{"queue-worker = false"}, queue...), queue})
	if log := p.vals[0].log.String(); !strings.Contains(log, `sync="1 peers, pool key"`) {
		t.Errorf("ykvald with ykvald.conf and sync-key.conf does not log sync=\"1 peers, pool key\":\n%s", log)
	}
	if log := p.vals[1].log.String(); !strings.Contains(log, `sync="1 peers, pool key, queue worker"`) {
		t.Errorf("ykvald does not log sync=\"1 peers, pool key, queue worker\":\n%s", log)
	}
	q := startUnit(t, "ykval-queue", servers[2].unit, p.roots[0], map[string]string{"YKVAL_QUEUE_ARGS": "--listen=127.0.0.1:0"},
		map[string]string{"sync-key": p.key}, queueSyncKeyDropin)

	first := mint(t, 20, 0)
	if got := verify(t, p.vals[0], first); got != val.StatusOK {
		t.Fatalf("verify at the first server = %s, want OK", got)
	}
	if got := verify(t, p.vals[1], first); got != val.StatusReplayedOTP {
		t.Errorf("the same OTP at the second server = %s, want REPLAYED_OTP", got)
	}
	m0, m1 := scrape(t, p.vals[0]), scrape(t, p.vals[1])
	for _, c := range []struct {
		m      metrics
		name   string
		labels map[string]string
		want   string
	}{
		{m0, "ykval_sync_requests_total", map[string]string{"peer": p.urls[1], "result": "ok"}, "1"},
		{m0, "ykval_sync_outcomes_total", map[string]string{"result": "ok"}, "1"},
		{m1, "ykval_sync_received_total", map[string]string{"status": "OK"}, "1"},
		{m1, "ykval_sync_outcomes_total", map[string]string{"result": "ok"}, "0"},
	} {
		if got := c.m.value(c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %q, want %s", c.name, c.labels, got, c.want)
		}
	}

	// Without the pool key's signature, a sync request is refused.
	q1 := url.Values{"otp": {mint(t, 21, 0)}, "modified": {"1700000000"}, "yk_publicname": {testKey.PublicName},
		"yk_counter": {"21"}, "yk_use": {"0"}, "yk_high": {"0"}, "yk_low": {"0"}, "nonce": {"aaaaaaaaaaaaaaaa"}}
	if _, body := p.vals[1].get(t, "/wsapi/2.0/sync?"+q1.Encode()); !strings.Contains(body, "status=OPERATION_NOT_ALLOWED") {
		t.Errorf("unsigned sync request to a server with the pool key: %q, want status=OPERATION_NOT_ALLOWED", body)
	}
	if got := scrape(t, p.vals[1]).value("ykval_sync_received_total", map[string]string{"status": "OPERATION_NOT_ALLOWED"}); got != "1" {
		t.Errorf("ykval_sync_received_total{status=OPERATION_NOT_ALLOWED} = %q, want 1", got)
	}

	// The peer goes down: the next OTP gets no answer from it and waits in
	// the queue, which ykval-queue delivers once the peer is back.
	p.vals[1].stop(t)
	second := mint(t, 22, 0)
	if got := verify(t, p.vals[0], second); got != val.StatusNotEnoughAnswers {
		t.Errorf("verify with the only peer down = %s, want NOT_ENOUGH_ANSWERS", got)
	}
	queued := func() string {
		return scrape(t, p.vals[0]).value("ykval_queue_length", map[string]string{"peer": p.urls[1]})
	}
	waitFor(t, "the OTP to wait in the queue", func() bool { return queued() == "1" })
	failed := func() string {
		return scrape(t, q).value("ykval_sync_requests_total", map[string]string{"peer": p.urls[1], "result": "error"})
	}
	waitFor(t, "ykval-queue to try the peer that is down", func() bool { return failed() != "0" && failed() != "" })
	p.vals[1] = p.startVal(t, 1)
	waitFor(t, "ykval-queue to empty the queue", func() bool { return queued() == "0" })
	if got := verify(t, p.vals[1], second); got != val.StatusReplayedOTP {
		t.Errorf("the queued OTP at the restarted peer = %s, want REPLAYED_OTP", got)
	}
	if got := scrape(t, q).value("ykval_sync_requests_total", map[string]string{"peer": p.urls[1], "result": "ok"}); got != "1" {
		t.Errorf("ykval-queue: ykval_sync_requests_total{result=ok} = %q, want 1", got)
	}
}

// TestQueueUnitSingleNode starts ykval-queue.service on a single server (an
// empty ykvald.conf, as tmpfiles.d creates it): it exits at once with
// status 0, which systemd takes as a clean stop, not a failure to restart.
func TestQueueUnitSingleNode(t *testing.T) {
	root := newRoot(t)
	seedVAL(t, rooted(root, parseUnit(t, servers[2].unit).environment(t)["YKVAL_DB"]))
	out, err := unitCommand(t, servers[2].unit, root, nil, nil).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing to do") {
		t.Errorf("ykval-queue on a single node: %v\n%s\nwant exit status 0 and \"nothing to do\"", err, out)
	}
}

// TestConfExample checks contrib/config/ykvald.conf: each commented example
// setting, uncommented, parses as ykvald's --config reads it and names a
// flag of ykvald's; the pool settings are flags of ykval-queue too, which
// reads the same file.
func TestConfExample(t *testing.T) {
	const path = "config/ykvald.conf"
	var lines []string
	for _, l := range strings.Split(readFile(t, path), "\n") {
		if rest, ok := strings.CutPrefix(l, "#"); ok && strings.Contains(rest, " = ") && !strings.HasPrefix(rest, " ") {
			lines = append(lines, rest)
		}
	}
	settings, err := flagfile.Parse([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatalf("%s, uncommented: %v", path, err)
	}
	if len(settings) < 10 {
		t.Fatalf("%s: %d example settings, want the pool's, the levels and the queue's", path, len(settings))
	}
	valFlags := helpFlags(t, filepath.Join(binaries(t), "ykvald"))
	queueFlags := helpFlags(t, filepath.Join(binaries(t), "ykval-queue"))
	for _, s := range settings {
		if !slices.Contains(valFlags, "--"+s.Name) {
			t.Errorf("%s: %q is not a flag of ykvald", path, s.Name)
		}
		if (s.Name == "sync-peer" || strings.HasPrefix(s.Name, "queue-") && s.Name != "queue-worker") && !slices.Contains(queueFlags, "--"+s.Name) {
			t.Errorf("%s: %q is not a flag of ykval-queue, which reads the same file", path, s.Name)
		}
	}
}
