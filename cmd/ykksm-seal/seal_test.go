package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spf13/pflag"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
)

type result struct {
	stdout, stderr string
	code           int
	err            error
}

func runSeal(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), cli.Env{Args: args, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return env[k] }})
	code := cli.Report("ykksm-seal", &stderr, err)
	return result{stdout.String(), stderr.String(), code, err}
}

// newKEKFile makes a KEK file with the tool itself and returns its path and KEK.
func newKEKFile(t *testing.T) (string, *seal.KEK) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ykksm.kek")
	r := runSeal(t, nil, "gen-kek", p)
	if r.err != nil {
		t.Fatalf("gen-kek: %v", r.err)
	}
	k, err := seal.ReadKEKFile(p, "")
	if err != nil {
		t.Fatal(err)
	}
	return p, k
}

func TestGenKEK(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "kek")
	r := runSeal(t, nil, "gen-kek", p)
	if r.err != nil {
		t.Fatal(r.err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("KEK file: %v, mode %v; want 0600", err, fi.Mode())
	}
	k, err := seal.ReadKEKFile(p, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "wrote a new KEK with key ID " + k.ID() + " to " + p + "\n"; r.stdout != want {
		t.Errorf("gen-kek prints %q, want %q", r.stdout, want)
	}
	data, _ := os.ReadFile(p)
	if r := runSeal(t, nil, "gen-kek", p); r.code != cli.ExitFailure || !errors.Is(r.err, os.ErrExist) {
		t.Errorf("gen-kek over an existing file: exit %d, %v; want exit 1 and ErrExist", r.code, r.err)
	}
	if again, _ := os.ReadFile(p); !bytes.Equal(again, data) {
		t.Error("gen-kek changed an existing file")
	}
	r = runSeal(t, nil, "gen-kek", "-")
	if _, err := seal.ParseKEK(r.stdout); err != nil || r.err != nil {
		t.Errorf("gen-kek - printed %q (%v), which does not parse: %v", r.stdout, r.err, err)
	}
	if other := runSeal(t, nil, "gen-kek", "-"); other.stdout == r.stdout {
		t.Error("two generated KEKs are equal")
	}
}

func TestUsage(t *testing.T) {
	kek, _ := newKEKFile(t)
	old, _ := newKEKFile(t)
	dsn := testdb.SQLite(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "give a command"},
		{[]string{"frobnicate"}, "unknown command"},
		{[]string{"status", "extra"}, "unexpected argument"},
		{[]string{"gen-kek"}, "gen-kek needs a FILE"},
		{[]string{"gen-kek", "a", "b"}, "unexpected argument \"b\""},
		{[]string{"seal", "--db", dsn}, "seal needs the KEK"},
		{[]string{"unseal", "--db", dsn}, "unseal needs the KEK"},
		{[]string{"rotate", "--db", dsn, "--kek-file", kek}, "rotate needs the new KEK"},
		{[]string{"rotate", "--db", dsn, "--kek-file", kek, "--old-kek-file", kek}, "a different old one"},
		{[]string{"rotate", "--db", dsn, "--old-kek-file", old}, "no current KEK"},
		{[]string{"seal", "--batch", "0", "--kek-file", kek}, "--batch 0"},
		{[]string{"--no-such-flag"}, "unknown flag"},
	} {
		r := runSeal(t, nil, tt.args...)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("ykksm-seal %q: exit %d, stderr %q; want exit 2 and %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
	r := runSeal(t, nil, "--help")
	if !errors.Is(r.err, pflag.ErrHelp) || r.code != cli.ExitOK || !strings.Contains(r.stdout, "gen-kek") || !strings.Contains(r.stdout, "--kek-file") {
		t.Errorf("--help: exit %d, %q", r.code, r.stdout)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	if r := runSeal(t, nil, "status", "--db", "sqlite:"+missing); r.code != cli.ExitFailure || !errors.Is(r.err, os.ErrNotExist) {
		t.Errorf("status of a missing SQLite file: exit %d, %v; want exit 1", r.code, r.err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("status created the missing SQLite file")
	}
}

// testKey is a random key and an OTP of it, with the answer the KSM owes.
type testKey struct {
	ksm.Key
	otp, want string
}

func randomKeys(n int) []testKey {
	out := make([]testKey, n)
	for i := range out {
		var r [28]byte
		rand.Read(r[:])
		var key otp.Key
		var uid otp.UID
		copy(key[:], r[12:])
		copy(uid[:], r[6:12])
		pub := modhex.EncodeToString(r[:6])
		tok := otp.Token{UID: uid, Counter: uint16(i + 1), TimestampLow: uint16(i), Use: uint8(i)}
		out[i] = testKey{
			Key: ksm.Key{SerialNr: int64(i + 1), PublicName: pub, Created: "2024-01-01T00:00:00", InternalName: hex.EncodeToString(uid[:]),
				AESKey: hex.EncodeToString(key[:]), Active: true, Hardware: true},
			otp:  otp.Generate(pub, key, tok),
			want: ksm.Result{Counter: tok.Counter, Low: tok.TimestampLow, Use: tok.Use}.String() + "\n",
		}
	}
	return out
}

// serving is a KSM (ksmserver over HTTP) opened as ykksmd opens it, with
// clients decrypting every key in a loop until stop.
type serving struct {
	answers atomic.Int64
	mu      sync.Mutex
	bad     []string
	stop    func()
}

func serve(t *testing.T, dsn string, keys []testKey, opts sqlstore.Options) *serving {
	t.Helper()
	st, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, opts)
	if err != nil {
		t.Fatalf("KSM start: %v", err)
	}
	mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	s := &serving{}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; ; i += 4 {
				select {
				case <-done:
					return
				default:
				}
				k := keys[i%len(keys)]
				body, err := decrypt(srv.URL, k.otp)
				s.answers.Add(1)
				if err != nil || body != k.want {
					s.mu.Lock()
					s.bad = append(s.bad, fmt.Sprintf("%s: %q %v", k.PublicName, body, err))
					s.mu.Unlock()
				}
			}
		}()
	}
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			srv.Close()
			st.Close()
		})
	}
	t.Cleanup(s.stop)
	return s
}

