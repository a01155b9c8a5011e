// Package storetest is the conformance suite every val.Store passes.
//
// A backend's test calls Run with a function that opens a fresh, empty store,
// RunConcurrent with one that opens several stores on one fresh database (as
// several processes would), and, where the backend can be opened without
// write rights, RunReadOnly. Every clause of the val.Store contract has a
// test here, and so do the traps SQL dialects set: duplicate-key errors,
// MySQL's RowsAffected counting changed rows, case-insensitive collations,
// -1 in integer columns, ordering, and SQLite's single writer.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// Open returns a fresh, empty store; it registers its own cleanup on t.
type Open func(t *testing.T) val.Store

// Run runs every sequential conformance test against stores made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, val.Store)
	}{
		{"ClientUnknown", testClientUnknown},
		{"CreateClientsEmpty", testCreateClientsEmpty},
		{"CreateClientsAfterHighest", testCreateClientsAfterHighest},
		{"CreateClientsNone", testCreateClientsNone},
		{"ClientInactive", testClientInactive},
		{"ImportClients", testImportClients},
		{"ImportClientsRoundTrip", testImportClientsRoundTrip},
		{"EachClientOrder", testEachClientOrder},
		{"EachClientStops", testEachClientStops},
		{"KeyStateUnknown", testKeyStateUnknown},
		{"EnrollKey", testEnrollKey},
		{"EnrollKeyExisting", testEnrollKeyExisting},
		{"AdvanceKey", testAdvanceKey},
		{"AdvanceKeyFields", testAdvanceKeyFields},
		{"AdvanceKeySmallestStep", testAdvanceKeySmallestStep},
		{"AdvanceKeyUnknown", testAdvanceKeyUnknown},
		{"AdvanceKeyInactive", testAdvanceKeyInactive},
		{"SetActive", testSetActive},
		{"SetActiveUnknown", testSetActiveUnknown},
		{"ImportKeyNew", testImportKeyNew},
		{"ImportKeyExisting", testImportKeyExisting},
		{"IntegerRange", testIntegerRange},
		{"EachKeyOrder", testEachKeyOrder},
		{"EachKeyStops", testEachKeyStops},
		{"PublicNameCase", testPublicNameCase},
		{"Queue", testQueue},
		{"AdvanceKeyQueued", testAdvanceKeyQueued},
		{"AdvanceKeyQueuedInvalid", testAdvanceKeyQueuedInvalid},
		{"SyncKeyUnknown", testSyncKeyUnknown},
		{"SyncKey", testSyncKey},
		{"SyncKeyInactive", testSyncKeyInactive},
		{"QueueDue", testQueueDue},
		{"Ping", testPing},
		{"Cancelled", testCancelled},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

var bg = context.Background()

// Fixtures.

func client(id int64, active bool) val.Client {
	return val.Client{
		ID: id, Active: active, Created: 1383728711,
		Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg=", Email: "user@example.com", Notes: "n", OTP: "cccccccccccbubfncnklbknnkrfvfkbubftlfliikdrt",
	}
}

func key(name string, counter, use int) val.KeyState {
	return val.KeyState{
		PublicName: name, Active: true, Created: 1359470658, Modified: 1359470700,
		Counter: counter, Use: use, Low: 32729, High: 4, Nonce: "aoincuhfuahsaoincuhf", Notes: "note",
	}
}

func allClients(t *testing.T, s val.Store) []val.Client {
	t.Helper()
	var out []val.Client
	if err := s.EachClient(bg, func(c val.Client) error { out = append(out, c); return nil }); err != nil {
		t.Fatalf("EachClient: %v", err)
	}
	return out
}

func allKeys(t *testing.T, s val.Store) []val.KeyState {
	t.Helper()
	var out []val.KeyState
	if err := s.EachKey(bg, func(k val.KeyState) error { out = append(out, k); return nil }); err != nil {
		t.Fatalf("EachKey: %v", err)
	}
	return out
}

func importClients(t *testing.T, s val.Store, cs ...val.Client) {
	t.Helper()
	n, err := s.ImportClients(bg, cs)
	if err != nil || n != len(cs) {
		t.Fatalf("ImportClients(%d new) = %d, %v; want %d, nil", len(cs), n, err, len(cs))
	}
}

func importKey(t *testing.T, s val.Store, k val.KeyState) {
	t.Helper()
	if ok, err := s.ImportKey(bg, k); !ok || err != nil {
		t.Fatalf("ImportKey(new %q) = %v, %v; want true, nil", k.PublicName, ok, err)
	}
}

func mustKeyState(t *testing.T, s val.Store, name string) val.KeyState {
	t.Helper()
	k, err := s.KeyState(bg, name)
	if err != nil {
		t.Fatalf("KeyState(%q): %v", name, err)
	}
	return k
}

func ids(cs []val.Client) []int64 {
	var out []int64
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

// Clients.

func testClientUnknown(t *testing.T, s val.Store) {
	for _, id := range []int64{0, 1, -1} {
		if c, err := s.Client(bg, id); !errors.Is(err, val.ErrNotFound) {
			t.Errorf("Client(%d) on an empty store = %+v, %v; want ErrNotFound", id, c, err)
		}
	}
}

func testCreateClientsEmpty(t *testing.T, s val.Store) {
	tmpl := client(0, true)
	got, err := s.CreateClients(bg, tmpl, 3)
	if err != nil {
		t.Fatalf("CreateClients: %v", err)
	}
	if fmt.Sprint(ids(got)) != "[1 2 3]" {
		t.Fatalf("CreateClients(3) on an empty table gave ids %v, want [1 2 3]", ids(got))
	}
	for _, c := range got {
		want := tmpl
		want.ID = c.ID
		if c != want {
			t.Errorf("CreateClients returned %+v, want %+v", c, want)
		}
		stored, err := s.Client(bg, c.ID)
		if err != nil || stored != want {
			t.Errorf("Client(%d) = %+v, %v; want %+v", c.ID, stored, err, want)
		}
	}
}

func testCreateClientsAfterHighest(t *testing.T, s val.Store) {
	importClients(t, s, client(9, false), client(2, true)) // the highest is inactive
	got, err := s.CreateClients(bg, client(0, true), 2)
	if err != nil {
		t.Fatalf("CreateClients: %v", err)
	}
	if fmt.Sprint(ids(got)) != "[10 11]" {
		t.Errorf("CreateClients(2) after ids 2 and 9 gave ids %v, want [10 11]", ids(got))
	}
	got, err = s.CreateClients(bg, client(0, true), 1)
	if err != nil || fmt.Sprint(ids(got)) != "[12]" {
		t.Errorf("CreateClients(1) = ids %v, %v; want [12]", ids(got), err)
	}
	if n := len(allClients(t, s)); n != 5 {
		t.Errorf("EachClient visited %d clients, want 5", n)
	}
}

func testCreateClientsNone(t *testing.T, s val.Store) {
	got, err := s.CreateClients(bg, client(0, true), 0)
	if err != nil || len(got) != 0 {
		t.Errorf("CreateClients(0) = %v, %v; want none", got, err)
	}
	if n := len(allClients(t, s)); n != 0 {
		t.Errorf("after CreateClients(0) the store holds %d clients", n)
	}
}

func testClientInactive(t *testing.T, s val.Store) {
	importClients(t, s, client(1, false), client(2, true))
	if c, err := s.Client(bg, 1); !errors.Is(err, val.ErrNotFound) {
		t.Errorf("Client(inactive) = %+v, %v; want ErrNotFound", c, err)
	}
	if c, err := s.Client(bg, 2); err != nil || !c.Active || c.ID != 2 {
		t.Errorf("Client(active 2) = %+v, %v", c, err)
	}
	all := allClients(t, s)
	if len(all) != 2 || all[0].Active || !all[1].Active {
		t.Errorf("EachClient = %+v, want client 1 inactive and 2 active", all)
	}
}

func testImportClients(t *testing.T, s val.Store) {
	importClients(t, s, client(1, true), client(3, true))
	changed := client(1, false)
	changed.Secret = "changedchangedchangedchange="
	extra := client(2, true)
	extra.Secret = "second"
	dupInBatch := client(2, true)
	dupInBatch.Secret = "third"
	n, err := s.ImportClients(bg, []val.Client{changed, extra, dupInBatch, client(3, false)})
	if err != nil || n != 1 {
		t.Fatalf("ImportClients(1 new of 4) = %d, %v; want 1, nil", n, err)
	}
	all := allClients(t, s)
	want := []val.Client{client(1, true), extra, client(3, true)}
	if len(all) != len(want) {
		t.Fatalf("EachClient = %+v, want %+v", all, want)
	}
	for i := range want {
		if all[i] != want[i] {
			t.Errorf("client %d = %+v, want %+v (existing ids are never updated)", i, all[i], want[i])
		}
	}
	if n, err := s.ImportClients(bg, nil); n != 0 || err != nil {
		t.Errorf("ImportClients(nil) = %d, %v; want 0, nil", n, err)
	}
}

func testImportClientsRoundTrip(t *testing.T, s val.Store) {
	cs := []val.Client{
		{ID: 1, Active: true, Created: 1383728711, Secret: "EHmo8FMxuhumBlTinC4uYL0Mgwg="}, // Yubico's CI client: empty email, notes, otp
		{ID: 2, Active: false, Created: 0, Secret: ""},
		{ID: 2147483647, Active: true, Created: -1, Secret: strings.Repeat("s", 60), Email: strings.Repeat("e", 255), Notes: strings.Repeat("n", 100), OTP: strings.Repeat("o", 100)},
		{ID: 7, Active: true, Created: 2147483647, Secret: "a,b\"c", Email: "x'y@example.com", Notes: "Robert'); DROP TABLE clients;--", OTP: "é"},
	}
	importClients(t, s, cs...)
	got := allClients(t, s)
	want := []val.Client{cs[0], cs[1], cs[3], cs[2]}
	if len(got) != len(want) {
		t.Fatalf("EachClient returned %d clients, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("client %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testEachClientOrder(t *testing.T, s val.Store) {
	importClients(t, s, client(10, true), client(2, true), client(1, false), client(100, true))
	if got := fmt.Sprint(ids(allClients(t, s))); got != "[1 2 10 100]" {
		t.Errorf("EachClient order = %s, want [1 2 10 100] (numeric)", got)
	}
}

func testEachClientStops(t *testing.T, s val.Store) {
	importClients(t, s, client(1, true), client(2, true))
	stop := errors.New("stop")
	n := 0
	if err := s.EachClient(bg, func(val.Client) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachClient = %v after %d calls, want stop after 1", err, n)
	}
}

// Key states.

func testKeyStateUnknown(t *testing.T, s val.Store) {
	if k, err := s.KeyState(bg, "cccccccccccb"); !errors.Is(err, val.ErrNotFound) {
		t.Errorf("KeyState(unknown) = %+v, %v; want ErrNotFound", k, err)
	}
}

func testEnrollKey(t *testing.T, s val.Store) {
	got, err := s.EnrollKey(bg, "cccccccccccb", 1700000000)
	if err != nil {
		t.Fatalf("EnrollKey: %v", err)
	}
	want := val.KeyState{
		PublicName: "cccccccccccb", Active: true, Created: 1700000000, Modified: -1,
		Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "0000000000000000",
	}
	if got != want {
		t.Errorf("EnrollKey = %+v, want %+v", got, want)
	}
	if stored := mustKeyState(t, s, "cccccccccccb"); stored != want {
		t.Errorf("KeyState after EnrollKey = %+v, want %+v", stored, want)
	}
}

func testEnrollKeyExisting(t *testing.T, s val.Store) {
	k := key("cccccccccccb", 5, 3)
	k.Active = false
	importKey(t, s, k)
	got, err := s.EnrollKey(bg, k.PublicName, 1700000000)
	if err != nil || got != k {
		t.Errorf("EnrollKey(existing) = %+v, %v; want the stored %+v", got, err, k)
	}
	first, err := s.EnrollKey(bg, "cccccccccccd", 100)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.EnrollKey(bg, "cccccccccccd", 200)
	if err != nil || again != first {
		t.Errorf("second EnrollKey = %+v, %v; want the first %+v", again, err, first)
	}
}

func testAdvanceKey(t *testing.T, s val.Store) {
	importKey(t, s, key("cccccccccccb", 3, 5))
	steps := []struct {
		counter, use int
		want         bool
	}{
		{3, 5, false}, // equal
		{3, 4, false}, // lower use
		{2, 9, false}, // lower counter, higher use
		{-1, -1, false},
		{3, 6, true},  // higher use
		{3, 6, false}, // replayed
		{4, 0, true},  // higher counter, lower use
		{4, 0, false}, // replayed
		{3, 200, false},
		{32767, 255, true},
	}
	for _, st := range steps {
		before := mustKeyState(t, s, "cccccccccccb")
		next := key("cccccccccccb", st.counter, st.use)
		next.Modified = before.Modified + 1
		got, err := s.AdvanceKey(bg, next)
		if err != nil || got != st.want {
			t.Fatalf("AdvanceKey(%d/%d) over %d/%d = %v, %v; want %v", st.counter, st.use, before.Counter, before.Use, got, err, st.want)
		}
		after := mustKeyState(t, s, "cccccccccccb")
		switch {
		case st.want && after.Pos() != next.Pos():
			t.Errorf("after winning AdvanceKey(%d/%d) the stored position is %v", st.counter, st.use, after.Pos())
		case !st.want && after != before:
			t.Errorf("losing AdvanceKey(%d/%d) changed %+v to %+v", st.counter, st.use, before, after)
		}
	}
}

func testAdvanceKeyFields(t *testing.T, s val.Store) {
	k := key("cccccccccccb", 1, 0)
	importKey(t, s, k)
	next := val.KeyState{
		PublicName: k.PublicName, Active: false, Created: 42, Modified: 1700000001,
		Counter: 2, Use: 7, Low: 65535, High: 255, Nonce: strings.Repeat("n", 40), Notes: "ignored",
	}
	if ok, err := s.AdvanceKey(bg, next); !ok || err != nil {
		t.Fatalf("AdvanceKey = %v, %v; want true", ok, err)
	}
	want := next
	want.Active, want.Created, want.Notes = k.Active, k.Created, k.Notes // never changed by AdvanceKey
	if got := mustKeyState(t, s, k.PublicName); got != want {
		t.Errorf("after AdvanceKey stored %+v, want %+v", got, want)
	}
	// From a fresh enrolment, the first OTP (even 0/0) wins.
	e, err := s.EnrollKey(bg, "cccccccccccd", 1)
	if err != nil {
		t.Fatal(err)
	}
	first := e
	first.Counter, first.Use, first.Low, first.High, first.Modified, first.Nonce = 0, 0, 0, 0, 2, "firstnoncefirstnonce"
	if ok, err := s.AdvanceKey(bg, first); !ok || err != nil {
		t.Errorf("AdvanceKey(0/0) over an enrolled key = %v, %v; want true", ok, err)
	}
	if got := mustKeyState(t, s, "cccccccccccd"); got != first {
		t.Errorf("stored %+v, want %+v", got, first)
	}
}

// testAdvanceKeySmallestStep changes nothing but the use counter, by one:
// MySQL must still report the row as changed.
func testAdvanceKeySmallestStep(t *testing.T, s val.Store) {
	k := key("cccccccccccb", 7, 1)
	importKey(t, s, k)
	for use := 2; use <= 4; use++ {
		next := k
		next.Use = use
		if ok, err := s.AdvanceKey(bg, next); !ok || err != nil {
			t.Fatalf("AdvanceKey(use %d over %d, every other field equal) = %v, %v; want true", use, use-1, ok, err)
		}
	}
	if got := mustKeyState(t, s, k.PublicName); got.Use != 4 {
		t.Errorf("stored use = %d, want 4", got.Use)
	}
}

func testAdvanceKeyUnknown(t *testing.T, s val.Store) {
	if ok, err := s.AdvanceKey(bg, key("cccccccccccb", 1, 0)); ok || err != nil {
		t.Errorf("AdvanceKey(unknown) = %v, %v; want false, nil", ok, err)
	}
	if _, err := s.KeyState(bg, "cccccccccccb"); !errors.Is(err, val.ErrNotFound) {
		t.Errorf("AdvanceKey(unknown) created a row: KeyState = %v", err)
	}
}

func testAdvanceKeyInactive(t *testing.T, s val.Store) {
	k := key("cccccccccccb", 1, 0)
	k.Active = false
	importKey(t, s, k)
	next := key("cccccccccccb", 1, 1)
	next.Active = true
	if ok, err := s.AdvanceKey(bg, next); !ok || err != nil {
		t.Errorf("AdvanceKey(inactive key) = %v, %v; want true (the server checks Active, not the store)", ok, err)
	}
	if got := mustKeyState(t, s, k.PublicName); got.Active || got.Use != 1 {
		t.Errorf("stored %+v, want inactive at 1/1", got)
	}
}

func testSetActive(t *testing.T, s val.Store) {
	k := key("cccccccccccb", 1, 0)
	importKey(t, s, k)
	for _, active := range []bool{false, false, true, true, false} {
		// Setting the value a key already has is a success too (MySQL
		// reports no changed row for it).
		if err := s.SetActive(bg, k.PublicName, active); err != nil {
			t.Fatalf("SetActive(%v): %v", active, err)
		}
		want := k
		want.Active = active
		if got := mustKeyState(t, s, k.PublicName); got != want {
			t.Errorf("after SetActive(%v) stored %+v, want %+v", active, got, want)
		}
	}
}

func testSetActiveUnknown(t *testing.T, s val.Store) {
	for _, active := range []bool{true, false} {
		if err := s.SetActive(bg, "cccccccccccb", active); !errors.Is(err, val.ErrNotFound) {
			t.Errorf("SetActive(unknown, %v) = %v, want ErrNotFound", active, err)
		}
	}
}

func testImportKeyNew(t *testing.T, s val.Store) {
	ks := []val.KeyState{
		key("cccccccccccb", 3, 4),
		{PublicName: "cccccccccccd", Active: false, Created: 0, Modified: -1, Counter: -1, Use: -1, Low: -1, High: -1, Nonce: "", Notes: ""},
	}
	for _, k := range ks {
		importKey(t, s, k)
		if got := mustKeyState(t, s, k.PublicName); got != k {
			t.Errorf("KeyState after ImportKey = %+v, want %+v", got, k)
		}
	}
}

func testImportKeyExisting(t *testing.T, s val.Store) {
	stored := key("cccccccccccb", 3, 4)
	importKey(t, s, stored)
	for _, pos := range []val.Position{{Counter: 3, Use: 4}, {Counter: 3, Use: 3}, {Counter: 2, Use: 200}} {
		k := key(stored.PublicName, pos.Counter, pos.Use)
		k.Active, k.Notes, k.Created = false, "other", 1
		if ok, err := s.ImportKey(bg, k); ok || err != nil {
			t.Errorf("ImportKey(%v over %v) = %v, %v; want false, nil", pos, stored.Pos(), ok, err)
		}
		if got := mustKeyState(t, s, stored.PublicName); got != stored {
			t.Errorf("ImportKey(%v over %v) changed the row to %+v", pos, stored.Pos(), got)
		}
	}
	newer := val.KeyState{PublicName: stored.PublicName, Active: false, Created: 1, Modified: 2, Counter: 3, Use: 5, Low: 6, High: 7, Nonce: "nn", Notes: "other"}
	if ok, err := s.ImportKey(bg, newer); !ok || err != nil {
		t.Fatalf("ImportKey(newer) = %v, %v; want true", ok, err)
	}
	if got := mustKeyState(t, s, stored.PublicName); got != newer {
		t.Errorf("after ImportKey(newer) stored %+v, want all of %+v", got, newer)
	}
}

func testIntegerRange(t *testing.T, s val.Store) {
	ks := []val.KeyState{
		{PublicName: "cccccccccccb", Active: true, Created: -1, Modified: -1, Counter: -1, Use: -1, Low: -1, High: -1},
		{PublicName: "cccccccccccd", Active: true, Created: 2147483647, Modified: 2147483647, Counter: 32767, Use: 255, Low: 65535, High: 255},
		{PublicName: "ccccccccccce", Active: true, Created: -2147483648, Modified: 0, Counter: 2147483647, Use: 2147483647, Low: 0, High: 0},
	}
	for _, k := range ks {
		importKey(t, s, k)
	}
	got := allKeys(t, s)
	if len(got) != len(ks) {
		t.Fatalf("EachKey returned %d keys, want %d", len(got), len(ks))
	}
	for i := range ks {
		if got[i] != ks[i] {
			t.Errorf("key %d = %+v, want %+v", i, got[i], ks[i])
		}
	}
}

func testEachKeyOrder(t *testing.T, s val.Store) {
	names := []string{"cccccccccccd", "cccccccccccb", "vvvvvvvvvvvvvvvv", "ccccccccccbc", "cc", "dddddddddddd"}
	for i, n := range names {
		importKey(t, s, key(n, i, 0))
	}
	var got []string
	for _, k := range allKeys(t, s) {
		got = append(got, k.PublicName)
	}
	want := "[cc ccccccccccbc cccccccccccb cccccccccccd dddddddddddd vvvvvvvvvvvvvvvv]"
	if fmt.Sprint(got) != want {
		t.Errorf("EachKey order = %v, want %s", got, want)
	}
}

func testEachKeyStops(t *testing.T, s val.Store) {
	importKey(t, s, key("cccccccccccb", 1, 0))
	importKey(t, s, key("cccccccccccd", 1, 0))
	stop := errors.New("stop")
	n := 0
	if err := s.EachKey(bg, func(val.KeyState) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("EachKey = %v after %d calls, want stop after 1", err, n)
	}
}

// testPublicNameCase checks that public names are exact: a name differing
// in case from a stored one is a different key, which a store may refuse to
// create (MySQL's case-insensitive unique key) but never confuses with the
// stored one.
func testPublicNameCase(t *testing.T, s val.Store) {
	lower := key("cccccccccccb", 5, 5)
	importKey(t, s, lower)
	const upper = "CCCCCCCCCCCB"
	if k, err := s.KeyState(bg, upper); !errors.Is(err, val.ErrNotFound) {
		t.Errorf("KeyState(%q) = %+v, %v; want ErrNotFound", upper, k, err)
	}
	next := key(upper, 9, 9)
	if ok, err := s.AdvanceKey(bg, next); ok || err != nil {
		t.Errorf("AdvanceKey(%q) = %v, %v; want false, nil", upper, ok, err)
	}
	if err := s.SetActive(bg, upper, false); !errors.Is(err, val.ErrNotFound) {
		t.Errorf("SetActive(%q) = %v, want ErrNotFound", upper, err)
	}
	if got := mustKeyState(t, s, lower.PublicName); got != lower {
		t.Fatalf("operations on %q changed %q to %+v", upper, lower.PublicName, got)
	}
	// Enrolling the other case either creates a distinct key or is refused.
	k, err := s.EnrollKey(bg, upper, 1)
	switch {
	case err == nil && k.PublicName != upper:
		t.Errorf("EnrollKey(%q) returned the state of %q", upper, k.PublicName)
	case err != nil && !errors.Is(err, val.ErrDuplicate):
		t.Errorf("EnrollKey(%q) = %v, want success or ErrDuplicate", upper, err)
	}
	ok, err := s.ImportKey(bg, next)
	switch {
	case err != nil && !errors.Is(err, val.ErrDuplicate):
		t.Errorf("ImportKey(%q) = %v, want success or ErrDuplicate", upper, err)
	case err == nil && !ok:
		t.Errorf("ImportKey(%q, ahead) = false, nil; want true or ErrDuplicate", upper)
	}
	if got := mustKeyState(t, s, lower.PublicName); got != lower {
		t.Errorf("operations on %q changed %q to %+v", upper, lower.PublicName, got)
	}
}

// Queue.

func testQueue(t *testing.T, s val.Store) {
	if n, err := s.QueueLength(bg); n != 0 || err != nil {
		t.Fatalf("QueueLength(empty) = %d, %v", n, err)
	}
	queued := int64(1700000000)
	entries := []val.QueueEntry{
		{Queued: &queued, Modified: 1700000000, ServerNonce: strings.Repeat("a", 32), OTP: "cccccccccccbtjduvtcjbfeuvhehdvjjlbchtlenfgku", Server: "https://peer.example.com/wsapi/2.0/sync", Info: "yk_publicname=cccccccccccb&yk_counter=1&yk_use=0&yk_high=15&yk_low=36160&nonce=abcdefghijklmnop,local_counter=-1&local_use=-1"},
		{Queued: nil, Modified: 1700000000, ServerNonce: strings.Repeat("a", 32), OTP: "x", Server: "https://peer2.example.com/wsapi/2.0/sync", Info: strings.Repeat("i", 256)},
	}
	if err := s.Enqueue(bg, entries); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if err := s.Enqueue(bg, nil); err != nil {
		t.Fatalf("Enqueue(nil): %v", err)
	}
	if err := s.Enqueue(bg, entries[:1]); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if n, err := s.QueueLength(bg); n != 3 || err != nil {
		t.Errorf("QueueLength = %d, %v; want 3", n, err)
	}
}

func testPing(t *testing.T, s val.Store) {
	if err := s.Ping(bg); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

// Failures.

// checkFails calls every method of s and reports each that does not fail.
// A read that fails must not look like "not found", and AdvanceKey must not
// return false without an error.
func checkFails(t *testing.T, ctx context.Context, s val.Store, what string) {
	t.Helper()
	fail := func(method string, err error) {
		t.Helper()
		switch {
		case err == nil:
			t.Errorf("%s on %s succeeded, want an error", method, what)
		case errors.Is(err, val.ErrNotFound):
			t.Errorf("%s on %s = %v; a failure must not look like not found", method, what, err)
		}
	}
	_, err := s.Client(ctx, 1)
	fail("Client", err)
	_, err = s.CreateClients(ctx, client(0, true), 1)
	fail("CreateClients", err)
	_, err = s.ImportClients(ctx, []val.Client{client(50, true)})
	fail("ImportClients", err)
	fail("EachClient", s.EachClient(ctx, func(val.Client) error { return nil }))
	_, err = s.KeyState(ctx, "cccccccccccb")
	fail("KeyState", err)
	_, err = s.EnrollKey(ctx, "cccccccccccn", 1)
	fail("EnrollKey", err)
	ok, err := s.AdvanceKey(ctx, key("cccccccccccb", 100, 0))
	fail("AdvanceKey", err)
	if ok {
		t.Errorf("AdvanceKey on %s = true", what)
	}
	fail("SetActive", s.SetActive(ctx, "cccccccccccb", false))
	_, err = s.ImportKey(ctx, key("cccccccccccb", 200, 0))
	fail("ImportKey", err)
	fail("EachKey", s.EachKey(ctx, func(val.KeyState) error { return nil }))
	fail("Enqueue", s.Enqueue(ctx, []val.QueueEntry{{ServerNonce: "a", OTP: "b", Server: "c", Info: "d"}}))
	_, err = s.QueueLength(ctx)
	fail("QueueLength", err)
	ok, err = s.AdvanceKeyQueued(ctx, key("cccccccccccb", 300, 0), entriesFor(key("cccccccccccb", 300, 0), "n"))
	fail("AdvanceKeyQueued", err)
	if ok {
		t.Errorf("AdvanceKeyQueued on %s = true", what)
	}
	_, _, err = s.SyncKey(ctx, key("cccccccccccb", 400, 0), 1)
	fail("SyncKey", err)
	_, err = s.QueueLengths(ctx)
	fail("QueueLengths", err)
	_, err = s.DueEntries(ctx, "c", 1<<40, 10)
	fail("DueEntries", err)
	fail("SettleQueue", s.SettleQueue(ctx, []val.QueueEntry{{ServerNonce: "a", OTP: "b", Server: "c", Info: "d"}}, nil))
	fail("Ping", s.Ping(ctx))
}

func populate(t *testing.T, s val.Store) {
	t.Helper()
	importClients(t, s, client(1, true))
	importKey(t, s, key("cccccccccccb", 1, 0))
	if err := s.Enqueue(bg, []val.QueueEntry{{ServerNonce: "a", OTP: "b", Server: "c", Info: "d"}}); err != nil {
		t.Fatal(err)
	}
}

func testCancelled(t *testing.T, s val.Store) {
	populate(t, s)
	ctx, cancel := context.WithCancel(bg)
	cancel()
	checkFails(t, ctx, s, "a cancelled context")
}

func testClosed(t *testing.T, s val.Store) {
	populate(t, s)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkFails(t, bg, s, "a closed store")
}
