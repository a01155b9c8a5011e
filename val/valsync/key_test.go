package valsync_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ykstack/ykstack/val/valsync"
)

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		return p
	}
	tests := []struct {
		name, content string
		mode          os.FileMode
		len           int // 0: an error
	}{
		{"ok", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n", 0o600, 32},
		{"unpadded, blanks", "  q83vEjRWeJCrze8SNFZ4kA \nsecond line ignored\n", 0o640, 16},
		{"short", "q83vEjRWeJA=\n", 0o600, 0},
		{"not base64", "this is not base64!\n", 0o600, 0},
		{"world-readable", "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n", 0o644, 0},
		{"empty", "", 0o600, 0},
	}
	for _, tt := range tests {
		key, err := valsync.ReadKeyFile(write(tt.name, tt.content, tt.mode))
		if (err == nil) != (tt.len > 0) || len(key) != tt.len {
			t.Errorf("ReadKeyFile(%s) = %d bytes, %v; want %d bytes", tt.name, len(key), err, tt.len)
		}
	}
	if _, err := valsync.ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("ReadKeyFile(missing) succeeded")
	}
}
