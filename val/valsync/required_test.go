package valsync

import (
	"math"
	"testing"
)

// TestRequired: ceil(pool × sl / 100), YK-VAL's number of answers a level
// requires, bounded to pool+1 for levels above 100.
func TestRequired(t *testing.T) {
	tests := []struct {
		n     int
		level int64
		want  int
	}{
		{1, 1, 1}, {2, 1, 1}, {2, 40, 1}, {2, 50, 1}, {2, 51, 2}, {2, 60, 2}, {2, 100, 2}, {2, 101, 3}, {2, 150, 3},
		{3, 33, 1}, {3, 34, 2}, {3, 60, 2}, {3, 67, 3}, {4, 60, 3}, {5, 40, 2}, {10, 1, 1},
		{2, math.MaxInt64, 3},
	}
	for _, tt := range tests {
		if got := required(tt.n, tt.level); got != tt.want {
			t.Errorf("required(%d peers, sl=%d) = %d, want %d", tt.n, tt.level, got, tt.want)
		}
	}
}
