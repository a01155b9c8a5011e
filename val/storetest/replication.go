package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// Replication: AdvanceKeyQueued, SyncKey and the queue methods the sync
// worker uses.

// peers are the sync URLs of the queue fixtures.
var peers = []string{"https://val2.example.com/wsapi/2.0/sync", "https://val3.example.com/wsapi/2.0/sync"}

// entriesFor returns one queue entry per peer for next, as a verify queues
// them: queued now, the OTP's modified, one server nonce.
func entriesFor(next val.KeyState, serverNonce string) []val.QueueEntry {
	queued := next.Modified
	var out []val.QueueEntry
	for _, p := range peers {
		out = append(out, val.QueueEntry{
			Queued: &queued, Modified: next.Modified, ServerNonce: serverNonce,
			OTP:    next.PublicName + strings.Repeat("c", 32),
			Server: p,
			Info: fmt.Sprintf("yk_publicname=%s&yk_counter=%d&yk_use=%d&yk_high=%d&yk_low=%d&nonce=%s,local_counter=-1&local_use=-1",
				next.PublicName, next.Counter, next.Use, next.High, next.Low, next.Nonce),
		})
	}
	return out
}

// allEntries returns every queue entry of s, due or not, for the peers.
func allEntries(t *testing.T, s val.Store) []val.QueueEntry {
	t.Helper()
	var out []val.QueueEntry
	lengths, err := s.QueueLengths(bg)
	if err != nil {
		t.Fatalf("QueueLengths: %v", err)
	}
	for server := range lengths {
		es, err := s.DueEntries(bg, server, 1<<62, 1<<20)
		if err != nil {
			t.Fatalf("DueEntries(%q): %v", server, err)
		}
		out = append(out, es...)
	}
	return out
}

