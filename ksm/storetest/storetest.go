// Package storetest is the conformance suite every ksm.KeyStore passes.
// A backend's test calls Run with a function that opens a fresh, empty store,
// and a backend that seals keys at rest also calls RunSealed.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/seal"
)

// Open returns a fresh, empty store; it registers its own cleanup on t.
type Open func(t *testing.T) ksm.KeyStore

func sample(serial int64, pub string) ksm.Key {
	return ksm.Key{
		SerialNr:     serial,
		PublicName:   pub,
		Created:      "2009-12-14T16:40:57",
		InternalName: "609963eae7b5",
		AESKey:       "c68c9df8cbfe7d2f994cb904046c7218",
		LockCode:     "881ae7bee927",
		Creator:      "8B88A11B",
		Active:       true,
		Hardware:     true,
	}
}

// Run runs every conformance test against stores made by open.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(*testing.T, Open)
	}{
		{"LookupUnknown", testLookupUnknown},
		{"ImportLookup", testImportLookup},
		{"RoundTrip", testRoundTrip},
		{"Inactive", testInactive},
		{"EmptyAESKey", testEmptyAESKey},
		{"CaseSensitive", testCaseSensitive},
		{"EmptyPublicName", testEmptyPublicName},
		{"DuplicateInStore", testDuplicateInStore},
		{"DuplicateInBatch", testDuplicateInBatch},
		{"LargeBatch", testLargeBatch},
		{"EachOrder", testEachOrder},
		{"EachStops", testEachStops},
		{"ConcurrentLookup", testConcurrentLookup},
		{"Cancelled", testCancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func all(t *testing.T, s ksm.KeyStore) []ksm.Key {
	t.Helper()
	var out []ksm.Key
	if err := s.Each(context.Background(), func(k ksm.Key) error { out = append(out, k); return nil }); err != nil {
		t.Fatalf("Each: %v", err)
	}
	return out
}

func mustImport(t *testing.T, s ksm.KeyStore, keys ...ksm.Key) {
	t.Helper()
	if err := s.Import(context.Background(), keys); err != nil {
		t.Fatalf("Import: %v", err)
	}
}

func testLookupUnknown(t *testing.T, open Open) {
	s := open(t)
	if _, err := s.Lookup(context.Background(), "cccccccccccb"); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup(unknown) error = %v, want ErrUnknownKey", err)
	}
}

func testImportLookup(t *testing.T, open Open) {
	s := open(t)
	k := sample(1, "cccccccccccb")
	mustImport(t, s, k, sample(2, "cccccccccccd"))
	got, err := s.Lookup(context.Background(), "cccccccccccb")
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	if got.AESKey != k.AESKey || got.InternalName != k.InternalName || got.PublicName != k.PublicName {
		t.Errorf("Lookup = %+v, want key and UID of %+v", got, k)
	}
}

func testRoundTrip(t *testing.T, open Open) {
	s := open(t)
	keys := []ksm.Key{
		sample(4711, "dlcfffckrcde"),
		{SerialNr: 0, PublicName: "idkfefrdhtru", Created: "0", InternalName: "609963eae7b5", AESKey: "c68c9df8cbfe7d2f994cb904046c7218", Active: true, Hardware: false},
		{SerialNr: 2147483647, PublicName: "vvvvvvvvvvvvvvvv", Created: "2009-01-22 00:25:11", InternalName: "ffffffffffff", AESKey: "ffffffffffffffffffffffffffffffff", LockCode: "", Creator: "", Active: false, Hardware: true},
	}
	mustImport(t, s, keys...)
	got := all(t, s)
	want := []ksm.Key{keys[1], keys[0], keys[2]} // by serial
	if len(got) != len(want) {
		t.Fatalf("Each returned %d keys, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("key %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testInactive(t *testing.T, open Open) {
	s := open(t)
	k := sample(1, "cccccccccccb")
	k.Active = false
	mustImport(t, s, k)
	if _, err := s.Lookup(context.Background(), k.PublicName); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup(inactive) error = %v, want ErrUnknownKey", err)
	}
}

func testEmptyAESKey(t *testing.T, open Open) {
	s := open(t)
	k := sample(1, "cccccccccccb")
	k.AESKey = ""
	mustImport(t, s, k)
	if _, err := s.Lookup(context.Background(), k.PublicName); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup(empty aeskey) error = %v, want ErrUnknownKey", err)
	}
}

func testCaseSensitive(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(1, "cccccccccccb"))
	if _, err := s.Lookup(context.Background(), "CCCCCCCCCCCB"); !errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup(upper case) error = %v, want ErrUnknownKey", err)
	}
}

