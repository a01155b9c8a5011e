package cli

import (
	"math"
	"runtime/debug"
	"testing"
)

func TestLimitServerMemory(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	tests := []struct {
		name       string
		gomemlimit string
		start      int64 // the limit before the call, as the runtime set it
		want       int64
	}{
		{"no GOMEMLIMIT", "", math.MaxInt64, ServerMemoryLimit},
		{"GOMEMLIMIT wins", "100MiB", 100 << 20, 100 << 20},
		{"GOMEMLIMIT=off wins", "off", math.MaxInt64, math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetMemoryLimit(tt.start)
			getenv := func(k string) string {
				if k == "GOMEMLIMIT" {
					return tt.gomemlimit
				}
				return ""
			}
			if got := LimitServerMemory(getenv); got != tt.want {
				t.Errorf("LimitServerMemory() = %d, want %d", got, tt.want)
			}
			if got := debug.SetMemoryLimit(-1); got != tt.want {
				t.Errorf("runtime memory limit = %d, want %d", got, tt.want)
			}
		})
	}
}
