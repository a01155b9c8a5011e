package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// OpenShared returns n stores on one fresh, empty database, opened as n
// processes would open it; it registers its own cleanup on t. A backend that
// cannot be shared returns one store n times (see Single).
type OpenShared func(t *testing.T, n int) []val.Store

// Single adapts open to OpenShared by returning one store n times.
func Single(open Open) OpenShared {
	return func(t *testing.T, n int) []val.Store {
		s := open(t)
		out := make([]val.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
}

// Sizes of the concurrent tests.
const (
	racers = 16  // goroutines racing for one position
	rounds = 200 // positions they race for
)

// RunConcurrent runs the concurrency tests: goroutines spread over the
// stores open returns race for the same positions, advance one key with
// interleaved positions, enrol one key, import one key, create clients and
// enqueue, all at once; they race AdvanceKeyQueued calls (queue rows only
// for the winner) and SyncKey against AdvanceKey (one winner, and SyncKey's
// "before" is exactly what it compared against). Each must come out as if the calls had run one after
// the other: one winner per position, no lost update, no duplicate id, and no
// error (a busy SQLite database must wait, not fail).
func RunConcurrent(t *testing.T, open OpenShared) {
	tests := []struct {
		name string
		fn   func(*testing.T, []val.Store)
	}{
		{"SamePosition", testSamePosition},
		{"IncreasingPositions", testIncreasingPositions},
		{"EnrollKey", testConcurrentEnroll},
		{"ImportKey", testConcurrentImportKey},
		{"CreateClients", testConcurrentCreateClients},
		{"Enqueue", testConcurrentEnqueue},
		{"AdvanceKeyQueued", testConcurrentAdvanceKeyQueued},
		{"SyncKeyAndAdvanceKey", testSyncKeyAndAdvanceKey},
		{"SyncKeyEnroll", testConcurrentSyncKeyEnroll},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t, 2)) })
	}
}

// parallel runs fn(g) in n goroutines at once and waits for them all.
func parallel(n int, fn func(g int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range n {
		wg.Go(func() {
			<-start
			fn(g)
		})
	}
	close(start)
	wg.Wait()
}

// errs collects errors from goroutines, keeping the first few.
type errs struct {
	mu   sync.Mutex
	list []error
}

func (e *errs) add(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) < 10 {
		e.list = append(e.list, err)
	}
}

func (e *errs) report(t *testing.T) {
	t.Helper()
	for _, err := range e.list {
		t.Error(err)
	}
	if len(e.list) > 0 {
		t.FailNow()
	}
}

// at is the key state for the n-th position of a sequence: every field is
// derived from n, so a torn write would show.
func at(name string, n int) val.KeyState {
	return val.KeyState{
		PublicName: name, Active: true, Created: 1,
		Modified: int64(1700000000 + n), Counter: 1 + n/256, Use: n % 256,
		Low: n & 0xffff, High: (n >> 16) & 0xff, Nonce: fmt.Sprintf("nonce%011d", n),
	}
}

// consistent reports whether k's fields all come from one at(name, n).
func consistent(k val.KeyState) bool {
	n := (k.Counter-1)*256 + k.Use
	w := at(k.PublicName, n)
	return k.Modified == w.Modified && k.Low == w.Low && k.High == w.High && k.Nonce == w.Nonce
}

func testSamePosition(t *testing.T, stores []val.Store) {
	const name = "cccccccccccb"
	if _, err := stores[0].EnrollKey(bg, name, 1); err != nil {
		t.Fatal(err)
	}
	var e errs
	for r := range rounds {
		var wins atomic.Int32
		parallel(racers, func(g int) {
			ok, err := stores[g%len(stores)].AdvanceKey(bg, at(name, r))
			if err != nil {
				e.add(fmt.Errorf("round %d: AdvanceKey: %w", r, err))
			}
			if ok {
				wins.Add(1)
			}
		})
		e.report(t)
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d of %d concurrent AdvanceKey calls with one position returned true, want exactly 1", r, n, racers)
		}
	}
	if got, want := mustKeyState(t, stores[0], name), at(name, rounds-1); got.Pos() != want.Pos() || !consistent(got) {
		t.Errorf("final state %+v, want %+v", got, want)
	}
}