// sameEntries reports whether got and want hold the same entries, in any order.
func sameEntries(got, want []val.QueueEntry) bool {
	key := func(e val.QueueEntry) string {
		q := "NULL"
		if e.Queued != nil {
			q = fmt.Sprint(*e.Queued)
		}
		return fmt.Sprintf("%s|%d|%s|%s|%s|%s", q, e.Modified, e.ServerNonce, e.OTP, e.Server, e.Info)
	}
	g, w := make([]string, len(got)), make([]string, len(want))
	for i, e := range got {
		g[i] = key(e)
	}
	for i, e := range want {
		w[i] = key(e)
	}
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func testAdvanceKeyQueued(t *testing.T, s val.Store) {
	const name = "cccccccccccb"
	if _, err := s.EnrollKey(bg, name, 1); err != nil {
		t.Fatal(err)
	}
	first := key(name, 5, 0)
	want := entriesFor(first, strings.Repeat("a", 32))
	if ok, err := s.AdvanceKeyQueued(bg, first, want); !ok || err != nil {
		t.Fatalf("AdvanceKeyQueued(5/0 after enrolment) = %v, %v; want true, nil", ok, err)
	}
	if got := allEntries(t, s); !sameEntries(got, want) {
		t.Errorf("after a winning AdvanceKeyQueued the queue holds %+v, want %+v", got, want)
	}
	// A losing compare-and-set queues nothing.
	for _, k := range []val.KeyState{key(name, 5, 0), key(name, 4, 9)} {
		if ok, err := s.AdvanceKeyQueued(bg, k, entriesFor(k, strings.Repeat("b", 32))); ok || err != nil {
			t.Errorf("AdvanceKeyQueued(%d/%d, not after 5/0) = %v, %v; want false, nil", k.Counter, k.Use, ok, err)
		}
	}
	if got := allEntries(t, s); !sameEntries(got, want) {
		t.Errorf("after losing AdvanceKeyQueued calls the queue holds %d entries, want the %d of the winner", len(got), len(want))
	}
	// No entries: AdvanceKey.
	if ok, err := s.AdvanceKeyQueued(bg, key(name, 5, 1), nil); !ok || err != nil {
		t.Errorf("AdvanceKeyQueued(5/1, no entries) = %v, %v; want true, nil", ok, err)
	}
	if n, err := s.QueueLength(bg); n != len(want) || err != nil {
		t.Errorf("QueueLength = %d, %v; want %d", n, err, len(want))
	}
	// Unknown key: nothing stored, nothing queued.
	unknown := key("cccccccccccd", 1, 0)
	if ok, err := s.AdvanceKeyQueued(bg, unknown, entriesFor(unknown, strings.Repeat("c", 32))); ok || err != nil {
		t.Errorf("AdvanceKeyQueued(unknown key) = %v, %v; want false, nil", ok, err)
	}
	if n, _ := s.QueueLength(bg); n != len(want) {
		t.Errorf("AdvanceKeyQueued(unknown key) queued entries: QueueLength = %d, want %d", n, len(want))
	}
}

// testAdvanceKeyQueuedInvalid: an entry the queue table cannot hold fails
// the call, and neither the counters nor any entry are stored.
func testAdvanceKeyQueuedInvalid(t *testing.T, s val.Store) {
	const name = "cccccccccccb"
	importKey(t, s, key(name, 1, 0))
	next := key(name, 2, 0)
	good := entriesFor(next, strings.Repeat("a", 32))
	bad := []struct {
		what string
		mod  func(*val.QueueEntry)
	}{
		{"server too long", func(e *val.QueueEntry) { e.Server = "https://" + strings.Repeat("v", 100) + "/sync" }},
		{"info too long", func(e *val.QueueEntry) { e.Info = strings.Repeat("i", 257) }},
		{"server nonce too long", func(e *val.QueueEntry) { e.ServerNonce = strings.Repeat("n", 33) }},
		{"otp too long", func(e *val.QueueEntry) { e.OTP = strings.Repeat("c", 101) }},
		{"empty server", func(e *val.QueueEntry) { e.Server = "" }},
		{"empty server nonce", func(e *val.QueueEntry) { e.ServerNonce = "" }},
	}
	for _, b := range bad {
		entries := slices.Clone(good)
		b.mod(&entries[1])
		ok, err := s.AdvanceKeyQueued(bg, next, entries)
		if ok || err == nil {
			t.Errorf("AdvanceKeyQueued with an entry of %s = %v, %v; want false and an error", b.what, ok, err)
		}
		if got := mustKeyState(t, s, name); got.Counter != 1 {
			t.Errorf("AdvanceKeyQueued with an entry of %s stored the counters: %+v", b.what, got)
		}
		if n, err := s.QueueLength(bg); n != 0 || err != nil {
			t.Errorf("AdvanceKeyQueued with an entry of %s: QueueLength = %d, %v; want 0", b.what, n, err)
		}
		if err := s.Enqueue(bg, entries); err == nil {
			t.Errorf("Enqueue with an entry of %s succeeded", b.what)
		}
		if n, _ := s.QueueLength(bg); n != 0 {
			t.Errorf("Enqueue with an entry of %s stored %d entries, want none", b.what, n)
		}
	}
}

func testSyncKeyUnknown(t *testing.T, s val.Store) {
	remote := key("cccccccccccb", 3, 4)
	before, updated, err := s.SyncKey(bg, remote, 1700000000)
	if err != nil || !updated {
		t.Fatalf("SyncKey(unknown key) = %+v, %v, %v; want the enrolled state, true", before, updated, err)
	}
	want := val.KeyState{PublicName: "cccccccccccb", Active: true, Created: 1700000000, Modified: -1,
		Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "0000000000000000"}
	if before != want {
		t.Errorf("SyncKey(unknown key) before = %+v, want %+v (a fresh enrolment)", before, want)
	}
	got := mustKeyState(t, s, "cccccccccccb")
	stored := want
	stored.Modified, stored.Counter, stored.Use, stored.Low, stored.High, stored.Nonce =
		remote.Modified, remote.Counter, remote.Use, remote.Low, remote.High, remote.Nonce
	if got != stored {
		t.Errorf("after SyncKey(unknown key) the key is %+v, want %+v", got, stored)
	}
}

func testSyncKey(t *testing.T, s val.Store) {
	const name = "cccccccccccb"
	stored := key(name, 10, 5)
	importKey(t, s, stored)
	tests := []struct {
		counter, use int
		update       bool
	}{
		{10, 5, false}, // equal: no update
		{10, 4, false},
		{9, 200, false},
		{-1, -1, false},
		{10, 6, true},
		{11, 0, true},
		{11, 0, false},
		{0x7fff, 255, true},
	}
	for i, tt := range tests {
		remote := key(name, tt.counter, tt.use)
		remote.Modified, remote.Low, remote.High, remote.Nonce = int64(1700000100+i), 100+i, i, fmt.Sprintf("remote%010d", i)
		remote.Active, remote.Created, remote.Notes = false, 5, "remote notes"
		before, updated, err := s.SyncKey(bg, remote, 1)
		if err != nil || updated != tt.update || before != stored {
			t.Errorf("SyncKey(%d/%d) over %d/%d = %+v, %v, %v; want %+v, %v, nil",
				tt.counter, tt.use, stored.Counter, stored.Use, before, updated, err, stored, tt.update)
		}
		if tt.update {
			stored.Modified, stored.Counter, stored.Use, stored.Low, stored.High, stored.Nonce =
				remote.Modified, remote.Counter, remote.Use, remote.Low, remote.High, remote.Nonce
		}
		if got := mustKeyState(t, s, name); got != stored {
			t.Errorf("after SyncKey(%d/%d) the key is %+v, want %+v (Active, Created, Notes untouched)", tt.counter, tt.use, got, stored)
		}
	}
}

// testSyncKeyInactive: a disabled key is still updated, and reported as
// inactive (the sync endpoint answers BAD_OTP).
func testSyncKeyInactive(t *testing.T, s val.Store) {
	const name = "cccccccccccb"
	importKey(t, s, key(name, 1, 0))
	if err := s.SetActive(bg, name, false); err != nil {
		t.Fatal(err)
	}
	before, updated, err := s.SyncKey(bg, key(name, 2, 0), 1)
	if err != nil || !updated || before.Active {
		t.Errorf("SyncKey(disabled key) = %+v, %v, %v; want an inactive before state, updated", before, updated, err)
	}
	if got := mustKeyState(t, s, name); got.Counter != 2 || got.Active {
		t.Errorf("after SyncKey(disabled key) the key is %+v, want counter 2, still disabled", got)
	}
}

func testQueueDue(t *testing.T, s val.Store) {
	old, recent := int64(1000), int64(2000)
	mk := func(queued *int64, nonce, server string) val.QueueEntry {
		return val.QueueEntry{Queued: queued, Modified: 1500, ServerNonce: nonce, OTP: "cccccccccccbcccccccccccccccccccccccccccccccc",
			Server: server, Info: "yk_publicname=cccccccccccb&yk_counter=1&yk_use=0&yk_high=1&yk_low=2&nonce=abcdefghijklmnop,local_counter=-1&local_use=-1"}
	}
	a, b := peers[0], peers[1]
	entries := []val.QueueEntry{
		mk(&old, "n1", a), mk(nil, "n2", a), mk(&recent, "n3", a),
		mk(&old, "n1", b), mk(&recent, "n3", b),
	}
	if err := s.Enqueue(bg, entries); err != nil {
		t.Fatal(err)
	}
	lengths, err := s.QueueLengths(bg)
	if err != nil || len(lengths) != 2 || lengths[a] != 3 || lengths[b] != 2 {
		t.Errorf("QueueLengths = %v, %v; want %s:3 and %s:2", lengths, err, a, b)
	}
	got, err := s.DueEntries(bg, a, 1500, 10)
	if err != nil || !sameEntries(got, entries[:2]) {
		t.Errorf("DueEntries(%s, before 1500) = %+v, %v; want the old and the NULL entry", a, got, err)
	}
	if got, err := s.DueEntries(bg, a, 1500, 1); err != nil || len(got) != 1 {
		t.Errorf("DueEntries(limit 1) returned %d entries, %v; want 1", len(got), err)
	}
	if got, err := s.DueEntries(bg, "https://other.example.com/", 1<<40, 10); err != nil || len(got) != 0 {
		t.Errorf("DueEntries(unknown server) = %+v, %v; want none", got, err)
	}
	// Settle: delete a's n1, mark b's n3 to retry now.
	if err := s.SettleQueue(bg, []val.QueueEntry{entries[0]}, []val.QueueEntry{entries[4]}); err != nil {
		t.Fatalf("SettleQueue: %v", err)
	}
	retried := entries[4]
	retried.Queued = nil
	want := []val.QueueEntry{entries[1], entries[2], entries[3], retried}
	if got := allEntries(t, s); !sameEntries(got, want) {
		t.Errorf("after SettleQueue the queue holds %+v, want %+v", got, want)
	}
	if got, err := s.DueEntries(bg, b, 1500, 10); err != nil || !sameEntries(got, []val.QueueEntry{entries[3], retried}) {
		t.Errorf("DueEntries(%s) after a retry = %+v, %v; want the old and the retried entry", b, got, err)
	}
	// Duplicates (same modified, server nonce and server) go together.
	if err := s.Enqueue(bg, []val.QueueEntry{entries[1]}); err != nil {
		t.Fatal(err)
	}
	if err := s.SettleQueue(bg, []val.QueueEntry{entries[1]}, nil); err != nil {
		t.Fatal(err)
	}
	if lengths, _ := s.QueueLengths(bg); lengths[a] != 1 {
		t.Errorf("after deleting a duplicated entry %s has %d entries, want 1", a, lengths[a])
	}
	if err := s.SettleQueue(bg, nil, nil); err != nil {
		t.Errorf("SettleQueue(nothing) = %v", err)
	}
}