func testEmptyPublicName(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(1, ""))
	if _, err := s.Lookup(context.Background(), ""); err != nil {
		t.Errorf("Lookup(\"\") error = %v, want the key with an empty public name", err)
	}
}

func testDuplicateInStore(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(1, "cccccccccccb"))
	err := s.Import(context.Background(), []ksm.Key{sample(2, "cccccccccccd"), sample(3, "cccccccccccb")})
	if !errors.Is(err, ksm.ErrDuplicate) {
		t.Fatalf("Import(duplicate) error = %v, want ErrDuplicate", err)
	}
	if got := all(t, s); len(got) != 1 {
		t.Errorf("after a failed import the store holds %d keys, want 1 (all or nothing)", len(got))
	}
}

func testDuplicateInBatch(t *testing.T, open Open) {
	s := open(t)
	err := s.Import(context.Background(), []ksm.Key{sample(1, "cccccccccccb"), sample(2, "cccccccccccb")})
	if !errors.Is(err, ksm.ErrDuplicate) {
		t.Fatalf("Import(duplicate in batch) error = %v, want ErrDuplicate", err)
	}
	if got := all(t, s); len(got) != 0 {
		t.Errorf("after a failed import the store holds %d keys, want 0", len(got))
	}
}

func testLargeBatch(t *testing.T, open Open) {
	s := open(t)
	var keys []ksm.Key
	for i := range 1234 {
		keys = append(keys, sample(int64(i), fmt.Sprintf("cccc%08d", i)))
	}
	mustImport(t, s, keys...)
	if got := all(t, s); len(got) != len(keys) {
		t.Errorf("Each returned %d keys, want %d", len(got), len(keys))
	}
	// A failure in the last batch rolls back the earlier ones.
	more := []ksm.Key{}
	for i := range 450 {
		more = append(more, sample(int64(5000+i), fmt.Sprintf("dddd%08d", i)))
	}
	more = append(more, sample(9999, "cccc00000007"))
	if err := s.Import(context.Background(), more); !errors.Is(err, ksm.ErrDuplicate) {
		t.Fatalf("Import error = %v, want ErrDuplicate", err)
	}
	if got := all(t, s); len(got) != len(keys) {
		t.Errorf("after a failed import Each returned %d keys, want %d", len(got), len(keys))
	}
}

func testEachOrder(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(2, "cccccccccccb"), sample(1, "cccccccccccd"), sample(1, "cccccccccccc"), sample(10, "ccccccccccce"))
	var got []string
	for _, k := range all(t, s) {
		got = append(got, fmt.Sprintf("%d/%s", k.SerialNr, k.PublicName))
	}
	want := "[1/cccccccccccc 1/cccccccccccd 2/cccccccccccb 10/ccccccccccce]"
	if fmt.Sprint(got) != want {
		t.Errorf("Each order = %v, want %v", got, want)
	}
}

func testEachStops(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(1, "cccccccccccb"), sample(2, "cccccccccccd"))
	stop := errors.New("stop")
	n := 0
	err := s.Each(context.Background(), func(ksm.Key) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Each = %v after %d calls, want stop after 1", err, n)
	}
}

func testConcurrentLookup(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(1, "cccccccccccb"))
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if _, err := s.Lookup(context.Background(), "cccccccccccb"); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Lookup: %v", err)
	}
}

