package sqlstore_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/val"
	"github.com/ykstack/ykstack/val/sqlstore"
	"github.com/ykstack/ykstack/val/valseal"
)

func newSealer(t testing.TB) *valseal.Sealer {
	t.Helper()
	k, err := valseal.NewKEK(valseal.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return valseal.New(k)
}

func openOpts(t *testing.T, dsn string, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	s, err := sqlstore.OpenOptions(bg, sqldb.Config{DSN: dsn}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawSecret reads a client's secret column as stored.
func rawSecret(t *testing.T, s *sqlstore.Store, id int64) string {
	t.Helper()
	var v string
	if err := s.DB().QueryRowContext(bg, "SELECT secret FROM clients WHERE id = ?", id).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func secretOf(i int) string { return fmt.Sprintf("c2VjcmV0IG9mIGNsaWVudCA%03d=", i) }

func clients(n int) []val.Client {
	out := make([]val.Client, n)
	for i := range out {
		out[i] = val.Client{ID: int64(i + 1), Active: true, Created: 1, Secret: secretOf(i + 1), Email: "a@example.com"}
	}
	return out
}

// TestSealedClients: a store with a Sealer writes sealed secrets and reads
// them back as plaintext; a copy of the database without the KEK yields no
// secret and takes none; a sealed secret moved to another client does not
// open; a wrong KEK is refused at open.
func TestSealedClients(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			sealer := newSealer(t)
			s := openOpts(t, dsn, sqlstore.Options{Sealer: sealer})
			if _, err := s.ImportClients(bg, clients(2)); err != nil {
				t.Fatal(err)
			}
			made, err := s.CreateClients(bg, val.Client{Active: true, Created: 2, Secret: secretOf(3)}, 1)
			if err != nil || made[0].Secret != secretOf(3) {
				t.Fatalf("CreateClients = %+v, %v; want the plaintext secret returned", made, err)
			}
			for id := int64(1); id <= 3; id++ {
				raw := rawSecret(t, s, id)
				if !strings.HasPrefix(raw, valseal.Prefix+sealer.KeyID()+"$") || strings.Contains(raw, secretOf(int(id))) {
					t.Errorf("client %d's column = %q, want a sealed value", id, raw)
				}
				if c, err := s.Client(bg, id); err != nil || c.Secret != secretOf(int(id)) {
					t.Errorf("Client(%d) = %+v, %v; want the plaintext secret", id, c, err)
				}
			}
			var seen []string
			if err := s.EachClient(bg, func(c val.Client) error { seen = append(seen, c.Secret); return nil }); err != nil ||
				!slices.Equal(seen, []string{secretOf(1), secretOf(2), secretOf(3)}) {
				t.Errorf("EachClient = %v, %v; want the plaintext secrets", seen, err)
			}
			if w, err := s.SecretColumnWidth(bg); err != nil || (b.Name == "mysql" && w != valseal.ColumnWidth) {
				t.Errorf("SecretColumnWidth() = %d, %v; want %d on MySQL", w, err, valseal.ColumnWidth)
			}
			st, err := s.SecretStatus(bg)
			if err != nil || st.Mode() != "sealed" || st.Sealed[sealer.KeyID()] != 3 || st.Plaintext != 0 {
				t.Errorf("SecretStatus() = %+v, %v; want 3 sealed", st, err)
			}

			// The database without the KEK.
			plain := openOpts(t, dsn, sqlstore.Options{})
			if c, err := plain.Client(bg, 1); !errors.Is(err, sqlstore.ErrNoKEK) || errors.Is(err, val.ErrNotFound) || c.Secret != "" {
				t.Errorf("Client without the KEK = %+v, %v; want ErrNoKEK and no secret", c, err)
			}
			if err := plain.EachClient(bg, func(val.Client) error { return nil }); !errors.Is(err, sqlstore.ErrNoKEK) {
				t.Errorf("EachClient without the KEK = %v, want ErrNoKEK", err)
			}
			if _, err := plain.ImportClients(bg, []val.Client{{ID: 9, Active: true, Secret: secretOf(9)}}); !errors.Is(err, sqlstore.ErrNoKEK) {
				t.Errorf("ImportClients without the KEK into a sealed database = %v, want ErrNoKEK", err)
			}
			if _, err := plain.CreateClients(bg, val.Client{Active: true, Secret: secretOf(9)}, 1); !errors.Is(err, sqlstore.ErrNoKEK) {
				t.Errorf("CreateClients without the KEK into a sealed database = %v, want ErrNoKEK", err)
			}

			// Client 1's sealed secret copied to client 2's row.
			if _, err := s.DB().ExecContext(bg, "UPDATE clients SET secret = ? WHERE id = 2", rawSecret(t, s, 1)); err != nil {
				t.Fatal(err)
			}
			if c, err := s.Client(bg, 2); !errors.Is(err, valseal.ErrOpen) || c.Secret != "" {
				t.Errorf("Client(2) holding client 1's sealed secret = %+v, %v; want ErrOpen", c, err)
			}
			if c, err := s.Client(bg, 1); err != nil || c.Secret != secretOf(1) {
				t.Errorf("Client(1) = %+v, %v", c, err)
			}

			// A wrong KEK.
			if _, err := sqlstore.OpenOptions(bg, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: newSealer(t)}); !errors.Is(err, sqlstore.ErrWrongKEK) {
				t.Errorf("OpenOptions with a wrong KEK = %v, want ErrWrongKEK", err)
			}
		})
	}
}

