package cli

import "runtime/debug"

// ServerMemoryLimit is the soft limit on the Go runtime's memory (heap,
// stacks and runtime structures; not the binary's own pages nor SQLite's
// page cache) that the servers set for themselves. With it the garbage
// collector runs more often as the heap nears the limit, instead of letting
// a burst of short-lived request garbage grow the heap, which keeps a server
// under load below the 64 MiB of resident memory it is allowed. (Measured on
// ykksmd at 32 concurrent decrypts: the runtime held about 22 MiB, SQLite's
// own allocations about 14 MiB and the binary's pages about 14 MiB, so the
// limit is a guard against bursts, not a squeeze.) A live heap above the
// limit is still allowed: the runtime then spends at most about half of the
// CPU on collection rather than failing.
const ServerMemoryLimit = 40 << 20

// LimitServerMemory sets ServerMemoryLimit as the runtime's soft memory
// limit unless the environment sets GOMEMLIMIT, which the runtime has then
// applied already and which wins. It returns the limit in force.
func LimitServerMemory(getenv func(string) string) int64 {
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(ServerMemoryLimit)
	}
	return debug.SetMemoryLimit(-1)
}
