package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ykstack/ykstack/internal/cli"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/keyprov"
	"github.com/ykstack/ykstack/otp/modhex"
)

// openPTY returns a new pseudo-terminal's master and slave ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open slave: %v", err)
	}
	return m, s
}

// bigBatch returns a key file of n keys.
func bigBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(keyprov.Magic + "\n")
	for i := 1; i <= n; i++ {
		k := ksm.Key{SerialNr: int64(i), PublicName: modhex.EncodeToString([]byte{0, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}),
			InternalName: fmt.Sprintf("%012x", i), AESKey: fmt.Sprintf("%032x", i), LockCode: "000000000000", Created: "2024-01-02T03:04:05"}
		b.WriteString(keyprov.FormatLine(k, "", nil) + "\n")
	}
	return b.Bytes()
}

func TestProgress(t *testing.T) {
	f := setup(t)
	msg, err := f.Gen.Message(bigBatch(2500), &f.Signer, true, f.KSMKey)
	if err != nil {
		t.Fatal(err)
	}
	args := func(dsn string) []string {
		return []string{"--keyring", f.ksmSecret, "--keyring", f.signers, "--database", dsn}
	}

	// Not a terminal: no progress.
	r := runImport(t, msg, nil, args(testdb.SQLite(t))...)
	if r.err != nil || r.stderr != "" || r.stdout != fmt.Sprintf("encrypted to: %s\nsigned by: %s (fingerprint %s, Key Generator <gen@example.org>)\nimported 2500 keys\n",
		f.KSMKey.EncryptionKeyID(), f.Signer.Creator(), f.Signer.SigningFingerprint) {
		t.Errorf("run = %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}

	// A terminal: a progress line, updated in place.
	master, slave := openPTY(t)
	defer master.Close()
	seen := make(chan string)
	go func() {
		b, _ := io.ReadAll(master) // ends with EIO once the slave is closed
		seen <- string(b)
	}()
	var stdout bytes.Buffer
	err = run(context.Background(), cli.Env{Args: args(testdb.SQLite(t)), Stdin: bytes.NewReader(msg), Stdout: &stdout, Stderr: slave,
		Getenv: func(string) string { return "" }})
	slave.Close()
	tty := <-seen
	if err != nil || !strings.HasSuffix(stdout.String(), "imported 2500 keys\n") {
		t.Fatalf("run = %v, stdout %q", err, stdout.String())
	}
	for _, want := range []string{"\rreading keys: line ", " of 2501", "importing 2500 keys in one transaction", "\r\033[K"} {
		if !strings.Contains(tty, want) {
			t.Errorf("terminal output %q does not contain %q", tty, want)
		}
	}
}
