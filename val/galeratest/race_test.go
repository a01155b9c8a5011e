package galeratest_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/galera"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/ksm"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
)

// rounds is how many OTPs each race test has the servers fight over.
const rounds = 1000

// numKeys is how many YubiKeys the rounds are spread over; each key's first
// round also races the key's enrolment (two INSERTs of one row).
const numKeys = 4

// testKey is a YubiKey known to the test's KSM.
type testKey struct {
	publicID string
	aes      otp.Key
	uid      otp.UID
	counter  uint16 // the position of the next OTP
	use      uint8
}

// newKeys returns n keys with fixed public IDs and random secrets.
func newKeys(n int) []*testKey {
	keys := make([]*testKey, n)
	for i := range keys {
		k := &testKey{publicID: modhex.EncodeToString([]byte{0xfa, 0x1e, 0x9a, 0x00, 0x00, byte(i)}), counter: 1}
		rand.Read(k.aes[:])
		rand.Read(k.uid[:])
		keys[i] = k
	}
	return keys
}

// record is the key as the KSM stores it.
func (k *testKey) record() ksm.Key {
	return ksm.Key{PublicName: k.publicID, Created: "2026-01-01T00:00:00", InternalName: k.uid.String(),
		AESKey: k.aes.String(), Active: true}
}

// next returns a fresh OTP of k, after every one before, and its position.
// It passes over the rare OTP a server would read as Dvorak modhex.
func (k *testKey) next() (string, val.Position) {
	for {
		tok := otp.Token{UID: k.uid, Counter: k.counter, Use: k.use,
			TimestampLow: uint16(k.use) * 8, TimestampHigh: uint8(k.counter), Random: 0x5a5a}
		pos := val.Position{Counter: int(k.counter), Use: int(k.use)}
		if k.use == 255 {
			k.counter, k.use = k.counter+1, 0
		} else {
			k.use++
		}
		o := otp.Generate(k.publicID, k.aes, tok)
		if val.NormalizeOTP(o) == o {
			return o, pos
		}
	}
}

// serverRetries are the values of wsrep_retry_autocommit the races run
// under: MariaDB's default 1, where a node retries an aborted autocommit
// statement once itself before its client sees error 1213, and 0, where
// every conflict reaches val/sqlstore, whose own retries must do the work.
var serverRetries = []int{1, 0}

// dsn is the ykstack DSN of database db on node n, with session variables
// (go-sql-driver sets unknown DSN parameters as system variables).
func dsn(n *galera.Node, db, vars string) string {
	d := "mysql:" + n.DSN(db)
	if vars != "" {
		d += "?" + vars
	}
	return d
}

