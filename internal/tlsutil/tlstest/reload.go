package tlstest

import (
	"bytes"
	"os"
	"strings"
	"sync"
	"syscall"
)

// HUPLog is a server's log (its stderr) that sends the process SIGHUP from
// inside the write of the first line holding Line, as `systemctl reload`
// (ExecReload=kill -HUP $MAINPID) may do the moment the server says it
// listens. A signal a process sends itself is handled before kill returns,
// so a server that has no SIGHUP handler by the time it writes Line ends
// the test process there ("signal: hangup").
type HUPLog struct {
	Line string

	mu   sync.Mutex
	b    bytes.Buffer
	sent bool
	err  error
}

// Write appends p to the log and sends SIGHUP if p is the first write
// holding Line.
func (h *HUPLog) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.b.Write(p)
	if !h.sent && strings.Contains(string(p), h.Line) {
		h.sent = true
		h.err = syscall.Kill(os.Getpid(), syscall.SIGHUP)
	}
	return n, err
}

// String returns the log so far.
func (h *HUPLog) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.b.String()
}

// Sent reports whether SIGHUP was sent, and the error of sending it.
func (h *HUPLog) Sent() (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sent, h.err
}