// testIncreasingPositions has goroutines advance one key, goroutine g
// trying positions g, g+G, g+2G, …, while a reader watches: the position it
// reads never goes back, every state it reads is whole, and the final state
// is the highest position any call was told it stored.
func testIncreasingPositions(t *testing.T, stores []val.Store) {
	const (
		name    = "cccccccccccb"
		writers = 8
		each    = 100
	)
	if _, err := stores[0].EnrollKey(bg, name, 1); err != nil {
		t.Fatal(err)
	}
	var (
		e        errs
		mu       sync.Mutex
		accepted []int
		done     atomic.Bool
		readerWG sync.WaitGroup
	)
	readerWG.Go(func() {
		last := val.Position{Counter: -1, Use: -1}
		for !done.Load() {
			k, err := stores[len(stores)-1].KeyState(bg, name)
			if err != nil {
				e.add(fmt.Errorf("reader: KeyState: %w", err))
				return
			}
			if k.Pos().Less(last) {
				e.add(fmt.Errorf("reader saw the position go back from %v to %v", last, k.Pos()))
				return
			}
			if k.Counter >= 0 && !consistent(k) {
				e.add(fmt.Errorf("reader saw a torn state %+v", k))
				return
			}
			last = k.Pos()
		}
	})
	parallel(writers, func(g int) {
		var mine []int
		for i := range each {
			n := g + i*writers
			ok, err := stores[g%len(stores)].AdvanceKey(bg, at(name, n))
			if err != nil {
				e.add(fmt.Errorf("AdvanceKey(%d): %w", n, err))
				return
			}
			if ok {
				mine = append(mine, n)
			}
		}
		mu.Lock()
		accepted = append(accepted, mine...)
		mu.Unlock()
	})
	done.Store(true)
	readerWG.Wait()
	e.report(t)
	if len(accepted) == 0 {
		t.Fatal("no AdvanceKey call won")
	}
	top := slices.Max(accepted)
	got := mustKeyState(t, stores[0], name)
	if want := at(name, top); got != want {
		t.Errorf("final state %+v, want the highest accepted position %d: %+v (a lost update)", got, top, want)
	}
	// The last position of all is always accepted: nothing is above it.
	if last := writers*each - 1; top != last {
		t.Errorf("highest accepted position = %d, want %d", top, last)
	}
}

func testConcurrentEnroll(t *testing.T, stores []val.Store) {
	var e errs
	for r := range 10 {
		name := fmt.Sprintf("cccccccc%04d", r)
		results := make([]val.KeyState, racers)
		parallel(racers, func(g int) {
			k, err := stores[g%len(stores)].EnrollKey(bg, name, int64(1000+g))
			if err != nil {
				e.add(fmt.Errorf("EnrollKey(%q): %w", name, err))
			}
			results[g] = k
		})
		e.report(t)
		stored := mustKeyState(t, stores[0], name)
		for g, k := range results {
			if k != stored {
				t.Errorf("EnrollKey(%q) in goroutine %d = %+v, but the stored row is %+v", name, g, k, stored)
			}
		}
	}
}

func testConcurrentImportKey(t *testing.T, stores []val.Store) {
	var e errs
	for r := range 10 {
		name := fmt.Sprintf("cccccccc%04d", r)
		var wrote atomic.Int32
		parallel(racers, func(g int) {
			ok, err := stores[g%len(stores)].ImportKey(bg, at(name, g))
			if err != nil {
				e.add(fmt.Errorf("ImportKey(%q, %d): %w", name, g, err))
			}
			if ok {
				wrote.Add(1)
			}
		})
		e.report(t)
		if got, want := mustKeyState(t, stores[0], name), at(name, racers-1); got != want {
			t.Errorf("after concurrent imports %q = %+v, want the highest %+v", name, got, want)
		}
		if wrote.Load() < 1 {
			t.Errorf("no concurrent ImportKey of %q reported a write", name)
		}
	}
}

func testConcurrentCreateClients(t *testing.T, stores []val.Store) {
	const (
		workers = 8
		calls   = 5
		per     = 3
	)
	var (
		e   errs
		mu  sync.Mutex
		got []int64
	)
	parallel(workers, func(g int) {
		for range calls {
			cs, err := stores[g%len(stores)].CreateClients(bg, client(0, true), per)
			if err != nil {
				e.add(fmt.Errorf("CreateClients: %w", err))
				return
			}
			for i := 1; i < len(cs); i++ {
				if cs[i].ID != cs[i-1].ID+1 {
					e.add(fmt.Errorf("one CreateClients call gave ids %v, not consecutive", ids(cs)))
				}
			}
			mu.Lock()
			got = append(got, ids(cs)...)
			mu.Unlock()
		}
	})
	e.report(t)
	slices.Sort(got)
	for i, id := range got {
		if id != int64(i+1) {
			t.Fatalf("concurrent CreateClients gave ids %v, want 1..%d each once", got, workers*calls*per)
		}
	}
	if len(got) != workers*calls*per {
		t.Errorf("concurrent CreateClients created %d clients, want %d", len(got), workers*calls*per)
	}
	if n := len(allClients(t, stores[0])); n != workers*calls*per {
		t.Errorf("EachClient visited %d clients, want %d", n, workers*calls*per)
	}
}

