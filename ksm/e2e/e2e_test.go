package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/pgp/pgptest"
	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/otp"
)

// tools are the commands the tests build and run.
var tools = []string{"ykksm-gen-keys", "ykksm-import", "ykksm-export", "ykksm-checksum", "ykksmd"}

var (
	binDir   string          // where the binaries are
	built    map[string]bool // which tools exist in this tree
	buildErr error
	setup    sync.Once
	world    *pgptest.World
	worldErr error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if world != nil {
		world.Close()
	}
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// prepare builds the binaries and makes the gpg keys, once.
func prepare(t *testing.T) {
	t.Helper()
	if !pgptest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg not found on PATH (CI=true, so this is a failure)")
		}
		t.Skip("gpg not found on PATH")
	}
	setup.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "ykbin"); buildErr != nil {
			return
		}
		built = map[string]bool{}
		args := []string{"build", "-o", binDir + string(os.PathSeparator)}
		for _, tool := range tools {
			// ykksmd may not exist yet in this tree: then the KSM runs in
			// process (ksmserver in httptest).
			if _, err := os.Stat(filepath.Join("..", "..", "cmd", tool, "main.go")); err == nil {
				built[tool] = true
				args = append(args, "github.com/ykstack/ykstack/cmd/"+tool)
			}
		}
		cmd := exec.Command("go", args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		world, worldErr = pgptest.NewWorld()
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	for _, tool := range tools[:4] {
		if !built[tool] {
			t.Fatalf("cmd/%s is missing", tool)
		}
	}
}

// result is a finished command.
type result struct {
	stdout, stderr string
	code           int
}

// run runs a built tool with stdin and extra environment variables.
func run(t *testing.T, stdin []byte, env []string, tool string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, tool), args...)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout.String(), stderr.String(), 0}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("%s: %v", tool, err)
	}
	return r
}