// stores opens a val/sqlstore on database db of every node, with session
// variables vars.
func stores(t *testing.T, c *galera.Cluster, db, vars string) []*valsqlstore.Store {
	t.Helper()
	var out []*valsqlstore.Store
	for _, n := range c.Nodes {
		s, err := valsqlstore.Open(context.Background(), sqldb.Config{DSN: dsn(n, db, vars)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out = append(out, s)
	}
	return out
}

// checkAgreement checks that every node stores the same state for each key,
// at the position of the key's last won round.
func checkAgreement(t *testing.T, c *galera.Cluster, db string, last map[string]val.Position) {
	t.Helper()
	ctx := context.Background()
	// wsrep_sync_wait=1: reads wait for the node to apply what the cluster
	// committed before them.
	for i, s := range stores(t, c, db, "wsrep_sync_wait=1") {
		for name, want := range last {
			k, err := s.KeyState(ctx, name)
			if err != nil {
				t.Errorf("%s: KeyState(%s): %v", c.Nodes[i].Name, name, err)
				continue
			}
			if k.Pos() != want {
				t.Errorf("%s: KeyState(%s) at %v, want %v (the last accepted position)", c.Nodes[i].Name, name, k.Pos(), want)
			}
		}
	}
}

// TestAdvanceKeyRace has three stores, one on each node, call AdvanceKey
// with the same next position at the same moment, 1,000 times: exactly one
// call per round may return true, and none may fail (a conflict that
// reaches the store must be retried, not turned into an error). The first
// round of each key also races EnrollKey on all three nodes. It runs with
// each of serverRetries.
func TestAdvanceKeyRace(t *testing.T) {
	c := cluster(t)
	for _, retries := range serverRetries {
		t.Run(fmt.Sprintf("wsrep_retry_autocommit=%d", retries), func(t *testing.T) {
			advanceKeyRace(t, c, retries)
		})
	}
}

func advanceKeyRace(t *testing.T, c *galera.Cluster, retries int) {
	ctx := context.Background()
	db := newDatabase(t, c)
	sts := stores(t, c, db, fmt.Sprintf("wsrep_retry_autocommit=%d", retries))
	for _, s := range sts {
		var got int
		if err := s.DB().QueryRow("SELECT @@session.wsrep_retry_autocommit").Scan(&got); err != nil || got != retries {
			t.Fatalf("store's session wsrep_retry_autocommit = %d, %v; want %d", got, err, retries)
		}
	}
	keys := newKeys(numKeys)

	before := conflicts(t, c)
	begin := time.Now()
	var (
		wins       = make([]int, len(sts))
		errs       int
		double     int
		zero       int
		reported   int
		last       = map[string]val.Position{}
		enrolledAs = map[string]val.KeyState{}
	)
	fail := func(format string, args ...any) {
		if reported++; reported <= 10 {
			t.Errorf(format, args...)
		}
	}
	for round := range rounds {
		k := keys[round%numKeys]
		_, pos := k.next()
		var (
			wg    sync.WaitGroup
			start = make(chan struct{})
			won   = make([]bool, len(sts))
			errAt = make([]error, len(sts))
			rows  = make([]val.KeyState, len(sts))
		)
		for i, s := range sts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if round < numKeys {
					if rows[i], errAt[i] = s.EnrollKey(ctx, k.publicID, 1700000000+int64(i)); errAt[i] != nil {
						return
					}
				}
				won[i], errAt[i] = s.AdvanceKey(ctx, val.KeyState{
					PublicName: k.publicID, Active: true, Modified: time.Now().Unix(),
					Counter: pos.Counter, Use: pos.Use, Low: pos.Use * 8, High: pos.Counter,
					Nonce: fmt.Sprintf("galera%06dnode%d", round, i+1),
				})
			}()
		}
		close(start)
		wg.Wait()
		n := 0
		for i := range sts {
			if errAt[i] != nil {
				errs++
				fail("round %d, node%d: %v", round, i+1, errAt[i])
				continue
			}
			if won[i] {
				n++
				wins[i]++
			}
		}
		if round < numKeys {
			// Concurrent enrolments return the same row on every node.
			for i := range sts {
				if errAt[i] == nil && rows[i].Created != rows[0].Created {
					fail("round %d: EnrollKey on node%d returned created=%d, node1 %d", round, i+1, rows[i].Created, rows[0].Created)
				}
			}
			enrolledAs[k.publicID] = rows[0]
		}
		switch {
		case n > 1:
			double++
			fail("round %d: %d nodes advanced %s to %v: %v", round, n, k.publicID, pos, won)
		case n == 0:
			zero++
			fail("round %d: no node advanced %s to %v", round, k.publicID, pos)
		default:
			last[k.publicID] = pos
		}
	}
	took := time.Since(begin)
	seen := conflicts(t, c) - before
	t.Logf("%d rounds × %d nodes in %v: wins per node %v, double wins %d, rounds without a win %d, errors %d, Galera conflicts (cert failures + BF aborts) %d",
		rounds, len(sts), took.Round(time.Millisecond), wins, double, zero, errs, seen)
	if double > 0 || zero > 0 || errs > 0 {
		t.Errorf("%d rounds with two wins, %d with none, %d errors; want exactly one win per round and no errors", double, zero, errs)
	}
	checkAgreement(t, c, db, last)
}