func decrypt(base, o string) (string, error) {
	resp, err := http.Get(base + "/wsapi/decrypt?otp=" + url.QueryEscape(o))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// check stops s and fails t unless every answer was right.
func (s *serving) check(t *testing.T, phase string) {
	t.Helper()
	s.stop()
	if s.answers.Load() == 0 {
		t.Errorf("%s: no decrypt requests ran", phase)
	}
	if len(s.bad) > 0 {
		t.Errorf("%s: %d of %d answers were wrong, e.g. %s", phase, len(s.bad), s.answers.Load(), s.bad[0])
	}
	t.Logf("%s: %d answers, all OK", phase, s.answers.Load())
}

// TestSealRotateUnseal follows the documented steps on SQLite and MariaDB:
// seal in place, rotate the KEK, unseal, each while a KSM answers decrypt
// requests over HTTP from several goroutines; every answer is the right
// OK, and the checksum never changes.
func TestSealRotateUnseal(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			keys := randomKeys(300)
			plain := make([]ksm.Key, len(keys))
			for i, k := range keys {
				plain[i] = k.Key
			}
			st, err := sqlstore.Open(ctx, sqldb.Config{DSN: dsn})
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Import(ctx, plain); err != nil {
				t.Fatal(err)
			}
			st.Close()
			sum := checksum(t, dsn, nil)
			oldFile, oldKEK := newKEKFile(t)
			newFile, newKEK := newKEKFile(t)

			r := runSeal(t, nil, "status", "--db", dsn)
			want := "mode: plaintext\nplaintext keys: 300\nsealed keys: 0\nempty aeskey: 0\n"
			if b.Name == "mysql" {
				want += "aeskey column: varchar(32): too narrow for sealed keys (seal widens it)\n"
			}
			if r.err != nil || !strings.HasSuffix(r.stdout, want) || !strings.HasPrefix(r.stdout, "database: ") {
				t.Errorf("status = %v\n%s\nwant it to end in\n%s", r.err, r.stdout, want)
			}

			// Seal: the KSM started with the KEK on the plaintext database.
			ksm1 := serve(t, dsn, keys, sqlstore.Options{Sealer: seal.New(oldKEK)})
			r = runSeal(t, nil, "seal", "--db", dsn, "--kek-file", oldFile, "--batch", "25", "-v")
			ksm1.check(t, "seal")
			wantOut := fmt.Sprintf("sealed 300 keys under KEK %s (300 rows read)\nmode: sealed (plaintext 0, sealed 300)\n", oldKEK.ID())
			if b.Name == "mysql" {
				wantOut = "widened the aeskey column to varchar(128)\n" + wantOut
			}
			if r.err != nil || !strings.HasPrefix(r.stdout, wantOut) || strings.Count(r.stderr, "seal: ") != 12 {
				t.Errorf("seal = %v\n%s\n%s\nwant it to start with\n%s and 12 progress lines", r.err, r.stdout, r.stderr, wantOut)
			}
			if r := runSeal(t, nil, "seal", "--db", dsn, "--kek-file", oldFile); r.err != nil || !strings.HasPrefix(r.stdout, "sealed 0 keys") {
				t.Errorf("seal again = %v, %q; want nothing to do", r.err, r.stdout)
			}
			if got := checksum(t, dsn, seal.New(oldKEK)); got != sum {
				t.Errorf("checksum after sealing = %s, want %s", got, sum)
			}

			// Rotate: the KSM restarted with both KEKs.
			ksm2 := serve(t, dsn, keys, sqlstore.Options{Sealer: seal.New(newKEK, oldKEK)})
			r = runSeal(t, map[string]string{"YKKSM_KEK_FILE": newFile, "YKKSM_OLD_KEK_FILE": oldFile}, "rotate", "--db", dsn, "--batch", "40")
			ksm2.check(t, "rotate")
			wantOut = fmt.Sprintf("re-sealed 300 keys under KEK %s (300 rows read)\nmode: sealed (plaintext 0, sealed 300)\n", newKEK.ID())
			if r.err != nil || !strings.HasPrefix(r.stdout, wantOut) {
				t.Errorf("rotate = %v\n%s\nwant it to start with\n%s", r.err, r.stdout, wantOut)
			}
			r = runSeal(t, nil, "status", "--db", dsn, "--kek-file", newFile)
			if want := fmt.Sprintf("sealed keys: 300\n  KEK %s: 300 (the KEK of --kek-file)\n", newKEK.ID()); !strings.Contains(r.stdout, want) {
				t.Errorf("status after rotate:\n%s\nlacks\n%s", r.stdout, want)
			}
			if got := checksum(t, dsn, seal.New(newKEK)); got != sum {
				t.Errorf("checksum after rotating = %s, want %s", got, sum)
			}

			// Unseal: the KSM restarted with the KEK and --allow-plaintext.
			ksm3 := serve(t, dsn, keys, sqlstore.Options{Sealer: seal.New(newKEK), Plaintext: sqlstore.PlaintextAllow})
			r = runSeal(t, nil, "unseal", "--db", dsn, "--kek-file", newFile)
			ksm3.check(t, "unseal")
			if r.err != nil || !strings.HasPrefix(r.stdout, "unsealed 300 keys (300 rows read)\nmode: plaintext (plaintext 300, sealed 0)\n") {
				t.Errorf("unseal = %v\n%s", r.err, r.stdout)
			}
			if got := checksum(t, dsn, nil); got != sum {
				t.Errorf("checksum after unsealing = %s, want %s", got, sum)
			}
		})
	}
}

