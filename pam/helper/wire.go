// Package helper is the Go half of ykstack's pam_yubico module: the process
// the C module (pam/module/pam_yubico.c) starts for every authentication.
// It speaks the module's wire protocol over the socket it inherits as
// descriptor 3, turns the module's PAM handle into a yubipam.Transaction,
// runs yubipam.Authenticate and reports the PAM code.
//
// Wire protocol: every message is a 4-byte big-endian length, then that many
// bytes: a type byte and its fields. A number is 4 bytes big-endian; a string
// is a number (its length) and its bytes. The module sends Start (flags,
// argument count, arguments). The helper then sends requests, each answered
// by the module before the next: User → (code, user), GetItem(item) →
// (code, present, value), SetItem(item, value) → (code), Conv(style, text)
// → (code, present, answer). Log(priority, text) has no answer. Result(code)
// ends the exchange. Messages are at most 64 KiB.
package helper

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Message types.
const (
	msgStart   = 'A'
	msgUser    = 'U'
	msgUserR   = 'u'
	msgGet     = 'G'
	msgGetR    = 'g'
	msgSet     = 'S'
	msgSetR    = 's'
	msgConv    = 'C'
	msgConvR   = 'c'
	msgLog     = 'L'
	msgResult  = 'R'
	maxMessage = 64 << 10
)

// PAM item types the helper asks for.
const (
	itemService = 1 // PAM_SERVICE
	itemTTY     = 3 // PAM_TTY
	itemRHost   = 4 // PAM_RHOST
	itemAuthtok = 6 // PAM_AUTHTOK
)

// ErrProtocol means the peer sent something the protocol does not allow.
var ErrProtocol = errors.New("helper: protocol error")

// message is one decoded message.
type message struct {
	typ byte
	b   []byte // fields not yet read
}

func (m *message) u32() (uint32, error) {
	if len(m.b) < 4 {
		return 0, fmt.Errorf("%w: short number in %q message", ErrProtocol, m.typ)
	}
	v := binary.BigEndian.Uint32(m.b)
	m.b = m.b[4:]
	return v, nil
}

func (m *message) str() (string, error) {
	n, err := m.u32()
	if err != nil {
		return "", err
	}
	if uint32(len(m.b)) < n {
		return "", fmt.Errorf("%w: short string in %q message", ErrProtocol, m.typ)
	}
	s := string(m.b[:n])
	m.b = m.b[n:]
	return s, nil
}

// builder encodes one message.
type builder struct{ b []byte }

func newMessage(typ byte) *builder { return &builder{b: []byte{typ}} }

func (b *builder) u32(v uint32) *builder { b.b = binary.BigEndian.AppendUint32(b.b, v); return b }

func (b *builder) str(s string) *builder { b.u32(uint32(len(s))); b.b = append(b.b, s...); return b }

// frame returns the message with its length prefix.
func (b *builder) frame() ([]byte, error) {
	if len(b.b) > maxMessage {
		return nil, fmt.Errorf("helper: message of %d bytes too long", len(b.b))
	}
	return binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(b.b)), uint32(len(b.b))), nil
}

// writeMessage writes b to w in one Write.
func writeMessage(w io.Writer, b *builder) error {
	hdr, err := b.frame()
	if err != nil {
		return err
	}
	_, err = w.Write(append(hdr, b.b...))
	return err
}

// readMessage reads one message.
func readMessage(r *bufio.Reader) (*message, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 1 || n > maxMessage {
		return nil, fmt.Errorf("%w: message length %d", ErrProtocol, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return &message{typ: b[0], b: b[1:]}, nil
}
