package helper

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/pam/yubipam"
)

const testOTP = "ccccccbchvthdteffujedcflbtfthbdfdtghhjcbchrl"

type okVerifier struct{ otps []string }

func (v *okVerifier) Verify(_ context.Context, otp string) error {
	v.otps = append(v.otps, otp)
	return nil
}

// module plays the C module's side of the protocol: it answers requests
// from a script and records what it saw.
type module struct {
	user    string
	answer  string
	authtok *string
	logs    []string
	prompts []string
	set     []string
}

func (m *module) run(t *testing.T, c net.Conn, args []string) (result uint32, err error) {
	start := newMessage(msgStart).u32(0).u32(uint32(len(args)))
	for _, a := range args {
		start.str(a)
	}
	if err := writeMessage(c, start); err != nil {
		return 0, err
	}
	r := bufio.NewReader(c)
	for {
		msg, err := readMessage(r)
		if err != nil {
			return 0, err
		}
		var reply *builder
		switch msg.typ {
		case msgUser:
			reply = newMessage(msgUserR).u32(0).str(m.user)
		case msgGet:
			item, _ := msg.u32()
			if item != itemAuthtok || m.authtok == nil {
				reply = newMessage(msgGetR).u32(0).u32(0).str("")
			} else {
				reply = newMessage(msgGetR).u32(0).u32(1).str(*m.authtok)
			}
		case msgSet:
			msg.u32()
			v, _ := msg.str()
			m.set = append(m.set, v)
			reply = newMessage(msgSetR).u32(0)
		case msgConv:
			msg.u32()
			p, _ := msg.str()
			m.prompts = append(m.prompts, p)
			reply = newMessage(msgConvR).u32(0).u32(1).str(m.answer)
		case msgLog:
			msg.u32()
			l, _ := msg.str()
			m.logs = append(m.logs, l)
			continue
		case msgResult:
			return msg.u32()
		default:
			t.Fatalf("unexpected message %q", msg.typ)
		}
		if err := writeMessage(c, reply); err != nil {
			return 0, err
		}
	}
}

func TestServe(t *testing.T) {
	authfile := filepath.Join(t.TempDir(), "authfile")
	os.WriteFile(authfile, []byte("bob:ccccccbchvth\n"), 0o600)
	tests := []struct {
		name   string
		m      module
		args   []string
		want   yubipam.Code
		prompt bool
		set    []string
	}{
		{"good", module{user: "bob", answer: testOTP}, nil, yubipam.Success, true, nil},
		{"password and OTP", module{user: "bob", answer: "pw" + testOTP}, nil, yubipam.Success, true, []string{"pw"}},
		{"unknown user", module{user: "dave", answer: testOTP}, nil, yubipam.UserUnknown, false, nil},
		{"use_first_pass", module{user: "bob", authtok: new(testOTP)}, []string{"use_first_pass"}, yubipam.Success, false, nil},
		{"use_first_pass without", module{user: "bob"}, []string{"use_first_pass"}, yubipam.AuthErr, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := net.Pipe()
			defer a.Close()
			v := &okVerifier{}
			done := make(chan error, 1)
			go func() {
				done <- Serve(context.Background(), b, Options{Env: yubipam.Env{
					NewVerifier: func(yubipam.ServerOptions) (yubipam.Verifier, error) { return v, nil },
				}})
				b.Close()
			}()
			m := tt.m
			args := append([]string{"id=1", "authfile=" + authfile, "bogus=secretvalue"}, tt.args...)
			code, err := m.run(t, a, args)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("Serve = %v", err)
			}
			if yubipam.Code(code) != tt.want {
				t.Errorf("result = %v, want %v", yubipam.Code(code), tt.want)
			}
			if (len(m.prompts) == 1) != tt.prompt || tt.prompt && m.prompts[0] != "YubiKey for `bob': " {
				t.Errorf("prompts = %q, want prompted %v", m.prompts, tt.prompt)
			}
			if strings.Join(m.set, ",") != strings.Join(tt.set, ",") {
				t.Errorf("PAM_AUTHTOK set to %q, want %q", m.set, tt.set)
			}
			logs := strings.Join(m.logs, "\n")
			if !strings.Contains(logs, "ignoring unknown argument arg=bogus") || strings.Contains(logs, "secretvalue") {
				t.Errorf("logs = %q, want the unknown argument's name only", logs)
			}
		})
	}
}

func TestServeProtocolErrors(t *testing.T) {
	for name, input := range map[string][]byte{
		"empty":          nil,
		"not start":      frame(newMessage(msgUser)),
		"short start":    append([]byte{0, 0, 0, 2}, msgStart, 0),
		"huge length":    {0xff, 0, 0, 0},
		"zero length":    {0, 0, 0, 0},
		"truncated args": frame(newMessage(msgStart).u32(0).u32(3).str("id=1")),
	} {
		err := Serve(context.Background(), struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(input), io.Discard}, Options{})
		if err == nil {
			t.Errorf("Serve(%s) = nil, want an error", name)
		}
	}
	// The module goes away in the middle: Serve returns an error, never
	// a result.
	a, b := net.Pipe()
	go func() {
		writeMessage(a, newMessage(msgStart).u32(0).u32(1).str("authfile=/dev/null"))
		readMessage(bufio.NewReader(a)) // the User request
		a.Close()
	}()
	if err := Serve(context.Background(), b, Options{}); err == nil {
		t.Errorf("Serve with the module gone = nil, want an error")
	}
}

func TestServeFDNotSocket(t *testing.T) {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := ServeFD(context.Background(), int(f.Fd()), Options{}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("ServeFD(/dev/null) = %v, want a not-a-socket error", err)
	}
}

func frame(b *builder) []byte {
	var buf bytes.Buffer
	writeMessage(&buf, b)
	return buf.Bytes()
}

func FuzzReadMessage(f *testing.F) {
	f.Add(frame(newMessage(msgStart).u32(0).u32(1).str("id=1")))
	f.Add(frame(newMessage(msgConvR).u32(0).u32(1).str("answer")))
	f.Add([]byte{0, 0, 0, 1, 'R'})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMessage(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			if m != nil {
				t.Fatal("message and error")
			}
			return
		}
		for range 8 {
			if _, err := m.str(); err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("str: %v", err)
			}
		}
	})
}
