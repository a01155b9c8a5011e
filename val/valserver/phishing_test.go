package valserver

import (
	"testing"

	"github.com/ykstack/ykstack/val"
)

func TestDelayed(t *testing.T) {
	const now = 1_000_000
	state := func(counter, use, ts int, modified int64) val.KeyState {
		return val.KeyState{Counter: counter, Use: use, High: ts >> 16, Low: ts & 0xffff, Modified: modified}
	}
	tests := []struct {
		name       string
		prev, next val.KeyState
		want       bool
	}{
		{"clocks agree", state(1, 0, 800, now-100), state(1, 1, 1600, 0), false},
		{"key 1 s, server 100 s", state(1, 0, 800, now-100), state(1, 1, 808, 0), true},
		{"key 100 s, server 1 s", state(1, 0, 800, now-1), state(1, 1, 1600, 0), true},
		{"off by 19 s", state(1, 0, 800, now-119), state(1, 1, 1600, 0), false},
		{"off by 21 s but under 30%", state(1, 0, 0, now-1000), state(1, 1, 8*979, 0), false},
		{"off by 21 s and over 30%", state(1, 0, 0, now-50), state(1, 1, 8*29, 0), true},
		{"same second, key says 30 s", state(1, 0, 0, now), state(1, 1, 8*30, 0), true},
		{"timestamp wrapped across high", state(1, 0, 0xfff8, now-2), state(1, 1, 0x10008, 0), false},
		{"new session", state(1, 5, 0, now-1000), state(2, 0, 8, 0), false},
		{"fresh key", state(-1, -1, -65537, -1), state(1, 0, 8, 0), false},
		{"same use", state(1, 1, 0, now-1000), state(1, 1, 8, 0), false},
	}
	for _, tt := range tests {
		if got := delayed(tt.prev, tt.next, now); got != tt.want {
			t.Errorf("delayed(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}
