package e2e_test

import (
	"bufio"
	"context"
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
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
)

// poolEnv clears every setting ykvald and ykksmd take from the environment.
func poolEnv() []string {
	env := os.Environ()
	for _, v := range []string{"YKKSM_DB", "YKKSM_LISTEN", "YKVAL_DB", "YKVAL_DB_PASSWORD", "YKVAL_KSM_URL", "YKVAL_KSM_DB", "YKVAL_LISTEN",
		"YKVAL_REVOKE_IPS", "YKVAL_SYNC_PEERS", "YKVAL_SYNC_ALLOW", "YKVAL_RESYNC_ALLOW", "YKVAL_SYNC_KEY_FILE", "YKVAL_CONFIG"} {
		env = append(env, v+"=")
	}
	return env
}

// freePort returns a loopback port nobody listens on (for a moment): the
// servers of a pool must know each other's addresses before they start.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// proc is a server process started by a test, with its log.
type proc struct {
	name string
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

var listenLine = regexp.MustCompile(`listening"? addr=(\S+)`)

// startProc starts a server binary, waits for its "listening addr=" log
// line and returns the process; it is killed when the test ends, and its
// log is shown if the test failed.
func startProc(t *testing.T, name, path string, args ...string) (*proc, string) {
	t.Helper()
	p := &proc{name: name, cmd: exec.Command(path, args...), logs: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Env = poolEnv()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrs := make(chan string, 1)
	var copied sync.WaitGroup
	copied.Go(func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := listenLine.FindStringSubmatch(line); m != nil && !sent {
				addrs <- m[1]
				sent = true
			}
		}
		io.Copy(io.Discard, stderr)
	})
	go func() {
		copied.Wait()
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, p.logs)
		}
	})
	select {
	case a := <-addrs:
		return p, a
	case err := <-p.done:
		p.done <- err
		t.Fatalf("%s exited before listening: %v\n%s", name, err, p.logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not report its address:\n%s", name, p.logs)
	}
	return nil, ""
}

// stop sends SIGTERM and checks that the process exits 0.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Errorf("%s after SIGTERM: %v, want exit 0", p.name, err)
		}
	case <-time.After(60 * time.Second):
		t.Errorf("%s did not stop after SIGTERM", p.name)
	}
}

// valNode is one ykvald of the pool.
type valNode struct {
	name string
	port int
	dsn  string
	args []string
	proc *proc
}

func (n *valNode) base() string    { return "http://127.0.0.1:" + strconv.Itoa(n.port) }
func (n *valNode) syncURL() string { return n.base() + "/wsapi/2.0/sync" }

func (n *valNode) start(t *testing.T, bin string) {
	t.Helper()
	n.proc, _ = startProc(t, "ykvald "+n.name, filepath.Join(bin, "ykvald"), n.args...)
}

// verify sends a verify request and returns the status and sl of the
// answer, which must be well-formed and signed with the client's key.
func (n *valNode) verify(c *http.Client, otp, nonce, extra string) (val.Status, string, error) {
	resp, err := c.Get(n.base() + "/wsapi/2.0/verify?id=1&otp=" + otp + "&nonce=" + nonce + extra)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", "", err
	}
	r, err := val.ParseResponse(body)
	switch {
	case err != nil:
		return "", "", fmt.Errorf("%s: %q: %w", n.name, body, err)
	case resp.StatusCode != http.StatusOK || !r.Verify(clientKey):
		return "", "", fmt.Errorf("%s: HTTP %d %q, not signed with the client key", n.name, resp.StatusCode, body)
	}
	return r.Status(), r.Get("sl"), nil
}

// queued returns the node's ykval_queue_length for peer from /metrics.
func (n *valNode) queued(t *testing.T, peer string) int {
	t.Helper()
	return metricAt(t, n.base(), `ykval_queue_length{peer="`+peer+`"}`)
}

// metricAt returns the value of one series, named with its labels as
// /metrics prints it, from the /metrics of the server at base.
func metricAt(t *testing.T, base, series string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(m), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s/metrics: %q", base, line)
			}
			return n
		}
	}
	t.Fatalf("%s/metrics has no %s", base, series)
	return 0
}

