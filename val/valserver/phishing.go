package valserver

import (
	"math"

	"github.com/ykstack/ykstack/val"
)

// Tolerances of YK-VAL's phishing ("delayed OTP") test.
const (
	tsSecond       = 0.125 // seconds per tick of the key's 8 Hz timestamp
	tsAbsTolerance = 20    // seconds
	tsRelTolerance = 0.3
)

// delayed reports whether an OTP fails YK-VAL's phishing test: within one
// session (same counter, later use), the key's own clock says less or more
// time passed since the last accepted OTP than the server's clock did, by
// more than 20 seconds and more than 30%. That hints the OTP was captured
// and replayed later. YK-VAL only logs the result, and so does the verify
// handler; prev is the stored state before this OTP, next the OTP's, now the
// server's clock in unix seconds.
func delayed(prev, next val.KeyState, now int64) bool {
	if next.Counter != prev.Counter || next.Use <= prev.Use {
		return false
	}
	ts := func(k val.KeyState) float64 { return float64(k.High)*65536 + float64(k.Low) }
	deltaTS := (ts(next) - ts(prev)) * tsSecond
	elapsed := float64(now - prev.Modified)
	deviation := math.Abs(elapsed - deltaTS)
	percent := 1.0
	if elapsed != 0 {
		percent = deviation / elapsed
	}
	return deviation > tsAbsTolerance && percent > tsRelTolerance
}
