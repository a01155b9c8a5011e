package e2e_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	ksmsqlstore "github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	valsqlstore "github.com/ykstack/ykstack/val/sqlstore"
)

// crashKey is a YubiKey of the crash test, used by one load goroutine only.
type crashKey struct {
	publicID string
	aes      otp.Key
	uid      otp.UID
	counter  uint16 // the position of the next OTP
	use      uint8
}

// next returns a fresh OTP of k, after every one before. It passes over
// the rare OTP a server would read as Dvorak modhex.
func (k *crashKey) next() string {
	for {
		tok := otp.Token{UID: k.uid, Counter: k.counter, Use: k.use,
			TimestampLow: uint16(k.use) * 8, TimestampHigh: uint8(k.counter), Random: 0x1234}
		if k.use == 255 {
			k.counter, k.use = k.counter+1, 0
		} else {
			k.use++
		}
		o := otp.Generate(k.publicID, k.aes, tok)
		if val.NormalizeOTP(o) == o {
			return o
		}
	}
}

// TestCrash kills ykvald with SIGKILL while several goroutines verify fresh
// OTPs of many keys, restarts it on the same database, and sends every OTP
// that was answered OK before the kill again, with a new nonce: each must
// now be REPLAYED_OTP. The OTPs whose requests were in flight at the kill
// (no answer) may have been accepted or not; sent again they get
// REPLAYED_OTP if their counters were stored before the kill, else OK, and
// then REPLAYED_OTP on a further try. It runs on SQLite (synchronous=FULL,
// commits grouped by val/sqlstore) and on MariaDB, with ykksmd as the KSM.
//
// What this proves is "OK only after commit": ykvald never answers OK for
// an update still pending in its own memory (a commit batch, a connection
// buffer). A kill -9 of the server process does not lose the operating
// system's page cache, so the test says nothing about a power loss; that
// rests on SQLite's synchronous=FULL and MariaDB's
// innodb_flush_log_at_trx_commit=1.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binaries and loads a server")
	}
	bin := buildBinaries(t, "./cmd/ykksmd", "./cmd/ykvald")
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) { crash(t, b, bin) })
	}
}

const (
	crashWorkers = 8               // load goroutines
	crashKeys    = 8               // keys per goroutine
	crashLoad    = 2 * time.Second // load before the kill…
	crashOKs     = 3000            // …or this many OKs, whichever comes first
)