func testConcurrentEnqueue(t *testing.T, stores []val.Store) {
	const workers, each = 8, 10
	var e errs
	entries := []val.QueueEntry{
		{ServerNonce: "a", OTP: "b", Server: "https://a.example.com/", Info: "i"},
		{ServerNonce: "a", OTP: "b", Server: "https://b.example.com/", Info: "i"},
		{ServerNonce: "a", OTP: "b", Server: "https://c.example.com/", Info: "i"},
	}
	parallel(workers, func(g int) {
		for range each {
			if err := stores[g%len(stores)].Enqueue(bg, entries); err != nil {
				e.add(fmt.Errorf("concurrent Enqueue: %w", err))
				return
			}
		}
	})
	e.report(t)
	if n, err := stores[0].QueueLength(bg); n != workers*each*len(entries) || err != nil {
		t.Errorf("QueueLength = %d, %v; want %d", n, err, workers*each*len(entries))
	}
}

// testConcurrentAdvanceKeyQueued: goroutines race AdvanceKeyQueued for the
// same positions, each with its own queue entries; the queue ends up holding
// exactly the winners' entries.
func testConcurrentAdvanceKeyQueued(t *testing.T, stores []val.Store) {
	const name = "cccccccccccb"
	const positions = 50
	if _, err := stores[0].EnrollKey(bg, name, 1); err != nil {
		t.Fatal(err)
	}
	var (
		e    errs
		mu   sync.Mutex
		want []val.QueueEntry
	)
	for r := range positions {
		var wins atomic.Int32
		parallel(racers/2, func(g int) {
			k := at(name, r)
			entries := entriesFor(k, fmt.Sprintf("r%03dg%02d", r, g))
			ok, err := stores[g%len(stores)].AdvanceKeyQueued(bg, k, entries)
			if err != nil {
				e.add(fmt.Errorf("round %d: AdvanceKeyQueued: %w", r, err))
			}
			if ok {
				wins.Add(1)
				mu.Lock()
				want = append(want, entries...)
				mu.Unlock()
			}
		})
		e.report(t)
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d concurrent AdvanceKeyQueued calls with one position returned true, want exactly 1", r, n)
		}
	}
	if got := allEntries(t, stores[0]); !sameEntries(got, want) {
		t.Errorf("the queue holds %d entries, want the %d of the winners", len(got), len(want))
	}
}

// testSyncKeyAndAdvanceKey races, for each position, AdvanceKey calls (a
// verify's compare-and-set) against SyncKey calls (a peer's sync request)
// on one key. Exactly one call stores the position; a SyncKey reports a
// "before" state below the position exactly when it stored it, and above
// or at the position otherwise: the read and the update are one atomic step.
func testSyncKeyAndAdvanceKey(t *testing.T, stores []val.Store) {
	const name = "cccccccccccb"
	if _, err := stores[0].EnrollKey(bg, name, 1); err != nil {
		t.Fatal(err)
	}
	var e errs
	for r := range rounds / 2 {
		var wins atomic.Int32
		k := at(name, r)
		parallel(racers/2, func(g int) {
			st := stores[g%len(stores)]
			if g%2 == 0 {
				ok, err := st.AdvanceKey(bg, k)
				if err != nil {
					e.add(fmt.Errorf("round %d: AdvanceKey: %w", r, err))
				}
				if ok {
					wins.Add(1)
				}
				return
			}
			remote := k
			remote.Nonce = fmt.Sprintf("remote%010d", r)
			before, updated, err := st.SyncKey(bg, remote, 1)
			switch {
			case err != nil:
				e.add(fmt.Errorf("round %d: SyncKey: %w", r, err))
			case updated != before.Pos().Less(k.Pos()):
				e.add(fmt.Errorf("round %d: SyncKey returned before %v and updated %v for position %v", r, before.Pos(), updated, k.Pos()))
			case updated:
				wins.Add(1)
			}
		})
		e.report(t)
		if n := wins.Load(); n != 1 {
			t.Fatalf("round %d: %d calls stored one position, want exactly 1", r, n)
		}
	}
}

// testConcurrentSyncKeyEnroll: sync requests for an unknown key arrive at
// once; the key is enrolled once, and exactly one call stores the position.
func testConcurrentSyncKeyEnroll(t *testing.T, stores []val.Store) {
	var e errs
	for r := range 20 {
		name := fmt.Sprintf("cccccccccc%s", []string{"bb", "bc", "bd", "be", "bf", "bg", "bh", "bi", "bj", "bk", "bl", "bn", "br", "bt", "bu", "bv", "cb", "cc", "cd", "ce"}[r])
		var wins atomic.Int32
		parallel(racers/2, func(g int) {
			remote := at(name, 5)
			remote.Nonce = fmt.Sprintf("remote%010d", g)
			before, updated, err := stores[g%len(stores)].SyncKey(bg, remote, 1)
			switch {
			case err != nil:
				e.add(fmt.Errorf("SyncKey(%s): %w", name, err))
			case updated && before.Counter != -1:
				e.add(fmt.Errorf("SyncKey(%s) stored over %+v, want over the enrolment", name, before))
			case updated:
				wins.Add(1)
			}
		})
		e.report(t)
		if n := wins.Load(); n != 1 {
			t.Fatalf("%s: %d concurrent SyncKey calls stored the position, want exactly 1", name, n)
		}
	}
}
