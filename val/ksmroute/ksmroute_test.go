package ksmroute

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ykstack/ykstack/val"
)

// ksmFunc adapts a function to val.KSM. The real KSMs (HTTP and embedded)
// are exercised through this router in val/e2e; here the KSMs only need to
// say who they are.
type ksmFunc func(ctx context.Context, otp string) (val.Decrypted, error)

func (f ksmFunc) Decrypt(ctx context.Context, otp string) (val.Decrypted, error) { return f(ctx, otp) }

// named answers with a counter identifying it.
func named(id uint16) val.KSM {
	return ksmFunc(func(context.Context, string) (val.Decrypted, error) { return val.Decrypted{Counter: id}, nil })
}

func failing(err error) val.KSM {
	return ksmFunc(func(context.Context, string) (val.Decrypted, error) { return val.Decrypted{}, err })
}

var (
	errRejected    = fmt.Errorf("%w: unknown yubikey", val.ErrKSMRejected)
	errUnavailable = fmt.Errorf("%w: connection refused", val.ErrKSMUnavailable)
	token          = "tjduvtcjbfeuvhehdvjjlbchtlenfgku" // 32 characters
)

func TestRouteLongestPrefix(t *testing.T) {
	r, err := New([]Route{
		{Prefix: "", KSMs: []val.KSM{named(1)}},
		{Prefix: "cc", KSMs: []val.KSM{named(2)}},
		{Prefix: "ccbb", KSMs: []val.KSM{named(3)}},
		{Prefix: "vv", KSMs: []val.KSM{named(4)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		publicID string
		want     uint16
	}{
		{"idkfefrdhtru", 1},
		{"", 1},
		{"cccccccccccb", 2},
		{"ccbbcccccccb", 3},
		{"ccb", 2},
		{"vvcccccccccc", 4},
		{"cbcccccccccc", 1},
	}
	for _, tt := range tests {
		d, err := r.Decrypt(context.Background(), tt.publicID+token)
		if err != nil || d.Counter != tt.want {
			t.Errorf("Decrypt(%s+token) = KSM %d, %v; want KSM %d", tt.publicID, d.Counter, err, tt.want)
		}
	}
}

func TestNoRoute(t *testing.T) {
	r, err := New([]Route{{Prefix: "vv", KSMs: []val.KSM{named(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Decrypt(context.Background(), "cccccccccccb"+token)
	if !errors.Is(err, val.ErrKSMRejected) || errors.Is(err, val.ErrKSMUnavailable) {
		t.Errorf("Decrypt(unrouted) error = %v, want only val.ErrKSMRejected", err)
	}
}

func TestNewInvalid(t *testing.T) {
	tests := []struct {
		name   string
		routes []Route
		nerr   int
	}{
		{"empty", nil, 1},
		{"no ksm", []Route{{Prefix: "cc"}}, 1},
		{"nil ksm", []Route{{Prefix: "cc", KSMs: []val.KSM{nil}}}, 1},
		{"not modhex", []Route{{Prefix: "xx", KSMs: []val.KSM{named(1)}}}, 1},
		{"upper case", []Route{{Prefix: "CC", KSMs: []val.KSM{named(1)}}}, 1},
		{"too long", []Route{{Prefix: "ccccccccccccccccc", KSMs: []val.KSM{named(1)}}}, 1},
		{"twice", []Route{{KSMs: []val.KSM{named(1)}}, {KSMs: []val.KSM{named(2)}}}, 1},
		{"all at once", []Route{{Prefix: "xx"}, {Prefix: "xx", KSMs: []val.KSM{named(1)}}}, 4},
	}
	for _, tt := range tests {
		_, err := New(tt.routes)
		if !errors.Is(err, ErrConfig) {
			t.Errorf("New(%s) error = %v, want ErrConfig", tt.name, err)
			continue
		}
		if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != tt.nerr {
			t.Errorf("New(%s) reported %d problems, want %d: %v", tt.name, n, tt.nerr, err)
		}
	}
}

func TestFanOut(t *testing.T) {
	other := errors.New("some error")
	tests := []struct {
		name string
		ksms []val.KSM
		want error // nil: success
	}{
		{"one ok", []val.KSM{named(1)}, nil},
		{"one rejects", []val.KSM{failing(errRejected)}, val.ErrKSMRejected},
		{"one unavailable", []val.KSM{failing(errUnavailable)}, val.ErrKSMUnavailable},
		{"one unknown error", []val.KSM{failing(other)}, val.ErrKSMUnavailable},
		{"ok among failures", []val.KSM{failing(errRejected), failing(errUnavailable), named(1)}, nil},
		{"all reject", []val.KSM{failing(errRejected), failing(errRejected)}, val.ErrKSMRejected},
		{"reject and unavailable", []val.KSM{failing(errRejected), failing(errUnavailable)}, val.ErrKSMUnavailable},
		{"reject and unknown error", []val.KSM{failing(errRejected), failing(other)}, val.ErrKSMUnavailable},
	}
	for _, tt := range tests {
		d, err := FanOut(context.Background(), tt.ksms, "cccccccccccb"+token)
		switch {
		case tt.want == nil && (err != nil || d.Counter != 1):
			t.Errorf("FanOut(%s) = %+v, %v; want KSM 1's answer", tt.name, d, err)
		case tt.want != nil && !errors.Is(err, tt.want):
			t.Errorf("FanOut(%s) error = %v, want %v", tt.name, err, tt.want)
		case tt.want == val.ErrKSMUnavailable && errors.Is(err, val.ErrKSMRejected):
			t.Errorf("FanOut(%s) error = %v matches val.ErrKSMRejected too", tt.name, err)
		}
	}
}

// TestFanOutFirstWins checks that a fast answer does not wait for a slow KSM
// and that the slow one's context is cancelled.
func TestFanOutFirstWins(t *testing.T) {
	var cancelled atomic.Bool
	done := make(chan struct{})
	slow := ksmFunc(func(ctx context.Context, _ string) (val.Decrypted, error) {
		defer close(done)
		select {
		case <-ctx.Done():
			cancelled.Store(true)
			return val.Decrypted{}, fmt.Errorf("%w: %w", val.ErrKSMUnavailable, ctx.Err())
		case <-time.After(time.Minute):
			return val.Decrypted{Counter: 9}, nil
		}
	})
	d, err := FanOut(context.Background(), []val.KSM{slow, named(1)}, "cccccccccccb"+token)
	if err != nil || d.Counter != 1 {
		t.Fatalf("FanOut(slow, fast) = %+v, %v; want the fast KSM's answer", d, err)
	}
	<-done
	if !cancelled.Load() {
		t.Error("the slow KSM's context was not cancelled")
	}
}
