package sql

import (
	"strings"
	"testing"
)

func TestSchema(t *testing.T) {
	tests := []struct {
		service, dialect string
		tables           []string
	}{
		{"ksm", "sqlite", []string{"yubikeys"}},
		{"ksm", "mysql", []string{"yubikeys"}},
		{"val", "sqlite", []string{"clients", "yubikeys", "queue"}},
		{"val", "mysql", []string{"clients", "yubikeys", "queue"}},
	}
	for _, tt := range tests {
		s, err := Schema(tt.service, tt.dialect)
		if err != nil {
			t.Fatalf("Schema(%q, %q): %v", tt.service, tt.dialect, err)
		}
		for _, tbl := range tt.tables {
			if !strings.Contains(s, "CREATE TABLE IF NOT EXISTS "+tbl+" (") {
				t.Errorf("Schema(%q, %q) lacks table %s", tt.service, tt.dialect, tbl)
			}
		}
	}
	if _, err := Schema("ksm", "oracle"); err == nil {
		t.Error(`Schema("ksm", "oracle") = nil error, want one`)
	}
}