func testCancelled(t *testing.T, open Open) {
	s := open(t)
	mustImport(t, s, sample(1, "cccccccccccb"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Lookup(ctx, "cccccccccccb")
	if err == nil {
		t.Fatal("Lookup with a cancelled context succeeded")
	}
	if errors.Is(err, ksm.ErrUnknownKey) {
		t.Errorf("Lookup with a cancelled context = %v; a failure must not look like an unknown key", err)
	}
}

// Reopen opens a store on the storage a test is given, with sealer (nil: a
// store without a KEK). Every call opens the same storage; the store
// registers its own cleanup. An error opening it is returned.
type Reopen func(sealer *seal.Sealer) (ksm.KeyStore, error)

// OpenSealed prepares one fresh, empty storage for t and returns how to
// open stores on it.
type OpenSealed func(t *testing.T) Reopen

// RunSealed runs the conformance tests of a store that keeps keys sealed
// (see package ksm/seal): the whole of Run with a KEK, then the rules a
// KEK adds. A store with the KEK behaves as a plaintext store; without it,
// or with another KEK, it never answers a sealed key: opening with a KEK
// that sealed none of the stored keys fails, and without a KEK reads fail
// with an error wrapping ksm.ErrDatabase (never ksm.ErrUnknownKey).
func RunSealed(t *testing.T, open OpenSealed) {
	t.Run("Conformance", func(t *testing.T) {
		sealer := newSealer(t)
		Run(t, func(t *testing.T) ksm.KeyStore { return mustReopen(t, open(t), sealer) })
	})
	tests := []struct {
		name string
		fn   func(*testing.T, Reopen)
	}{
		{"WithoutKEK", testWithoutKEK},
		{"WrongKEK", testWrongKEK},
		{"Rotation", testRotation},
		{"KeyTextKept", testKeyTextKept},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

func newKEK(t *testing.T) *seal.KEK {
	t.Helper()
	k, err := seal.NewKEK(seal.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newSealer(t *testing.T) *seal.Sealer { return seal.New(newKEK(t)) }

func mustReopen(t *testing.T, reopen Reopen, sealer *seal.Sealer) ksm.KeyStore {
	t.Helper()
	s, err := reopen(sealer)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

// wantNoKey checks that every read of s fails as a database error.
func wantNoKey(t *testing.T, s ksm.KeyStore, pub, what string) {
	t.Helper()
	k, err := s.Lookup(context.Background(), pub)
	if !errors.Is(err, ksm.ErrDatabase) || errors.Is(err, ksm.ErrUnknownKey) || k.AESKey != "" {
		t.Errorf("%s: Lookup(%q) = %q, %v; want no key and ErrDatabase", what, pub, k.AESKey, err)
	}
	if err := s.Each(context.Background(), func(k ksm.Key) error {
		if k.PublicName == pub {
			t.Errorf("%s: Each returned key %q with aeskey %q", what, pub, k.AESKey)
		}
		return nil
	}); !errors.Is(err, ksm.ErrDatabase) {
		t.Errorf("%s: Each = %v, want ErrDatabase", what, err)
	}
}

func testWithoutKEK(t *testing.T, reopen Reopen) {
	sealed := mustReopen(t, reopen, newSealer(t))
	mustImport(t, sealed, sample(1, "cccccccccccb"))
	plain := mustReopen(t, reopen, nil)
	wantNoKey(t, plain, "cccccccccccb", "without a KEK")
	if err := plain.Import(context.Background(), []ksm.Key{sample(2, "cccccccccccd")}); err == nil {
		t.Error("Import without a KEK into a sealed store succeeded; want it refused")
	}
	if got := all(t, sealed); len(got) != 1 {
		t.Errorf("after the refused import the store holds %d keys, want 1", len(got))
	}
}

func testWrongKEK(t *testing.T, reopen Reopen) {
	mustImport(t, mustReopen(t, reopen, newSealer(t)), sample(1, "cccccccccccb"))
	if s, err := reopen(newSealer(t)); err == nil {
		wantNoKey(t, s, "cccccccccccb", "with another KEK")
		t.Error("opening a sealed store with another KEK succeeded; want an error")
	}
}

func testRotation(t *testing.T, reopen Reopen) {
	kOld, kNew := newKEK(t), newKEK(t)
	mustImport(t, mustReopen(t, reopen, seal.New(kOld)), sample(1, "cccccccccccb"))
	// The new KEK seals, the old one is held too: old and new keys both read.
	s := mustReopen(t, reopen, seal.New(kNew, kOld))
	mustImport(t, s, sample(2, "cccccccccccd"))
	for _, pub := range []string{"cccccccccccb", "cccccccccccd"} {
		if got, err := s.Lookup(context.Background(), pub); err != nil || got.AESKey != sample(0, "").AESKey {
			t.Errorf("during rotation Lookup(%q) = %q, %v; want the key", pub, got.AESKey, err)
		}
	}
	if got := all(t, s); len(got) != 2 {
		t.Errorf("during rotation Each returned %d keys, want 2", len(got))
	}
	// Either KEK alone now misses keys: refused when the store opens.
	for name, k := range map[string]*seal.KEK{"old": kOld, "new": kNew} {
		if _, err := reopen(seal.New(k)); err == nil {
			t.Errorf("opening with the %s KEK alone succeeded; some keys are sealed under the other", name)
		}
	}
}

func testKeyTextKept(t *testing.T, reopen Reopen) {
	s := mustReopen(t, reopen, newSealer(t))
	k := sample(7, "cccccccccccb")
	k.AESKey = "C68C9DF8CBFE7D2F994CB904046C7218"
	k.InternalName = "609963EAE7B5"
	mustImport(t, s, k)
	if got := all(t, s); len(got) != 1 || got[0] != k {
		t.Errorf("Each = %+v, want exactly %+v (the key text as written)", got, k)
	}
	if got, err := s.Lookup(context.Background(), k.PublicName); err != nil || got.AESKey != k.AESKey || got.InternalName != k.InternalName {
		t.Errorf("Lookup = %+v, %v; want the key and UID as written", got, err)
	}
}
