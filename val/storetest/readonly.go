package storetest

import (
	"errors"
	"testing"

	"github.com/ykstack/ykstack/val"
)

// OpenReadOnly returns two stores on one fresh, empty database: writer with
// full rights and reader without the right to write (a read-only SQLite
// file, a MySQL user granted only SELECT). It registers its own cleanup on t.
type OpenReadOnly func(t *testing.T) (writer, reader val.Store)

// RunReadOnly checks that a store fails closed when its database refuses
// writes: every method that writes returns an error (AdvanceKey an error,
// never false without one), reads still work, and nothing changes.
func RunReadOnly(t *testing.T, open OpenReadOnly) {
	w, r := open(t)
	populate(t, w)
	before := allKeys(t, w)
	beforeClients := allClients(t, w)

	writes := []struct {
		method string
		call   func() error
	}{
		{"CreateClients", func() error { _, err := r.CreateClients(bg, client(0, true), 1); return err }},
		{"ImportClients", func() error { _, err := r.ImportClients(bg, []val.Client{client(2, true)}); return err }},
		{"EnrollKey(new)", func() error { _, err := r.EnrollKey(bg, "cccccccccccn", 1); return err }},
		{"AdvanceKey", func() error {
			ok, err := r.AdvanceKey(bg, key("cccccccccccb", 100, 0))
			if ok {
				t.Errorf("AdvanceKey on a read-only database = true")
			}
			return err
		}},
		{"SetActive", func() error { return r.SetActive(bg, "cccccccccccb", false) }},
		{"ImportKey(new)", func() error { _, err := r.ImportKey(bg, key("cccccccccccn", 1, 0)); return err }},
		{"ImportKey(ahead)", func() error { _, err := r.ImportKey(bg, key("cccccccccccb", 100, 0)); return err }},
		{"Enqueue", func() error {
			return r.Enqueue(bg, []val.QueueEntry{{ServerNonce: "a", OTP: "b", Server: "c", Info: "d"}})
		}},
		{"AdvanceKeyQueued", func() error {
			k := key("cccccccccccb", 100, 0)
			ok, err := r.AdvanceKeyQueued(bg, k, entriesFor(k, "n"))
			if ok {
				t.Errorf("AdvanceKeyQueued on a read-only database = true")
			}
			return err
		}},
		{"SyncKey(ahead)", func() error { _, _, err := r.SyncKey(bg, key("cccccccccccb", 100, 0), 1); return err }},
		{"SyncKey(new)", func() error { _, _, err := r.SyncKey(bg, key("cccccccccccn", 1, 0), 1); return err }},
		{"SettleQueue", func() error {
			return r.SettleQueue(bg, []val.QueueEntry{{ServerNonce: "a", OTP: "b", Server: "c", Info: "d"}}, nil)
		}},
	}
	for _, wr := range writes {
		err := wr.call()
		switch {
		case err == nil:
			t.Errorf("%s on a read-only database succeeded, want an error", wr.method)
		case errors.Is(err, val.ErrNotFound):
			t.Errorf("%s on a read-only database = %v; a failure must not look like not found", wr.method, err)
		}
	}

	if c, err := r.Client(bg, 1); err != nil || c.ID != 1 {
		t.Errorf("Client(1) on the read-only store = %+v, %v", c, err)
	}
	if k, err := r.KeyState(bg, "cccccccccccb"); err != nil || k != before[0] {
		t.Errorf("KeyState on the read-only store = %+v, %v; want %+v", k, err, before[0])
	}
	if k, err := r.EnrollKey(bg, "cccccccccccb", 5); err != nil || k != before[0] {
		t.Errorf("EnrollKey(existing) on the read-only store = %+v, %v; want the stored %+v", k, err, before[0])
	}
	if n, err := r.QueueLength(bg); n != 1 || err != nil {
		t.Errorf("QueueLength on the read-only store = %d, %v; want 1", n, err)
	}
	if err := r.Ping(bg); err != nil {
		t.Errorf("Ping on the read-only store: %v", err)
	}
	if got := allKeys(t, r); len(got) != 1 || got[0] != before[0] {
		t.Errorf("after failed writes the keys are %+v, want %+v", got, before)
	}
	if got := allClients(t, r); len(got) != 1 || got[0] != beforeClients[0] {
		t.Errorf("after failed writes the clients are %+v, want %+v", got, beforeClients)
	}
}
