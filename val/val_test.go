package val

import "testing"

func TestPositionLess(t *testing.T) {
	tests := []struct {
		p, q Position
		want bool
	}{
		{Position{1, 0}, Position{1, 1}, true},
		{Position{1, 1}, Position{1, 1}, false},
		{Position{1, 2}, Position{1, 1}, false},
		{Position{1, 255}, Position{2, 0}, true},
		{Position{-1, -1}, Position{0, 0}, true},
		{Position{3, 0}, Position{2, 9}, false},
	}
	for _, tt := range tests {
		if got := tt.p.Less(tt.q); got != tt.want {
			t.Errorf("%v.Less(%v) = %v, want %v", tt.p, tt.q, got, tt.want)
		}
	}
}