// TestConvertSecrets seals a plaintext database in place while readers keep
// reading, rotates the KEK, then unseals: every read in between succeeds.
func TestConvertSecrets(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			const n = 250
			dsn := b.DSN(t)
			if _, err := openOpts(t, dsn, sqlstore.Options{}).ImportClients(bg, clients(n)); err != nil {
				t.Fatal(err)
			}
			k1, _ := valseal.NewKEK(valseal.GenerateKEK())
			k2, _ := valseal.NewKEK(valseal.GenerateKEK())
			s := openOpts(t, dsn, sqlstore.Options{Sealer: valseal.New(k1)}) // auto: reads plaintext, the database holds some
			if !s.ReadsPlaintext() {
				t.Fatal("a store opened on a plaintext database with a KEK does not read plaintext")
			}

			// Readers on their own store, as a running ykvald.
			reader := openOpts(t, dsn, sqlstore.Options{Sealer: valseal.New(k1)})
			var reads, failures atomic.Int64
			var firstErr sync.Once
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for g := range 4 {
				wg.Go(func() {
					for i := g; ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						id := int64(i%n + 1)
						c, err := reader.Client(bg, id)
						if err != nil || c.Secret != secretOf(int(id)) {
							failures.Add(1)
							firstErr.Do(func() { t.Errorf("Client(%d) during the seal = %q, %v", id, c.Secret, err) })
						}
						reads.Add(1)
					}
				})
			}
			var batches int
			res, err := s.ConvertSecrets(bg, sqlstore.Seal, sqlstore.ConvertOptions{BatchSize: 10, Progress: func(sqlstore.ConvertResult) { batches++ }})
			close(stop)
			wg.Wait()
			if err != nil || res.Scanned != n || res.Changed != n || res.Raced != 0 || len(res.Failed) != 0 || batches != n/10 {
				t.Errorf("ConvertSecrets(Seal) = %+v, %v (%d batches); want %d changed", res, err, batches, n)
			}
			t.Logf("%d reads during the seal, %d failed", reads.Load(), failures.Load())
			if res, err := s.ConvertSecrets(bg, sqlstore.Seal, sqlstore.ConvertOptions{}); err != nil || res.Changed != 0 {
				t.Errorf("ConvertSecrets(Seal) again = %+v, %v; want nothing changed", res, err)
			}

			// Fully sealed: a new store reads no plaintext.
			sealedOnly := openOpts(t, dsn, sqlstore.Options{Sealer: valseal.New(k1)})
			if sealedOnly.ReadsPlaintext() {
				t.Error("a store opened on a sealed database reads plaintext")
			}
			if _, err := s.DB().ExecContext(bg, "UPDATE clients SET secret = ? WHERE id = 5", secretOf(5)); err != nil {
				t.Fatal(err)
			}
			if _, err := sealedOnly.Client(bg, 5); !errors.Is(err, sqlstore.ErrPlaintext) {
				t.Errorf("Client with a plaintext secret in a sealed database = %v, want ErrPlaintext", err)
			}
			if _, err := s.ConvertSecrets(bg, sqlstore.Seal, sqlstore.ConvertOptions{}); err != nil {
				t.Fatal(err)
			}

			// Rotate to k2, holding k1 as the old KEK.
			rot := openOpts(t, dsn, sqlstore.Options{Sealer: valseal.New(k2, k1)})
			if res, err := rot.ConvertSecrets(bg, sqlstore.Rotate, sqlstore.ConvertOptions{BatchSize: 64}); err != nil || res.Changed != n {
				t.Errorf("ConvertSecrets(Rotate) = %+v, %v; want %d changed", res, err, n)
			}
			if st, err := rot.SecretStatus(bg); err != nil || st.Sealed[k2.ID()] != n || len(st.Sealed) != 1 {
				t.Errorf("after the rotation: %+v, %v; want all under %s", st, err, k2.ID())
			}
			if _, err := sqlstore.OpenOptions(bg, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: valseal.New(k1)}); !errors.Is(err, sqlstore.ErrWrongKEK) {
				t.Errorf("the old KEK alone after the rotation: %v, want ErrWrongKEK", err)
			}

			// A row moved to another id fails, and is left alone.
			if _, err := s.DB().ExecContext(bg, "UPDATE clients SET secret = ? WHERE id = 7", rawSecret(t, s, 8)); err != nil {
				t.Fatal(err)
			}
			un := openOpts(t, dsn, sqlstore.Options{Sealer: valseal.New(k2), Plaintext: sqlstore.PlaintextAllow})
			res, err = un.ConvertSecrets(bg, sqlstore.Unseal, sqlstore.ConvertOptions{})
			if err != nil || res.Changed != n-1 || !slices.Equal(res.Failed, []int64{7}) {
				t.Errorf("ConvertSecrets(Unseal) = %+v, %v; want %d changed, client 7 failed", res, err, n-1)
			}
			if c, err := un.Client(bg, 9); err != nil || c.Secret != secretOf(9) || rawSecret(t, un, 9) != secretOf(9) {
				t.Errorf("after the unseal: Client(9) = %+v, %v, column %q", c, err, rawSecret(t, un, 9))
			}
		})
	}
}
