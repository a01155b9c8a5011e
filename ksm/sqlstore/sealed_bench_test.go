//go:build unix

package sqlstore_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/sqlstore"
)

// The cost of sealed keys: each benchmark runs the same work on a store
// of 10,000 plaintext keys and on one of 10,000 keys sealed under a KEK.
// Compare the "plaintext" and "sealed" results of one benchmark (benchstat,
// or by eye); the difference is one AES-256-GCM open and a base64 decode
// per lookup. Besides ns/op (wall time, which other load on the machine
// disturbs), each reports cpu-ns/op: the CPU time this process spent per
// operation, all goroutines and the garbage collector included, which is
// what sealing adds to a KSM's cost (a MariaDB server's own CPU time is
// not counted: sealing adds nothing there).

const sealedBenchKeys = 10_000

// cpuTime returns the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

var benchModes = []string{"plaintext", "sealed"}

// sealedBenchStore returns a store of backend be holding n random keys,
// sealed or not as mode says, and the keys with their OTPs.
func sealedBenchStore(b *testing.B, be testdb.Backend, mode string) (*sqlstore.Store, []testKey) {
	b.Helper()
	var opts sqlstore.Options
	if mode == "sealed" {
		opts.Sealer, _ = newSealer(b)
	}
	st, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: be.DSN(b)}, opts)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	keys := randomKeys(sealedBenchKeys)
	if err := st.Import(context.Background(), plainKeys(keys)); err != nil {
		b.Fatal(err)
	}
	if mode == "sealed" {
		if s, err := st.Status(context.Background()); err != nil || s.SealedTotal() != sealedBenchKeys {
			b.Fatalf("Status = %+v, %v; want every key sealed", s, err)
		}
	}
	return st, keys
}

// BenchmarkSealedDecrypter times ksmserver's Decrypter in process (format
// check, key lookup, unsealing, AES, UID and CRC checks), from one goroutine
// and from 4×GOMAXPROCS goroutines, plaintext against sealed keys.
func BenchmarkSealedDecrypter(b *testing.B) {
	for _, be := range testdb.Backends() {
		for _, mode := range benchModes {
			b.Run(be.Name+"/"+mode, func(b *testing.B) {
				st, keys := sealedBenchStore(b, be, mode)
				d := ksmserver.NewDecrypter(st, nil)
				ctx := context.Background()
				b.Run("serial", func(b *testing.B) {
					i := 0
					start := cpuTime(b)
					defer reportCPU(b, start)
					for b.Loop() {
						k := keys[i%len(keys)]
						i++
						if res, err := d.Decrypt(ctx, k.otp); err != nil || res.String() != k.want {
							b.Fatalf("Decrypt = %v, %v; want %s", res, err, k.want)
						}
					}
				})
				b.Run("parallel", func(b *testing.B) {
					var start atomic.Int64
					b.SetParallelism(4)
					defer reportCPU(b, cpuTime(b))
					b.RunParallel(func(pb *testing.PB) {
						i := int(start.Add(1)) * 1013
						for pb.Next() {
							k := keys[i%len(keys)]
							i += 7
							if res, err := d.Decrypt(ctx, k.otp); err != nil || res.String() != k.want {
								b.Errorf("Decrypt = %v, %v; want %s", res, err, k.want)
								return
							}
						}
					})
				})
			})
		}
	}
}

