package helper

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"

	"github.com/ykstack/ykstack/pam/yubipam"
)

// FD is the descriptor on which the C module hands the helper its socket.
const FD = 3

// Options configure Serve.
type Options struct {
	// Stdout and Stderr are the targets of debug_file=stdout and
	// debug_file=stderr (the PAM application's own, inherited).
	Stdout, Stderr io.Writer
	// Env, when its fields are set, overrides yubipam's defaults (tests).
	Env yubipam.Env
}

// ServeFD serves the module on descriptor fd, which must be a socket (so
// that running the helper by hand fails clearly instead of reading a
// terminal).
func ServeFD(ctx context.Context, fd int, opts Options) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil || st.Mode&syscall.S_IFMT != syscall.S_IFSOCK {
		return fmt.Errorf("helper: descriptor %d is not a socket: this program is run by pam_yubico.so, not by hand", fd)
	}
	f := os.NewFile(uintptr(fd), "pam_yubico.so")
	defer f.Close()
	return Serve(ctx, f, opts)
}

// Serve runs one authentication for the module on rw: it reads the module's
// arguments, runs yubipam.Authenticate with the module's PAM handle as the
// transaction and sends the result.
func Serve(ctx context.Context, rw io.ReadWriter, opts Options) error {
	c := &conn{r: bufio.NewReader(rw), w: rw}
	m, err := readMessage(c.r)
	if err != nil {
		return fmt.Errorf("helper: reading the start message: %w", err)
	}
	if m.typ != msgStart {
		return fmt.Errorf("%w: first message %q, want start", ErrProtocol, m.typ)
	}
	if _, err := m.u32(); err != nil { // flags: ignored, like the original
		return err
	}
	argc, err := m.u32()
	if err != nil {
		return err
	}
	if argc > maxMessage/4 {
		return fmt.Errorf("%w: %d arguments", ErrProtocol, argc)
	}
	args := make([]string, 0, argc)
	for range argc {
		a, err := m.str()
		if err != nil {
			return err
		}
		args = append(args, a)
	}

	env := opts.Env
	if env.Log == nil {
		env.Log = slog.New(&logHandler{c: c, mu: new(sync.Mutex)})
	}
	if env.Stdout == nil {
		env.Stdout = opts.Stdout
	}
	if env.Stderr == nil {
		env.Stderr = opts.Stderr
	}
	code := yubipam.Authenticate(ctx, c, args, env)
	if c.err != nil {
		return c.err
	}
	return c.send(newMessage(msgResult).u32(uint32(code)))
}

// conn is the module's PAM handle seen through the socket.
type conn struct {
	r   *bufio.Reader
	mu  sync.Mutex // serialises writes (logs may come from any goroutine)
	w   io.Writer
	err error // first transport error: the module is gone
}

func (c *conn) send(b *builder) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return writeMessage(c.w, b)
}

// call sends a request and reads its answer, which must be of type want.
func (c *conn) call(b *builder, want byte) (*message, error) {
	if c.err != nil {
		return nil, c.err
	}
	if err := c.send(b); err != nil {
		c.err = fmt.Errorf("helper: writing to the module: %w", err)
		return nil, c.err
	}
	m, err := readMessage(c.r)
	if err == nil && m.typ != want {
		err = fmt.Errorf("%w: answer %q, want %q", ErrProtocol, m.typ, want)
	}
	if err != nil {
		c.err = fmt.Errorf("helper: reading from the module: %w", err)
		return nil, c.err
	}
	return m, nil
}

// codeString reads a (code, string) answer; present is read first when
// withPresent is set.
func readAnswer(m *message, withPresent bool) (code yubipam.Code, present bool, s string, err error) {
	v, err := m.u32()
	if err != nil {
		return 0, false, "", err
	}
	present = true
	if withPresent {
		p, err := m.u32()
		if err != nil {
			return 0, false, "", err
		}
		present = p != 0
	}
	s, err = m.str()
	return yubipam.Code(v), present, s, err
}

func asError(code yubipam.Code) error {
	if code == yubipam.Success {
		return nil
	}
	return code
}

// User implements yubipam.Transaction.
func (c *conn) User() (string, error) {
	m, err := c.call(newMessage(msgUser), msgUserR)
	if err != nil {
		return "", err
	}
	code, _, user, err := readAnswer(m, false)
	if err != nil {
		return "", err
	}
	return user, asError(code)
}

// Authtok implements yubipam.Transaction.
func (c *conn) Authtok() (string, bool, error) {
	return c.item(itemAuthtok)
}

func (c *conn) item(item uint32) (string, bool, error) {
	m, err := c.call(newMessage(msgGet).u32(item), msgGetR)
	if err != nil {
		return "", false, err
	}
	code, present, v, err := readAnswer(m, true)
	if err != nil {
		return "", false, err
	}
	return v, present, asError(code)
}

// SetAuthtok implements yubipam.Transaction.
func (c *conn) SetAuthtok(tok string) error {
	if strings.IndexByte(tok, 0) >= 0 {
		return yubipam.BufErr // a C string cannot hold it
	}
	m, err := c.call(newMessage(msgSet).u32(itemAuthtok).str(tok), msgSetR)
	if err != nil {
		return err
	}
	v, err := m.u32()
	if err != nil {
		return err
	}
	return asError(yubipam.Code(v))
}

// Prompt implements yubipam.Transaction.
func (c *conn) Prompt(style yubipam.Style, msg string) (string, bool, error) {
	m, err := c.call(newMessage(msgConv).u32(uint32(style)).str(msg), msgConvR)
	if err != nil {
		return "", false, err
	}
	code, present, answer, err := readAnswer(m, true)
	if err != nil {
		return "", false, err
	}
	return answer, present, asError(code)
}

// logHandler sends log records to the module, which writes them to the
// system log with pam_syslog.
type logHandler struct {
	c      *conn
	mu     *sync.Mutex
	attrs  []slog.Attr
	groups []string
}

// syslog priorities.
const (
	logErr     = 3
	logWarning = 4
	logInfo    = 6
	logDebug   = 7
)

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var sb strings.Builder
	th := slog.Handler(slog.NewTextHandler(&sb, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
				return slog.Attr{} // syslog has the time and level; the message leads the line
			}
			return a
		},
	})).WithAttrs(h.attrs)
	for _, g := range h.groups {
		th = th.WithGroup(g)
	}
	if err := th.Handle(ctx, r); err != nil {
		return err
	}
	prio := logInfo
	switch {
	case r.Level >= slog.LevelError:
		prio = logErr
	case r.Level >= slog.LevelWarn:
		prio = logWarning
	case r.Level < slog.LevelInfo:
		prio = logDebug
	}
	line := strings.TrimSpace(r.Message + " " + strings.TrimSuffix(sb.String(), "\n"))
	return h.c.send(newMessage(msgLog).u32(uint32(prio)).str(line))
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	n := *h
	n.groups = append(append([]string(nil), h.groups...), name)
	return &n
}