// TestVerifyRace runs two ykvald processes on different nodes of the
// cluster, sharing one KSM database (SQLite, decrypted in-process with
// --ksm-db), and sends each fresh OTP to both at the same moment, 1,000
// times: exactly one answer per round is OK. A round with two OKs would be
// an accepted replay; a round with none (BACKEND_ERROR after retries)
// breaks "exactly one". The first round of each key also races the key's
// enrolment.
//
// With different nonces (two clients) the loser's answer is REPLAYED_OTP;
// this runs with each of serverRetries. With one nonce (one client asking
// both servers at once, as val/valclient, ykclient and pam_yubico do) it
// must be REPLAYED_REQUEST, which such clients do not take as final: a
// REPLAYED_OTP arriving before the winner's OK would make the client refuse
// an OTP that was just accepted for it.
func TestVerifyRace(t *testing.T) {
	c := cluster(t)
	bin := binaries(t, "ykvald")
	for _, retries := range serverRetries {
		t.Run(fmt.Sprintf("wsrep_retry_autocommit=%d", retries), func(t *testing.T) {
			verifyRace(t, newValPair(t, c, bin, fmt.Sprintf("wsrep_retry_autocommit=%d", retries)), false)
		})
	}
	t.Run("one nonce", func(t *testing.T) {
		verifyRace(t, newValPair(t, c, bin, ""), true)
	})
}

// valPair is two ykvald processes on nodes 1 and 2 sharing a fresh
// validation database, with one API client and numKeys keys in a KSM
// database both use.
type valPair struct {
	c       *galera.Cluster
	db      string // the validation database
	servers []*daemon
	client  val.Client
	keys    []*testKey
}

// newValPair starts a valPair whose servers' database connections set the
// session variables vars.
func newValPair(t *testing.T, c *galera.Cluster, bin, vars string) *valPair {
	t.Helper()
	ctx := context.Background()
	p := &valPair{c: c, keys: newKeys(numKeys)}

	ksmDSN := "sqlite:" + filepath.Join(t.TempDir(), "ksm.db")
	ks, err := ksmsqlstore.Open(ctx, sqldb.Config{DSN: ksmDSN})
	if err != nil {
		t.Fatal(err)
	}
	var records []ksm.Key
	for _, k := range p.keys {
		records = append(records, k.record())
	}
	err = ks.Import(ctx, records)
	ks.Close()
	if err != nil {
		t.Fatal(err)
	}

	p.db = newDatabase(t, c)
	var secret [20]byte
	rand.Read(secret[:])
	p.client = val.Client{ID: 1, Active: true, Created: 1700000000, Secret: base64.StdEncoding.EncodeToString(secret[:])}
	if _, err := stores(t, c, p.db, "")[0].ImportClients(ctx, []val.Client{p.client}); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes[:2] {
		p.servers = append(p.servers, startDaemon(t, filepath.Join(bin, "ykvald"),
			"--listen", "127.0.0.1:0", "--db", dsn(n, p.db, vars), "--ksm-db", ksmDSN))
	}
	return p
}

// logProblems logs how much each server logged and its first warnings and
// errors.
func (p *valPair) logProblems(t *testing.T) {
	t.Helper()
	for i, d := range p.servers {
		problems, lines := d.Problems()
		t.Logf("ykvald %d (%s): %d log lines, %d warnings/errors", i+1, p.c.Nodes[i].Name, lines, len(problems))
		for _, l := range problems {
			t.Logf("  %s", l)
		}
	}
}