// BenchmarkSealedHTTP times a decrypt request over real HTTP on loopback
// (keep-alive client, ksmserver's mux, SQLite), plaintext against sealed
// keys, from 4×GOMAXPROCS goroutines: the "HTTP" throughput.
func BenchmarkSealedHTTP(b *testing.B) {
	for _, mode := range benchModes {
		b.Run(mode, func(b *testing.B) {
			st, keys := sealedBenchStore(b, testdb.Backend{Name: "sqlite", DSN: testdb.SQLite}, mode)
			mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			srv := httptest.NewServer(mux)
			defer srv.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
			var start atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			defer reportCPU(b, cpuTime(b))
			b.RunParallel(func(pb *testing.PB) {
				i := int(start.Add(1)) * 1013
				for pb.Next() {
					k := keys[i%len(keys)]
					i += 7
					resp, err := client.Get(srv.URL + "/wsapi/decrypt?otp=" + k.otp)
					if err != nil {
						b.Error(err)
						return
					}
					body, err := io.ReadAll(resp.Body)
					resp.Body.Close()
					if err != nil || string(body) != k.want+"\n" {
						b.Errorf("GET = %q, %v; want %s", body, err, k.want)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSealedLookup times Store.Lookup alone, plaintext against sealed.
func BenchmarkSealedLookup(b *testing.B) {
	for _, mode := range benchModes {
		b.Run("sqlite/"+mode, func(b *testing.B) {
			st, keys := sealedBenchStore(b, testdb.Backend{Name: "sqlite", DSN: testdb.SQLite}, mode)
			ctx := context.Background()
			i := 0
			defer reportCPU(b, cpuTime(b))
			for b.Loop() {
				k := keys[i%len(keys)]
				i++
				if got, err := st.Lookup(ctx, k.PublicName); err != nil || got.AESKey != k.AESKey {
					b.Fatalf("Lookup = %v", err)
				}
			}
		})
	}
}

// BenchmarkSealedCostAB measures plaintext and sealed side by side: each
// iteration decrypts one OTP with a plaintext store and one with a sealed
// store, alternately, timing each, so that load from elsewhere on the
// machine falls on both alike. It reports plain-ns/op, sealed-ns/op and
// overhead-% (how much slower sealed is), in process (the Decrypter) and
// over HTTP on loopback, on SQLite.
func BenchmarkSealedCostAB(b *testing.B) {
	sqlite := testdb.Backend{Name: "sqlite", DSN: testdb.SQLite}
	plainStore, plainKeys := sealedBenchStore(b, sqlite, "plaintext")
	sealedStore, sealedKeys := sealedBenchStore(b, sqlite, "sealed")
	ctx := context.Background()
	type side struct {
		do   func(k testKey) error
		keys []testKey
		t    time.Duration
	}
	decrypter := func(st *sqlstore.Store) func(testKey) error {
		d := ksmserver.NewDecrypter(st, nil)
		return func(k testKey) error {
			if res, err := d.Decrypt(ctx, k.otp); err != nil || res.String() != k.want {
				return fmt.Errorf("Decrypt = %v, %v; want %s", res, err, k.want)
			}
			return nil
		}
	}
	overHTTP := func(st *sqlstore.Store) func(testKey) error {
		mux, err := ksmserver.NewMux(ksmserver.Config{Store: st})
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(mux)
		b.Cleanup(srv.Close)
		client := &http.Client{}
		return func(k testKey) error {
			resp, err := client.Get(srv.URL + "/wsapi/decrypt?otp=" + k.otp)
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil || string(body) != k.want+"\n" {
				return fmt.Errorf("GET = %q, %v; want %s", body, err, k.want)
			}
			return nil
		}
	}
	for _, tt := range []struct {
		name string
		make func(*sqlstore.Store) func(testKey) error
	}{{"decrypter", decrypter}, {"http", overHTTP}} {
		b.Run(tt.name, func(b *testing.B) {
			sides := []*side{{do: tt.make(plainStore), keys: plainKeys}, {do: tt.make(sealedStore), keys: sealedKeys}}
			i := 0
			for b.Loop() {
				for j := range sides {
					s := sides[(i+j)%2] // alternate which goes first
					k := s.keys[i%len(s.keys)]
					t0 := time.Now()
					if err := s.do(k); err != nil {
						b.Fatal(err)
					}
					s.t += time.Since(t0)
				}
				i++
			}
			p, s := float64(sides[0].t)/float64(b.N), float64(sides[1].t)/float64(b.N)
			b.ReportMetric(p, "plain-ns/op")
			b.ReportMetric(s, "sealed-ns/op")
			b.ReportMetric(100*(s-p)/p, "overhead-%")
			b.ReportMetric(0, "ns/op")
		})
	}
}
