package valsync_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/valsync"
)

// benchPublicID returns the i-th public ID of the benchmarks: the KSM of the
// test pool decrypts any public ID with the CI key.
func benchPublicID(i int) string {
	return "ccccc" + modhex.EncodeToString([]byte{byte(i >> 16), byte(i >> 8), byte(i)})[:6] + "b"
}

// anyKSM decrypts OTPs of every public ID with the CI key.
type anyKSM struct{ otpKSM }

func (k anyKSM) Decrypt(_ context.Context, s string) (val.Decrypted, error) {
	_, token, err := otp.Split(s)
	if err != nil {
		return val.Decrypted{}, fmt.Errorf("%w: format", val.ErrKSMRejected)
	}
	t, err := otp.Decrypt(k.key, k.uid, token)
	if err != nil {
		return val.Decrypted{}, fmt.Errorf("%w: %v", val.ErrKSMRejected, err)
	}
	return val.Decrypted{Counter: t.Counter, Low: t.TimestampLow, High: t.TimestampHigh, Use: t.Use}, nil
}

// BenchmarkPoolVerify measures verifies through one server of a pool of
// three at sl=60 (both peers must confirm every OTP), over loopback HTTP:
// the client, the three servers and their databases share this machine.
// Each parallel client verifies its own key's OTPs in order.
func BenchmarkPoolVerify(b *testing.B) {
	for _, be := range testdb.Backends() {
		b.Run(be.Name, func(b *testing.B) {
			nodes := newPool(b, be, 3, poolOptions{ksm: anyKSM{ciKSM()}})
			a := nodes[0]
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			var next atomic.Int64
			var failed atomic.Int64
			b.SetParallelism(16) // 16 clients per CPU: the servers wait on disks and each other
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				pub := benchPublicID(int(next.Add(1)))
				k := ciKSM()
				n := 0
				for pb.Next() {
					o := otp.Generate(pub, k.key, otp.Token{UID: k.uid, Counter: uint16(1 + n/256), Use: uint8(n % 256), TimestampLow: uint16(n), TimestampHigh: 1})
					n++
					st, _, err := a.tryVerify(client, o, "benchnoncebenchnonce", "&sl=60")
					if err != nil || st != val.StatusOK {
						failed.Add(1)
					}
				}
			})
			b.StopTimer()
			if f := failed.Load(); f > 0 {
				b.Errorf("%d verifies were not OK", f)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
		})
	}
}

// BenchmarkQueueDrain measures the queue worker: b.N rows, one per key, for
// one peer, sent with YK-VAL's four requests in flight (and with 16).
func BenchmarkQueueDrain(b *testing.B) {
	for _, be := range testdb.Backends() {
		for _, parallel := range []int{4, 16} {
			b.Run(fmt.Sprintf("%s/parallel=%d", be.Name, parallel), func(b *testing.B) {
				nodes := newPool(b, be, 2, poolOptions{})
				a, peer := nodes[0], nodes[1]
				var rows []val.QueueEntry
				for i := range b.N {
					k := val.KeyState{PublicName: benchPublicID(i), Modified: 1700000000, Counter: 1, Use: 0, Low: 1, High: 1, Nonce: "benchnoncebenchnonce"}
					rows = append(rows, val.QueueEntry{Modified: k.Modified, ServerNonce: fmt.Sprintf("%032d", i),
						OTP: k.PublicName + strings.Repeat("c", 32), Server: peer.syncURL(), Info: valsync.Info(k, k)})
				}
				if err := a.store.Enqueue(bg, rows); err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(bg)
				done := make(chan struct{})
				b.ResetTimer()
				go func() {
					defer close(done)
					a.pool.RunQueue(ctx, valsync.WorkerConfig{Interval: time.Millisecond, Parallel: parallel, MaxBackoff: time.Second})
				}()
				for {
					n, err := a.store.QueueLength(bg)
					if err != nil {
						b.Fatal(err)
					}
					if n == 0 {
						break
					}
					time.Sleep(time.Millisecond)
				}
				b.StopTimer()
				cancel()
				<-done
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}
