package valserver_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valserver"
)

// memKeys is a val.Store of one client and key states in memory, with the
// compare-and-set of the real stores; the methods a verify does not use
// are left to the nil embedded Store.
type memKeys struct {
	val.Store
	mu   sync.Mutex
	keys map[string]val.KeyState
}

func (m *memKeys) Client(_ context.Context, id int64) (val.Client, error) {
	if id != 1 {
		return val.Client{}, val.ErrNotFound
	}
	return val.Client{ID: 1, Active: true, Secret: ciSecret}, nil
}

func (m *memKeys) KeyState(_ context.Context, name string) (val.KeyState, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, ok := m.keys[name]
	if !ok {
		return val.KeyState{}, val.ErrNotFound
	}
	return k, nil
}

func (m *memKeys) AdvanceKeyQueued(_ context.Context, next val.KeyState, _ []val.QueueEntry) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.keys[next.PublicName].Pos().Less(next.Pos()) {
		return false, nil
	}
	m.keys[next.PublicName] = next
	return true, nil
}

// BenchmarkVerifyHandler measures the verify handler in-process (no network,
// a store in memory) with fresh OTPs of one key, signed requests and the
// default Info log line formatted as text: the server's own CPU per verify
// beside the database and the KSM's.
func BenchmarkVerifyHandler(b *testing.B) {
	const n = 4096
	reqs := make([]*http.Request, n)
	for i := range reqs {
		otp := mint(b, uint16(1+i/256), uint8(i%256))
		fields := []val.Field{{Key: "id", Value: "1"}, {Key: "nonce", Value: nonce1}, {Key: "otp", Value: otp}}
		h := val.Sign(clientKey, fields)
		reqs[i] = httptest.NewRequest("GET", "/wsapi/2.0/verify?"+query("id", "1", "nonce", nonce1, "otp", otp, "h", h), nil)
	}
	mux, err := valserver.NewMux(valserver.Config{
		Store:  &memKeys{keys: map[string]val.KeyState{ciPublicID: {PublicName: ciPublicID, Active: true, Counter: -1, Use: -1}}},
		KSM:    ciKSM(b),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		b.Fatal(err)
	}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%n == 0 {
			b.StopTimer()
			mux, _ = valserver.NewMux(valserver.Config{
				Store:  &memKeys{keys: map[string]val.KeyState{ciPublicID: {PublicName: ciPublicID, Active: true, Counter: -1, Use: -1}}},
				KSM:    ciKSM(b),
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			b.StartTimer()
		}
		clear(w.h)
		w.status = 0
		mux.ServeHTTP(w, reqs[i%n])
		if w.status != 0 && w.status != http.StatusOK {
			b.Fatalf("HTTP %d", w.status)
		}
	}
}

// discardWriter is an http.ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