// keyState reads the node's state of the CI key from its database.
func (n *valNode) keyState(t *testing.T) val.KeyState {
	t.Helper()
	st, err := valsqlstore.OpenExisting(context.Background(), sqldb.Config{DSN: n.dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	k, err := st.KeyState(context.Background(), ciPublicID)
	if err != nil {
		t.Fatalf("%s: %v", n.name, err)
	}
	return k
}

// waitFor polls cond until it holds, failing after a generous deadline (a
// condition that must come true, not a speed requirement).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 60 s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPool runs a sync pool as an operator would: three ykvald processes on
// loopback ports, each with its own database (SQLite files, then three
// MariaDB databases), sharing one ykksmd, each listing the other two as
// peers and allowing 127.0.0.1:
//
//  1. an OTP accepted on one server is REPLAYED_OTP on the other two;
//  2. with one server stopped, sl=100 is NOT_ENOUGH_ANSWERS with sl=50;
//  3. with it still stopped, OTPs accepted with sl=fast queue rows for it;
//     restarted, it receives them from the queue worker: it ends with the
//     same counters (none lost) and the OTPs are replays there;
//  4. one fresh OTP sent to the three at once with three nonces and sl=60,
//     200 rounds: never more than one OK a round.
//
// It also seeds the pool with ykval-synchronize.
func TestPool(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binaries")
	}
	bin := buildBinaries(t, "./cmd/ykksmd", "./cmd/ykvald", "./cmd/ykval-synchronize")

	// One KSM for every pool.
	ksmDSN := testdb.SQLite(t)
	seedKSM(t, ksmDSN)
	_, ksmAddr := startProc(t, "ykksmd", filepath.Join(bin, "ykksmd"), "--listen", "127.0.0.1:0", "--db", ksmDSN)

	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			testPool(t, bin, "http://"+ksmAddr+"/wsapi/decrypt", b)
		})
	}
}