// mustRun runs a tool that must succeed and returns its standard output.
func mustRun(t *testing.T, stdin []byte, env []string, tool string, args ...string) string {
	t.Helper()
	r := run(t, stdin, env, tool, args...)
	if r.code != 0 {
		t.Fatalf("%s %s: exit %d\n%s", tool, strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// must returns a function that returns v, failing the test on err.
func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func writeFile(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// dump returns every key of a database, in KeyStore.Each order.
func dump(t *testing.T, dsn string) []ksm.Key {
	t.Helper()
	s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var keys []ksm.Key
	if err := s.Each(context.Background(), func(k ksm.Key) error { keys = append(keys, k); return nil }); err != nil {
		t.Fatal(err)
	}
	return keys
}

// checksum runs ykksm-checksum; an empty database gives "No data?!".
func checksum(t *testing.T, dsn string) string {
	t.Helper()
	return strings.TrimSpace(run(t, nil, nil, "ykksm-checksum", "--database", dsn).stdout)
}

// startKSM serves the decrypt API on dsn over real HTTP: the ykksmd binary on
// a free loopback port when it exists, else ksmserver's handler in httptest.
func startKSM(t *testing.T, dsn string) string {
	t.Helper()
	if !built["ykksmd"] {
		s, err := sqlstore.Open(context.Background(), sqldb.Config{DSN: dsn})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		mux, err := ksmserver.NewMux(ksmserver.Config{Store: s})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		t.Logf("KSM: ksmserver in httptest on %s (no cmd/ykksmd)", srv.URL)
		return srv.URL
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cmd := exec.Command(filepath.Join(binDir, "ykksmd"), "--listen", addr, "--database", dsn)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	url := "http://" + addr
	for deadline := time.Now().Add(20 * time.Second); ; {
		select {
		case err := <-done:
			t.Fatalf("ykksmd exited: %v\n%s", err, stderr.String())
		default:
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("KSM: ykksmd on %s", addr)
				return url
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("ykksmd on %s did not become healthy: %v\n%s", addr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// decrypt asks the KSM at url to decrypt otp, as YK-VAL (or curl) would.
func decrypt(t *testing.T, url, otpString string) string {
	t.Helper()
	resp, err := http.Get(url + "/wsapi/decrypt?otp=" + otpString)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET decrypt: status %d, want 200", resp.StatusCode)
	}
	return string(body)
}

// checkDecrypt mints OTPs for several keys of the batch and has the KSM at
// url decrypt them; an unknown public ID is refused.
func checkDecrypt(t *testing.T, url string, recs []keyprov.Record) {
	t.Helper()
	for i, n := range []int{0, 1, len(recs) / 2, len(recs) - 1} {
		k := recs[n].Key
		key, err := otp.ParseKey(k.AESKey)
		if err != nil {
			t.Fatal(err)
		}
		uid, err := otp.ParseUID(k.InternalName)
		if err != nil {
			t.Fatal(err)
		}
		tok := otp.Token{UID: uid, Counter: uint16(0x8000 | n), TimestampLow: 0xc541 + uint16(i), TimestampHigh: 0xa7, Use: uint8(i), Random: 0x1234}
		got := decrypt(t, url, otp.Generate(k.PublicName, key, tok))
		want := fmt.Sprintf("OK counter=%04x low=%04x high=a7 use=%02x\n", 0x8000|n, 0xc541+i, i)
		if got != want {
			t.Errorf("decrypt(key %d, %s) = %q, want %q", k.SerialNr, k.PublicName, got, want)
		}
		// The right public ID with another key's token: corrupt.
		other := recs[(n+1)%len(recs)].Key
		otherKey, _ := otp.ParseKey(other.AESKey)
		if got := decrypt(t, url, otp.Generate(k.PublicName, otherKey, tok)); got != "ERR Corrupt OTP\n" {
			t.Errorf("decrypt(key %d with key %d's AES key) = %q, want %q", k.SerialNr, other.SerialNr, got, "ERR Corrupt OTP\n")
		}
	}
	key, _ := otp.ParseKey(recs[0].Key.AESKey)
	unknown := otp.Generate("vvvvvvvvvvvv", key, otp.Token{Counter: 1})
	if got := decrypt(t, url, unknown); got != "ERR Unknown yubikey\n" {
		t.Errorf("decrypt(unknown public ID) = %q, want %q", got, "ERR Unknown yubikey\n")
	}
}

const batchSize = 1000

// TestImportDecrypt is the acceptance test: generated keys, signed and
// encrypted with gpg, imported by ykksm-import (in process on SQLite and
// MariaDB, and through gpg), then decrypted over HTTP.
func TestImportDecrypt(t *testing.T) {
	prepare(t)
	w := world
	dir := t.TempDir()

	csv := mustRun(t, nil, nil, "ykksm-gen-keys", "--urandom", "1", fmt.Sprint(batchSize))
	recs, err := keyprov.Parse(strings.NewReader(csv))
	if err != nil || len(recs) != batchSize {
		t.Fatalf("ykksm-gen-keys output: %d keys, %v", len(recs), err)
	}
	// The operator's command: sign with the generator's key, encrypt to the KSM.
	msg, err := w.Gen.Run([]byte(csv), "--trust-model", "always", "--armor", "--sign", "--encrypt",
		"-r", w.KSMKey.ID(), "-u", w.Signer.ID())
	if err != nil {
		t.Fatal(err)
	}
	ksmSecret := writeFile(t, dir, "ksm-secret.asc", must[[]byte](t)(w.Gen.Run(nil, "--armor", "--export-secret-keys", w.KSMKey.Fingerprint)))
	signerPublic := writeFile(t, dir, "signer-public.asc", must[[]byte](t)(w.Gen.Run(nil, "--armor", "--export", w.Signer.Fingerprint)))

	wantOut := fmt.Sprintf("encrypted to: %s\nsigned by: %s (fingerprint %s, Key Generator <gen@example.org>)\nimported %d keys\n",
		w.KSMKey.EncryptionKeyID(), w.Signer.Creator(), w.Signer.SigningFingerprint, batchSize)
	dbs := []struct {
		name, dsn string
		env       []string
		args      []string
	}{
		{"sqlite", "sqlite:" + filepath.Join(dir, "k.db"), nil, []string{"--keyring", ksmSecret, "--keyring", signerPublic}},
		{"mariadb", testdb.MySQL(t), nil, []string{"--keyring", ksmSecret, "--keyring", signerPublic}},
		{"sqlite-gpg", "sqlite:" + filepath.Join(dir, "k-gpg.db"), []string{"GNUPGHOME=" + w.KSM.Dir}, []string{"--gpg"}},
	}
	var sums []string
	var first []ksm.Key
	for _, db := range dbs {
		r := run(t, []byte(msg), db.env, "ykksm-import", append(db.args, "--database", db.dsn)...)
		if r.code != 0 || r.stdout != wantOut || r.stderr != "" {
			t.Fatalf("%s: ykksm-import: exit %d\nstdout %q\nwant   %q\nstderr %q", db.name, r.code, r.stdout, wantOut, r.stderr)
		}
		keys := dump(t, db.dsn)
		if len(keys) != batchSize {
			t.Fatalf("%s: %d keys imported, want %d", db.name, len(keys), batchSize)
		}
		for i, k := range keys {
			want := recs[i].Key
			want.Creator = w.Signer.Creator()
			if k != want {
				t.Fatalf("%s: key %d = %+v, want %+v", db.name, i, k, want)
			}
		}
		if first == nil {
			first = keys
		}
		sums = append(sums, checksum(t, db.dsn))
		checkDecrypt(t, startKSM(t, db.dsn), recs)
	}
	if sums[0] == "" || len(sums[0]) != 10 || sums[0] != sums[1] || sums[0] != sums[2] {
		t.Errorf("ykksm-checksum of the imports = %q, want three equal 10-digit sums", sums)
	}

	// Export prints what ykksm-gen-keys made, data lines only, same order.
	var dataLines strings.Builder
	for _, line := range strings.SplitAfter(csv, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			dataLines.WriteString(line)
		}
	}
	for _, db := range dbs[:2] {
		if got := mustRun(t, nil, nil, "ykksm-export", "--database", db.dsn); got != dataLines.String() {
			t.Errorf("%s: ykksm-export differs from the generated key lines", db.name)
		}
	}
}

// TestImportRefused feeds ykksm-import bad batches; each must fail with exit
// 1 and a clear message, and leave the database as it was.
func TestImportRefused(t *testing.T) {
	prepare(t)
	w := world
	dir := t.TempDir()
	csv := mustRun(t, nil, nil, "ykksm-gen-keys", "--urandom", "1", fmt.Sprint(batchSize))
	seal := func(plain string, signer *pgptest.Key, armor bool, to ...pgptest.Key) []byte {
		m, err := w.Gen.Message([]byte(plain), signer, armor, to...)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	good := seal(csv, &w.Signer, true, w.KSMKey)
	goodBin := seal(csv, &w.Signer, false, w.KSMKey)
	ksmSecret := writeFile(t, dir, "ksm-secret.asc", must[[]byte](t)(w.Gen.ExportSecret(w.KSMKey, true)))
	signerPublic := writeFile(t, dir, "signer-public.asc", must[[]byte](t)(w.Gen.ExportPublic(w.Signer, true)))

	// A malformed line in the middle: the AES key of serial 500 loses a digit.
	lines := strings.Split(csv, "\n")
	badLine := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "500,") {
			f := strings.Split(l, ",")
			f[3] = f[3][1:]
			lines[i] = strings.Join(f, ",")
			badLine = i + 1
		}
	}
	malformed := strings.Join(lines, "\n")
	flipArmor := func(m []byte) []byte {
		m = bytes.Clone(m)
		ls := bytes.Split(m, []byte("\n"))
		l := ls[len(ls)/2]
		if l[10] == 'A' {
			l[10] = 'B'
		} else {
			l[10] = 'A'
		}
		return m
	}
	flipBin := func(m []byte) []byte {
		m = bytes.Clone(m)
		m[len(m)/2] ^= 0x10
		return m
	}

	// Two databases with the batch already in, and a third, empty.
	type database struct{ name, dsn string }
	dbs := []database{
		{"sqlite", "sqlite:" + filepath.Join(dir, "k.db")},
		{"mariadb", testdb.MySQL(t)},
	}
	native := []string{"--keyring", ksmSecret, "--keyring", signerPublic}
	for _, db := range dbs {
		mustRun(t, good, nil, "ykksm-import", append(native, "--database", db.dsn)...)
	}
	dbs = append(dbs, database{"mariadb-empty", testdb.MySQL(t)})
	gpgEnv := []string{"GNUPGHOME=" + w.KSM.Dir}

	tests := []struct {
		name string
		msg  []byte
		env  []string
		args []string
		want string // in standard error
	}{
		{"unsigned", seal(csv, nil, true, w.KSMKey), nil, native, "not signed"},
		{"unsigned-gpg", seal(csv, nil, true, w.KSMKey), gpgEnv, []string{"--gpg"}, "not signed"},
		{"stranger", seal(csv, &w.Stranger, true, w.KSMKey), nil, native, "not trusted"},
		{"stranger-gpg", seal(csv, &w.Stranger, true, w.KSMKey), gpgEnv, []string{"--gpg"}, "not trusted"},
		{"stranger-signed-only", seal(csv, &w.Stranger, true), nil, native, "not trusted"},
		{"corrupt-armored", flipArmor(good), nil, native, "malformed"},
		{"corrupt-armored-gpg", flipArmor(good), gpgEnv, []string{"--gpg"}, "malformed"},
		{"corrupt-binary", flipBin(goodBin), nil, native, "malformed"},
		{"corrupt-binary-gpg", flipBin(goodBin), gpgEnv, []string{"--gpg"}, "malformed"},
		{"truncated", good[:len(good)/2], nil, native, "malformed"},
		{"truncated-binary-gpg", goodBin[:len(goodBin)/2], gpgEnv, []string{"--gpg"}, "malformed"},
		{"malformed-line", seal(malformed, &w.Signer, true, w.KSMKey), nil, native, fmt.Sprintf("line %d: aesKey", badLine)},
		{"wrong-recipient", seal(csv, &w.Signer, true, w.Stranger), nil, native, "no secret key"},
	}
	for _, db := range dbs {
		before, sum := dump(t, db.dsn), checksum(t, db.dsn)
		cases := tests
		if db.name != "mariadb-empty" {
			// The same batch again: every key is a duplicate.
			cases = append(cases, struct {
				name string
				msg  []byte
				env  []string
				args []string
				want string
			}{"duplicate", good, nil, native, "already in the database"})
		}
		for _, tt := range cases {
			r := run(t, tt.msg, tt.env, "ykksm-import", append(tt.args, "--database", db.dsn)...)
			if r.code != 1 || !strings.Contains(r.stderr, tt.want) || strings.Contains(r.stdout, "imported") {
				t.Errorf("%s/%s: exit %d, stderr %q, stdout %q; want exit 1 and %q", db.name, tt.name, r.code, r.stderr, r.stdout, tt.want)
			}
			if !strings.HasPrefix(r.stderr, "ykksm-import: ") {
				t.Errorf("%s/%s: stderr %q, want it to start with the command name", db.name, tt.name, r.stderr)
			}
			after := dump(t, db.dsn)
			if len(after) != len(before) || checksum(t, db.dsn) != sum {
				t.Fatalf("%s/%s: the database changed: %d keys, was %d", db.name, tt.name, len(after), len(before))
			}
		}
	}
}

// TestExportImport moves keys from one KSM to another: ykksm-export signs
// with the first KSM's key and encrypts to the second's, ykksm-import on the
// second trusts the first's public key.
func TestExportImport(t *testing.T) {
	prepare(t)
	w := world
	dir := t.TempDir()
	csv := mustRun(t, nil, nil, "ykksm-gen-keys", "--urandom", "100", "199")
	msg, err := w.Gen.Message([]byte(csv), &w.Signer, true, w.KSMKey)
	if err != nil {
		t.Fatal(err)
	}
	ksm1Secret := writeFile(t, dir, "ksm1-secret.asc", must[[]byte](t)(w.Gen.ExportSecret(w.KSMKey, true)))
	ksm1Public := writeFile(t, dir, "ksm1-public.gpg", must[[]byte](t)(w.Gen.ExportPublic(w.KSMKey, false)))
	ksm2Secret := writeFile(t, dir, "ksm2-secret.gpg", must[[]byte](t)(w.Gen.ExportSecret(w.RSA, false)))
	ksm2Public := writeFile(t, dir, "ksm2-public.asc", must[[]byte](t)(w.Gen.ExportPublic(w.RSA, true)))
	signerPublic := writeFile(t, dir, "signer-public.asc", must[[]byte](t)(w.Gen.ExportPublic(w.Signer, true)))

	ksm1 := "sqlite:" + filepath.Join(dir, "ksm1.db")
	ksm2 := testdb.MySQL(t)
	mustRun(t, msg, nil, "ykksm-import", "--keyring", ksm1Secret, "--keyring", signerPublic, "--database", ksm1)

	moved := mustRun(t, nil, nil, "ykksm-export", "--database", ksm1, "--encrypt-to", ksm2Public, "--sign-with", ksm1Secret)
	if !strings.HasPrefix(moved, "-----BEGIN PGP MESSAGE-----") {
		t.Fatalf("ykksm-export --encrypt-to wrote %.60q", moved)
	}
	// KSM 2 does not trust the generator's batch signer here, only KSM 1.
	r := run(t, []byte(moved), nil, "ykksm-import", "--keyring", ksm2Secret, "--keyring", signerPublic, "--database", ksm2)
	if r.code != 1 || !strings.Contains(r.stderr, "not trusted") {
		t.Errorf("import signed by an untrusted KSM: exit %d, %q", r.code, r.stderr)
	}
	out := mustRun(t, []byte(moved), nil, "ykksm-import", "--keyring", ksm2Secret, "--keyring", ksm1Public, "--database", ksm2)
	if want := fmt.Sprintf("signed by: %s (", w.KSMKey.Creator()); !strings.Contains(out, want) || !strings.HasSuffix(out, "imported 100 keys\n") {
		t.Errorf("ykksm-import on KSM 2: %q", out)
	}
	if a, b := checksum(t, ksm1), checksum(t, ksm2); a != b || len(a) != 10 {
		t.Errorf("ykksm-checksum: KSM 1 %q, KSM 2 %q, want equal", a, b)
	}
	// The keys are the same; the creator on KSM 2 names KSM 1's key.
	k1, k2 := dump(t, ksm1), dump(t, ksm2)
	for i := range k1 {
		k1[i].Creator = w.KSMKey.Creator()
		if k1[i] != k2[i] {
			t.Fatalf("key %d: KSM 1 %+v, KSM 2 %+v", i, k1[i], k2[i])
		}
	}
	// gpg, on KSM 2's side, opens the export too.
	gpgHome, err := pgptest.NewHome()
	if err != nil {
		t.Fatal(err)
	}
	defer gpgHome.Close()
	for _, f := range []string{ksm2Secret, ksm1Public} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := gpgHome.Import(data); err != nil {
			t.Fatal(err)
		}
	}
	ksm3 := "sqlite:" + filepath.Join(dir, "ksm3.db")
	mustRun(t, []byte(moved), []string{"GNUPGHOME=" + gpgHome.Dir}, "ykksm-import", "--gpg", "--database", ksm3)
	if got := checksum(t, ksm3); got != checksum(t, ksm1) {
		t.Errorf("ykksm-checksum after --gpg import = %q, want %q", got, checksum(t, ksm1))
	}
}
