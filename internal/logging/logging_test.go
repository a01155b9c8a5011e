package logging

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func newLogger(t *testing.T, cfg Config) (*slog.Logger, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	l, closeLog, err := New(cfg, &buf)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	t.Cleanup(func() { closeLog() })
	return l, &buf
}

func TestStderrText(t *testing.T) {
	l, buf := newLogger(t, Config{})
	l.Debug("hidden")
	l.Info("decrypt", "result", "ok", "public_id", "cccccccccccb")
	l.With("a", 1).Warn("w")
	got := buf.String()
	for _, re := range []string{
		`(?m)^time=\S+ level=INFO msg=decrypt result=ok public_id=cccccccccccb$`,
		`(?m)^time=\S+ level=WARN msg=w a=1$`,
	} {
		if !regexp.MustCompile(re).MatchString(got) {
			t.Errorf("log %q does not match %s", got, re)
		}
	}
	if strings.Contains(got, "hidden") {
		t.Errorf("a debug record at Info level: %q", got)
	}
}

func TestStderrJSON(t *testing.T) {
	l, buf := newLogger(t, Config{Format: FormatJSON, Level: slog.LevelDebug})
	l.Debug("d", "n", 3)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("log = %q, want one line", buf.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("log line %q: %v", lines[0], err)
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "d" || rec["n"] != 3.0 || rec["time"] == nil {
		t.Errorf("JSON record = %v, want level DEBUG, msg d, n 3 and a time", rec)
	}
}

func TestJournal(t *testing.T) {
	for _, tt := range []struct {
		format string
		want   []string
	}{
		{FormatText, []string{
			"<7>level=DEBUG msg=d",
			"<6>level=INFO msg=i k=v",
			"<4>level=WARN msg=w g.x=1",
			`<3>level=ERROR msg=e err="two\nlines"`,
			"<3>level=ERROR+4 msg=worse",
		}},
		{FormatJSON, []string{
			`<7>{"level":"DEBUG","msg":"d"}`,
			`<6>{"level":"INFO","msg":"i","k":"v"}`,
			`<4>{"level":"WARN","msg":"w","g":{"x":1}}`,
			`<3>{"level":"ERROR","msg":"e","err":"two\nlines"}`,
			`<3>{"level":"ERROR+4","msg":"worse"}`,
		}},
	} {
		l, buf := newLogger(t, Config{Target: TargetJournal, Format: tt.format, Level: slog.LevelDebug})
		l.Debug("d")
		l.Info("i", "k", "v")
		l.WithGroup("g").Warn("w", "x", 1)
		l.Error("e", "err", "two\nlines")
		l.Log(t.Context(), slog.LevelError+4, "worse")
		got := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
		if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
			t.Errorf("%s journal log =\n%s\nwant\n%s", tt.format, strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
		}
	}
}

// TestJournalConcurrent: records logged at once keep their own priorities.
func TestJournalConcurrent(t *testing.T) {
	var mu sync.Mutex
	var buf bytes.Buffer
	w := writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
	l, _, err := New(Config{Target: TargetJournal}, w)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				l.Info("i")
				l.With("k", 1).Error("e")
			}
		})
	}
	wg.Wait()
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if line != "<6>level=INFO msg=i" && line != "<3>level=ERROR msg=e k=1" {
			t.Fatalf("journal line %q: priority and record do not agree", line)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestSyslog sends to a unixgram socket of the test's own and reads what a
// syslog daemon would get.
func TestSyslog(t *testing.T) {
	dir, err := os.MkdirTemp("", "slog") // short: socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "log.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	// log/syslog's format for a unix socket: "<PRI>Jan _2 15:04:05 TAG[PID]: MSG".
	const stamp = `[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d `
	for _, tt := range []struct {
		format string
		want   []string // regexps of the datagrams
	}{
		{FormatText, []string{
			`^<30>` + stamp + `ykksmd\[\d+\]: level=INFO msg=decrypt result=ok public_id=cccccccccccb\n$`,
			`^<28>` + stamp + `ykksmd\[\d+\]: level=WARN msg=w\n$`,
			`^<27>` + stamp + `ykksmd\[\d+\]: level=ERROR msg=e err=boom\n$`,
		}},
		{FormatJSON, []string{
			`^<30>` + stamp + `ykksmd\[\d+\]: \{"level":"INFO","msg":"decrypt","result":"ok","public_id":"cccccccccccb"\}\n$`,
			`^<28>` + stamp + `ykksmd\[\d+\]: \{"level":"WARN","msg":"w"\}\n$`,
			`^<27>` + stamp + `ykksmd\[\d+\]: \{"level":"ERROR","msg":"e","err":"boom"\}\n$`,
		}},
	} {
		var stderr bytes.Buffer
		l, closeLog, err := New(Config{Target: TargetSyslog, SyslogAddr: "unixgram:" + path, Tag: "ykksmd", Format: tt.format}, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		l.Debug("hidden")
		l.Info("decrypt", "result", "ok", "public_id", "cccccccccccb")
		l.Warn("w")
		l.Error("e", "err", "boom")
		if err := closeLog(); err != nil {
			t.Errorf("close syslog: %v", err)
		}
		for _, want := range tt.want {
			conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			b := make([]byte, 4096)
			n, err := conn.Read(b)
			if err != nil {
				t.Fatalf("read syslog datagram: %v", err)
			}
			if !regexp.MustCompile(want).Match(b[:n]) {
				t.Errorf("%s syslog datagram %q does not match %s", tt.format, b[:n], want)
			}
		}
		if stderr.Len() != 0 {
			t.Errorf("syslog target wrote to stderr: %q", stderr.String())
		}
	}

	// Nobody listening: New fails.
	_, _, err = New(Config{Target: TargetSyslog, SyslogAddr: "unixgram:" + filepath.Join(dir, "none"), Tag: "x"}, nil)
	if err == nil || !strings.Contains(err.Error(), "connect to syslog") {
		t.Errorf("New with no syslog listening = %v, want a connect error", err)
	}
}

func TestFlags(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want Config
	}{
		{nil, Config{Level: slog.LevelInfo, Format: "text", Target: "stderr", Tag: "ykksmd"}},
		{[]string{"-v"}, Config{Level: slog.LevelDebug, Format: "text", Target: "stderr", Tag: "ykksmd"}},
		{[]string{"--log-level", "WARNING", "--log-format", "json", "--log-target", "journal"},
			Config{Level: slog.LevelWarn, Format: "json", Target: "journal", Tag: "ykksmd"}},
		{[]string{"--log-target", "syslog", "--syslog-addr", "udp:127.0.0.1:514", "--log-level", "error"},
			Config{Level: slog.LevelError, Format: "text", Target: "syslog", SyslogAddr: "udp:127.0.0.1:514", Tag: "ykksmd"}},
	} {
		var f Flags
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		f.Register(fs)
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		got, err := f.Config("ykksmd")
		if err != nil || got != tt.want {
			t.Errorf("flags %q: Config = %+v, %v; want %+v", tt.args, got, err, tt.want)
		}
	}

	// Every problem at once.
	f := Flags{Level: "loud", Format: "xml", Target: "stderr", SyslogAddr: "udp:x:1"}
	_, err := f.Config("t")
	for _, want := range []string{`level "loud"`, `format "xml"`, "syslog address goes with"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Config of bad flags = %v, want it to name %s", err, want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, cfg := range []Config{
		{Target: "file"},
		{Target: TargetSyslog},
		{Target: TargetSyslog, Tag: "t", SyslogAddr: "localhost:514"},
		{Target: TargetSyslog, Tag: "t", SyslogAddr: "udp:"},
		{Format: "logfmt"},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", cfg)
		}
		if _, _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
}

func TestParseLevel(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want slog.Level
		ok   bool
	}{
		{"debug", slog.LevelDebug, true}, {"INFO", slog.LevelInfo, true}, {" warn ", slog.LevelWarn, true},
		{"warning", slog.LevelWarn, true}, {"error", slog.LevelError, true}, {"", 0, false}, {"trace", 0, false},
	} {
		got, err := ParseLevel(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func FuzzParseLevel(f *testing.F) {
	for _, s := range []string{"debug", "INFO", " warn ", "warning", "error", "", "trace"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLevel(s)
		if err != nil {
			return
		}
		switch l {
		case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
		default:
			t.Fatalf("ParseLevel(%q) = %v, not one of the four levels", s, l)
		}
		// The level's own name parses back to it.
		if back, err := ParseLevel(l.String()); err != nil || back != l {
			t.Fatalf("ParseLevel(%q) = %v, %v; want %v", l.String(), back, err, l)
		}
	})
}