func testPool(t *testing.T, bin, ksmURL string, b testdb.Backend) {
	ctx := context.Background()
	nodes := make([]*valNode, 3)
	for i := range nodes {
		n := &valNode{name: string(rune('A' + i)), port: freePort(t), dsn: b.DSN(t)}
		st, err := valsqlstore.Open(ctx, sqldb.Config{DSN: n.dsn})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.ImportClients(ctx, []val.Client{ciClient})
		st.Close()
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = n
	}
	for i, n := range nodes {
		n.args = []string{"--listen", "127.0.0.1:" + strconv.Itoa(n.port), "--db", n.dsn, "--ksm-url", ksmURL,
			"--sync-allow", "127.0.0.1", "--queue-interval", "200ms", "--queue-old-limit", "1s", "--queue-max-backoff", "1s"}
		for j, other := range nodes {
			if j != i {
				n.args = append(n.args, "--sync-peer", other.syncURL())
			}
		}
		n.start(t, bin)
	}
	a, bb, c := nodes[0], nodes[1], nodes[2]
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	must := func(st val.Status, sl string, err error) (val.Status, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return st, sl
	}

	// 1. Accepted on A, replayed on B and C.
	o := mint(3, 0)
	if st, sl := must(a.verify(client, o, "nonceAnonceAnonceA", "")); st != val.StatusOK || sl != "100" {
		t.Fatalf("1: verify on A = %s sl=%s, want OK sl=100", st, sl)
	}
	for _, n := range []*valNode{bb, c} {
		if st, _ := must(n.verify(client, o, "nonce"+n.name+"nonce"+n.name+"nonce"+n.name, "")); st != val.StatusReplayedOTP {
			t.Errorf("1: the same OTP on %s = %s, want REPLAYED_OTP", n.name, st)
		}
	}

	// 2. C stopped: sl=100 cannot be met.
	c.proc.stop(t)
	if st, sl := must(a.verify(client, mint(3, 1), "nonceAnonceAnonceA", "&sl=100")); st != val.StatusNotEnoughAnswers || sl != "50" {
		t.Errorf("2: verify on A, sl=100, C stopped = %s sl=%s, want NOT_ENOUGH_ANSWERS sl=50", st, sl)
	}

	// 3. C still stopped: accepted with sl=fast, queued for C; C restarted
	// receives them.
	const later = 20
	for i := range later {
		if st, sl := must(a.verify(client, mint(3, uint8(2+i)), "nonceAnonceAnonceA", "&sl=fast")); st != val.StatusOK || sl != "50" {
			t.Fatalf("3: verify %d on A, sl=fast, C stopped = %s sl=%s, want OK sl=50", i, st, sl)
		}
	}
	waitFor(t, "3: A's rows for C due", func() bool { return a.queued(t, c.syncURL()) == later+1 })
	// With sl=fast the answer does not wait for the peers: B's answer to
	// the last OTP may still be on its way, and its row goes when it comes.
	waitFor(t, "3: A's queue for B empty (B answers)", func() bool { return a.queued(t, bb.syncURL()) == 0 })
	if k := c.keyState(t); k.Counter != 3 || k.Use != 0 {
		t.Errorf("3: C's key while stopped = %+v, want the first OTP's 3/0", k)
	}
	c.start(t, bin)
	waitFor(t, "3: A's queue for C drained", func() bool { return a.queued(t, c.syncURL()) == 0 })
	ka, kb, kc := a.keyState(t), bb.keyState(t), c.keyState(t)
	for _, k := range []val.KeyState{kb, kc} {
		if k.Counter != ka.Counter || k.Use != ka.Use || k.Nonce != ka.Nonce || k.Modified != ka.Modified || k.Low != ka.Low || k.High != ka.High {
			t.Errorf("3: key %+v, want A's %+v (no lost counter)", k, ka)
		}
	}
	if ka.Counter != 3 || ka.Use != 1+later {
		t.Errorf("3: A's key = %+v, want 3/%d", ka, 1+later)
	}
	for _, u := range []uint8{1, 5, 1 + later} {
		if st, _ := must(c.verify(client, mint(3, u), "nonceCnonceCnonceC", "&sl=fast")); st != val.StatusReplayedOTP {
			t.Errorf("3: OTP 3/%d on C after the drain = %s, want REPLAYED_OTP", u, st)
		}
	}

	// ykval-synchronize: A queues every key for B and C, its worker sends
	// them (nothing changes: they are up to date).
	out, err := exec.Command(filepath.Join(bin, "ykval-synchronize"), strings.TrimPrefix(a.base(), "http://"), "all").Output()
	if err != nil || string(out) != "OK Initiated resync of all\n" {
		t.Errorf("ykval-synchronize = %q, %v", out, err)
	}
	waitFor(t, "resync rows delivered", func() bool { return a.queued(t, bb.syncURL())+a.queued(t, c.syncURL()) == 0 })

	// 4. The same OTP everywhere at once.
	rounds := 200
	totals := map[val.Status]int{}
	begin := time.Now()
	for r := range rounds {
		o := mint(uint16(4+r/256), uint8(r%256))
		statuses := make([]val.Status, len(nodes))
		errs := make([]error, len(nodes))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, n := range nodes {
			wg.Go(func() {
				<-start
				statuses[i], _, errs[i] = n.verify(client, o, fmt.Sprintf("r%04dnode%snoncex", r, n.name), "&sl=60")
			})
		}
		close(start)
		wg.Wait()
		oks := 0
		for i, st := range statuses {
			if errs[i] != nil {
				t.Fatalf("4: round %d: %v", r, errs[i])
			}
			totals[st]++
			switch st {
			case val.StatusOK:
				oks++
			case val.StatusReplayedOTP, val.StatusNotEnoughAnswers:
			default:
				t.Errorf("4: round %d, %s: %s", r, nodes[i].name, st)
			}
		}
		if oks > 1 {
			t.Fatalf("4: round %d: %d servers accepted the same OTP: %v", r, oks, statuses)
		}
	}
	t.Logf("4: %d rounds × 3 servers in %v: %v", rounds, time.Since(begin).Round(time.Millisecond), totals)

	for _, n := range nodes {
		n.proc.stop(t)
		if logs := n.proc.logs.String(); strings.Contains(logs, o) || strings.Contains(logs, mint(3, 0)) {
			t.Errorf("%s's log shows an OTP", n.name)
		}
	}
}
