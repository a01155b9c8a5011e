package cli

import "runtime"

// MinServerProcs is the fewest Go schedulers (GOMAXPROCS) ykvald runs with.
//
// ykvald's durable SQLite commits end in fsync, a blocking system call made
// by the goroutine that commits. While it waits, that goroutine keeps its
// scheduler, and with only one (the runtime's choice on a one-CPU machine or
// under a one-CPU affinity mask) every other request waits with it until the
// runtime's monitor notices and hands the scheduler on, which can take up to
// 10 ms when the process has been busy. Measured with ykvald confined to one
// CPU (taskset), embedded KSM and SQLite, 32 concurrent verifies: with one
// scheduler 4,000–15,300 verifies/s from run to run and p99 up to 11 ms; with
// two a steady 15,000–16,900/s and p99 under 6 ms; with four 10,000–11,000/s.
const MinServerProcs = 2

// ServerProcs raises GOMAXPROCS to MinServerProcs when the runtime chose
// fewer and the environment does not set GOMAXPROCS, which then wins. It
// returns the setting in force.
func ServerProcs(getenv func(string) string) int {
	if n := runtime.GOMAXPROCS(0); n < MinServerProcs && getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(MinServerProcs)
	}
	return runtime.GOMAXPROCS(0)
}