func verifyRace(t *testing.T, p *valPair, oneNonce bool) {
	c, servers, keys := p.c, p.servers, p.keys
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	key := val.DecodeKey(p.client.Secret)
	loser := val.StatusReplayedOTP
	if oneNonce {
		loser = val.StatusReplayedRequest
	}

	before := conflicts(t, c)
	begin := time.Now()
	var (
		totals   = map[val.Status]int{}
		oks      = make([]int, len(servers))
		double   int
		zero     int
		reported int
		last     = map[string]val.Position{}
	)
	fail := func(format string, args ...any) {
		if reported++; reported <= 10 {
			t.Errorf(format, args...)
		}
	}
	for round := range rounds {
		k := keys[round%numKeys]
		o, pos := k.next()
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			statuses = make([]val.Status, len(servers))
			errs     = make([]error, len(servers))
		)
		for i, d := range servers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				nonce := fmt.Sprintf("galera%06dnode%d", round, i+1)
				if oneNonce {
					nonce = fmt.Sprintf("galera%06donenonce", round)
				}
				u := fmt.Sprintf("http://%s/wsapi/2.0/verify?id=1&otp=%s&nonce=%s", d.addr, o, nonce)
				<-start
				statuses[i], errs[i] = verifyStatus(hc, u, key)
			}()
		}
		close(start)
		wg.Wait()
		n := 0
		for i, st := range statuses {
			if errs[i] != nil {
				fail("round %d, server %d: %v", round, i+1, errs[i])
				continue
			}
			totals[st]++
			switch st {
			case val.StatusOK:
				n++
				oks[i]++
			case loser:
			default:
				fail("round %d, server %d: %s, want OK or %s", round, i+1, st, loser)
			}
		}
		switch {
		case n > 1:
			double++
			fail("round %d: both servers answered OK for OTP %v of %s", round, pos, k.publicID)
		case n == 0:
			zero++
			fail("round %d: no server answered OK: %v", round, statuses)
		default:
			last[k.publicID] = pos
		}
	}
	took := time.Since(begin)
	seen := conflicts(t, c) - before
	t.Logf("%d rounds × %d servers in %v: statuses %v, OKs per server %v, rounds with two OKs %d, rounds without OK %d, Galera conflicts (cert failures + BF aborts) %d",
		rounds, len(servers), took.Round(time.Millisecond), totals, oks, double, zero, seen)
	p.logProblems(t)
	if double > 0 || zero > 0 || totals[val.StatusOK] != rounds || totals[loser] != rounds {
		t.Errorf("%d rounds with two OKs, %d without OK; statuses %v; want exactly one OK and one %s per round", double, zero, totals, loser)
	}
	checkAgreement(t, c, p.db, last)
}

// verifyStatus GETs a verify URL and returns the answer's status, checking
// the HTTP status, the body's form and its signature.
func verifyStatus(c *http.Client, u string, key []byte) (val.Status, error) {
	resp, err := c.Get(u)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %q", resp.StatusCode, body)
	}
	r, err := val.ParseResponse(body)
	if err != nil {
		return "", err
	}
	if !r.Verify(key) {
		return "", fmt.Errorf("answer %q not signed with the client's key", body)
	}
	return r.Status(), nil
}

// TestExampleConfig checks that the cluster runs the settings of
// contrib/galera/galera.cnf that the replay guard depends on.
func TestExampleConfig(t *testing.T) {
	c := cluster(t)
	want := map[string]string{
		"wsrep_cluster_name":             "ykval", // proves the file was read
		"wsrep_on":                       "1",
		"binlog_format":                  "ROW",
		"default_storage_engine":         "InnoDB",
		"innodb_autoinc_lock_mode":       "2",
		"innodb_flush_log_at_trx_commit": "1",
		"wsrep_retry_autocommit":         "1",
		"wsrep_sync_wait":                "0",
		"wsrep_sst_method":               "rsync",
	}
	for _, n := range c.Nodes {
		db, err := sql.Open("mysql", n.DSN(""))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		for name, v := range want {
			var got string
			if err := db.QueryRow("SELECT @@GLOBAL." + name).Scan(&got); err != nil || got != v {
				t.Errorf("%s: @@%s = %q, %v; want %q", n.Name, name, got, err, v)
			}
		}
	}
}