// checksum is ykksm-checksum's sum of the database through sealer.
func checksum(t *testing.T, dsn string, sealer *seal.Sealer) string {
	t.Helper()
	st, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var b strings.Builder
	if err := st.Each(context.Background(), func(k ksm.Key) error {
		fmt.Fprintf(&b, "%d%s%s%s", k.SerialNr, k.PublicName, k.InternalName, k.AESKey)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRefusals: the wrong KEK, a mixed-up rotation and a tampered row stop
// with a clear error (exit 1) and change nothing else.
func TestRefusals(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.SQLite(t)
	keys := randomKeys(5)
	aFile, aKEK := newKEKFile(t)
	bFile, _ := newKEKFile(t)
	st, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: seal.New(aKEK)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, k := range keys {
		if err := st.Import(ctx, []ksm.Key{k.Key}); err != nil {
			t.Fatal(err)
		}
	}
	r := runSeal(t, nil, "seal", "--db", dsn, "--kek-file", bFile)
	if r.code != cli.ExitFailure || !errors.Is(r.err, sqlstore.ErrWrongKEK) || !strings.Contains(r.stderr, "use rotate") {
		t.Errorf("seal with another KEK: exit %d, %q; want exit 1, ErrWrongKEK and advice to rotate", r.code, r.stderr)
	}
	r = runSeal(t, nil, "status", "--db", dsn, "--kek-file", bFile)
	if want := fmt.Sprintf("  KEK %s: 5 (not a configured KEK)\n", aKEK.ID()); r.err != nil || !strings.Contains(r.stdout, want) || !strings.Contains(r.stdout, "seals none of the keys") {
		t.Errorf("status with another KEK = %v\n%s\nwant %q", r.err, r.stdout, want)
	}

	// A sealed value moved to another row: unseal names it, leaves it, exits 1.
	var v string
	if err := st.DB().QueryRow("SELECT aeskey FROM yubikeys WHERE publicname = ?", keys[1].PublicName).Scan(&v); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB().Exec("UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", v, keys[0].PublicName); err != nil {
		t.Fatal(err)
	}
	r = runSeal(t, nil, "unseal", "--db", dsn, "--kek-file", aFile)
	if r.code != cli.ExitFailure || !strings.Contains(r.stderr, "1 keys did not open") || !strings.Contains(r.stderr, keys[0].PublicName) ||
		!strings.Contains(r.stdout, "unsealed 4 keys") || !strings.Contains(r.stdout, "mode: mixed (plaintext 4, sealed 1)") {
		t.Errorf("unseal with a moved row: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	for _, k := range keys {
		if strings.Contains(r.stdout+r.stderr, k.AESKey) {
			t.Errorf("the output shows the key of %s", k.PublicName)
		}
	}
}
