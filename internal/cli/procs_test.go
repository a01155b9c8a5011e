package cli

import (
	"runtime"
	"testing"
)

func TestServerProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	tests := []struct {
		name       string
		gomaxprocs string // the environment
		start      int    // GOMAXPROCS before the call, as the runtime set it
		want       int
	}{
		{"one CPU", "", 1, MinServerProcs},
		{"two CPUs", "", 2, 2},
		{"eight CPUs", "", 8, 8},
		{"GOMAXPROCS=1 wins", "1", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runtime.GOMAXPROCS(tt.start)
			getenv := func(k string) string {
				if k == "GOMAXPROCS" {
					return tt.gomaxprocs
				}
				return ""
			}
			if got := ServerProcs(getenv); got != tt.want {
				t.Errorf("ServerProcs() = %d, want %d", got, tt.want)
			}
			if got := runtime.GOMAXPROCS(0); got != tt.want {
				t.Errorf("GOMAXPROCS = %d, want %d", got, tt.want)
			}
		})
	}
}
