package pgp_test

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/ykstack/ykstack/internal/pgp/pgptest"
)

// The gpg keys are made once per test binary: see world.
var (
	worldOnce sync.Once
	worldVal  *pgptest.World
	worldErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if worldVal != nil {
		if err := worldVal.Close(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	os.Exit(code)
}

// world returns the shared gpg homes and keys, made on first use. Without
// gpg the test is skipped, or fails when CI=true.
func world(t *testing.T) *pgptest.World {
	t.Helper()
	if !pgptest.Available() {
		if os.Getenv("CI") == "true" {
			t.Fatal("gpg not found on PATH (CI=true, so this is a failure)")
		}
		t.Skip("gpg not found on PATH")
	}
	worldOnce.Do(func() { worldVal, worldErr = pgptest.NewWorld() })
	if worldErr != nil {
		t.Fatal(worldErr)
	}
	return worldVal
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