func crash(t *testing.T, b testdb.Backend, bin string) {
	ctx := context.Background()
	ksmDSN, valDSN := b.DSN(t), b.DSN(t)

	// The keys, in the KSM's database; each worker has its own.
	keys := make([][]*crashKey, crashWorkers)
	var records []ksm.Key
	for w := range keys {
		for k := range crashKeys {
			ck := &crashKey{publicID: modhex.EncodeToString([]byte{0xcc, 0x4a, 0x54, byte(w), byte(k)}), counter: 1}
			rand.Read(ck.aes[:])
			rand.Read(ck.uid[:])
			keys[w] = append(keys[w], ck)
			records = append(records, ksm.Key{PublicName: ck.publicID, Created: "2026-01-01T00:00:00",
				InternalName: ck.uid.String(), AESKey: ck.aes.String(), Active: true})
		}
	}
	ks, err := ksmsqlstore.Open(ctx, sqldb.Config{DSN: ksmDSN})
	if err != nil {
		t.Fatal(err)
	}
	err = ks.Import(ctx, records)
	ks.Close()
	if err != nil {
		t.Fatal(err)
	}

	// The client, in the validation database.
	vs, err := valsqlstore.Open(ctx, sqldb.Config{DSN: valDSN})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := vs.ImportClients(ctx, []val.Client{ciClient}); err != nil {
		t.Fatal(err)
	}
	if vs.DB().Dialect == sqldb.MySQL {
		var flush string
		if err := vs.DB().QueryRow("SELECT @@innodb_flush_log_at_trx_commit").Scan(&flush); err == nil {
			t.Logf("MariaDB innodb_flush_log_at_trx_commit = %s", flush)
		}
	}
	vs.Close()

	env := append(os.Environ(), "YKKSM_DB=", "YKVAL_DB=", "YKVAL_KSM_URL=", "YKVAL_KSM_DB=", "YKVAL_LISTEN=", "YKKSM_LISTEN=", "YKVAL_REVOKE_IPS=")
	ksmAddr := daemon(t, env, filepath.Join(bin, "ykksmd"), "--listen", "127.0.0.1:0", "--db", ksmDSN)
	valArgs := []string{"--listen", "127.0.0.1:0", "--db", valDSN, "--ksm-url", "http://" + ksmAddr + "/wsapi/decrypt"}
	valCmd, valAddr := daemonCmd(t, env, filepath.Join(bin, "ykvald"), valArgs...)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: crashWorkers}, Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	verify := func(addr, o, nonce string) (val.Status, error) {
		return verifyStatus(hc, fmt.Sprintf("http://%s/wsapi/2.0/verify?id=1&otp=%s&nonce=%s", addr, o, nonce))
	}

	// Load until the kill. Each worker stops at its first request without
	// an answer: the server is gone.
	var (
		mu         sync.Mutex
		accepted   []string // answered OK before the kill
		unanswered []string // sent, no answer: in flight at the kill, or sent after it
		okCount    atomic.Int64
		wg         sync.WaitGroup
	)
	for w := range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				o := keys[w][i%crashKeys].next()
				st, err := verify(valAddr, o, fmt.Sprintf("crashload%02dn%07d", w, i))
				mu.Lock()
				switch {
				case err != nil:
					unanswered = append(unanswered, o)
				case st == val.StatusOK:
					accepted = append(accepted, o)
				default:
					t.Errorf("worker %d: fresh OTP answered %s before the kill, want OK", w, st)
				}
				mu.Unlock()
				if err != nil || st != val.StatusOK {
					return
				}
				okCount.Add(1)
			}
		}()
	}
	begin := time.Now()
	for time.Since(begin) < crashLoad && okCount.Load() < crashOKs {
		time.Sleep(10 * time.Millisecond)
	}
	if err := valCmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	load := time.Since(begin)
	wg.Wait()
	valCmd.Wait()
	t.Logf("killed ykvald (SIGKILL) after %v of load: %d OTPs answered OK, %d without an answer",
		load.Round(time.Millisecond), len(accepted), len(unanswered))
	if len(accepted) == 0 {
		t.Fatal("no OTP was accepted before the kill")
	}

	// Restart on the same database; every OTP answered OK before is a replay.
	_, valAddr = daemonCmd(t, env, filepath.Join(bin, "ykvald"), valArgs...)
	replayed := make([]val.Status, len(accepted))
	resendErrs := make([]error, len(accepted))
	next := atomic.Int64{}
	for range crashWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(accepted) {
					return
				}
				replayed[i], resendErrs[i] = verify(valAddr, accepted[i], fmt.Sprintf("crashresend%08d", i))
			}
		}()
	}
	wg.Wait()
	counts := map[val.Status]int{}
	bad := 0
	for i, st := range replayed {
		if resendErrs[i] != nil {
			t.Fatalf("resending an accepted OTP after the restart: %v", resendErrs[i])
		}
		counts[st]++
		if st != val.StatusReplayedOTP {
			if bad++; bad <= 10 {
				t.Errorf("OTP %d of %d, answered OK before the kill, is answered %s after the restart, want REPLAYED_OTP", i, len(accepted), st)
			}
		}
	}
	t.Logf("after the restart, the %d OTPs accepted before the kill: %v", len(accepted), counts)

	// The unanswered ones: either fate is fine, but once.
	fates := map[string]int{}
	for i, o := range unanswered {
		st, err := verify(valAddr, o, fmt.Sprintf("crashinflight%06d", i))
		switch {
		case err != nil:
			t.Fatal(err)
		case st == val.StatusReplayedOTP:
			fates["stored before the kill (REPLAYED_OTP)"]++
		case st == val.StatusOK:
			fates["not stored (OK now)"]++
			if again, err := verify(valAddr, o, fmt.Sprintf("crashagain%06d", i)); err != nil || again != val.StatusReplayedOTP {
				t.Errorf("unanswered OTP %d accepted after the restart, then answered %s, %v; want REPLAYED_OTP", i, again, err)
			}
		default:
			t.Errorf("unanswered OTP %d sent after the restart: %s, want OK or REPLAYED_OTP", i, st)
		}
	}
	t.Logf("the %d OTPs without an answer at the kill, sent again: %v", len(unanswered), fates)

	// The server goes on: a fresh OTP of every key is accepted.
	for w := range keys {
		for _, k := range keys[w] {
			if st, err := verify(valAddr, k.next(), "crashfreshafterrestart"); err != nil || st != val.StatusOK {
				t.Errorf("fresh OTP of %s after the restart: %s, %v; want OK", k.publicID, st, err)
			}
		}
	}
}
