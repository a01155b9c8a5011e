package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ykstack/ykstack/internal/sqldb"
	"github.com/ykstack/ykstack/internal/testdb"
	"github.com/ykstack/ykstack/ksm"
	"github.com/ykstack/ykstack/ksm/ksmserver"
	"github.com/ykstack/ykstack/ksm/seal"
	"github.com/ykstack/ykstack/ksm/sqlstore"
	"github.com/ykstack/ykstack/ksm/storetest"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
)

func TestSealedConformance(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			storetest.RunSealed(t, func(t *testing.T) storetest.Reopen {
				dsn := b.DSN(t)
				return func(s *seal.Sealer) (ksm.KeyStore, error) {
					st, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: s})
					if err != nil {
						return nil, err
					}
					t.Cleanup(func() { st.Close() })
					return st, nil
				}
			})
		})
	}
}

func newSealer(t testing.TB, old ...*seal.KEK) (*seal.Sealer, *seal.KEK) {
	t.Helper()
	k, err := seal.NewKEK(seal.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return seal.New(k, old...), k
}

// testKey is a random key and an OTP it decrypts, with the answer line.
type testKey struct {
	ksm.Key
	otp, want string
}

func randomKeys(n int) []testKey {
	out := make([]testKey, n)
	for i := range out {
		var r [28]byte
		rand.Read(r[:])
		var key otp.Key
		var uid otp.UID
		copy(key[:], r[12:])
		copy(uid[:], r[6:12])
		pub := modhex.EncodeToString(r[:6])
		tok := otp.Token{UID: uid, Counter: uint16(i + 1), TimestampLow: uint16(i), Use: uint8(i)}
		out[i] = testKey{
			Key: ksm.Key{SerialNr: int64(i + 1), PublicName: pub, Created: "2024-01-01T00:00:00", InternalName: hex.EncodeToString(uid[:]),
				AESKey: hex.EncodeToString(key[:]), LockCode: "010203040506", Creator: "8B88A11B", Active: true, Hardware: true},
			otp:  otp.Generate(pub, key, tok),
			want: ksm.Result{Counter: tok.Counter, Low: tok.TimestampLow, Use: tok.Use}.String(),
		}
	}
	return out
}

func plainKeys(keys []testKey) []ksm.Key {
	out := make([]ksm.Key, len(keys))
	for i, k := range keys {
		out[i] = k.Key
	}
	return out
}

func open(t testing.TB, dsn string, opts sqlstore.Options) *sqlstore.Store {
	t.Helper()
	st, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, opts)
	if err != nil {
		t.Fatalf("OpenOptions: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// digest is ykksm-checksum's hash of every key Each returns, and the count.
func digest(t testing.TB, st ksm.KeyStore) string {
	t.Helper()
	h := sha1.New()
	n := 0
	if err := st.Each(context.Background(), func(k ksm.Key) error {
		n++
		fmt.Fprintf(h, "%d%s%s%s", k.SerialNr, k.PublicName, k.InternalName, k.AESKey)
		return nil
	}); err != nil {
		t.Fatalf("Each: %v", err)
	}
	return fmt.Sprintf("%d:%x", n, h.Sum(nil))
}

// rawRows returns every column of every row, as text.
func rawRows(t testing.TB, db *sql.DB) [][]string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM yubikeys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var out [][]string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := make([]string, len(cols))
		for i, v := range vals {
			row[i] = v.String
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func exec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestNoPlaintextAtRest: a sealed database holds no AES key in any column,
// and a SQLite file and its WAL hold none in any form.
func TestNoPlaintextAtRest(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			dsn := b.DSN(t)
			sealer, _ := newSealer(t)
			st := open(t, dsn, sqlstore.Options{Sealer: sealer})
			keys := randomKeys(50)
			if err := st.Import(context.Background(), plainKeys(keys)); err != nil {
				t.Fatal(err)
			}
			rows := rawRows(t, st.DB().DB)
			if len(rows) != len(keys) {
				t.Fatalf("%d rows, want %d", len(rows), len(keys))
			}
			for _, row := range rows {
				for _, col := range row {
					for _, k := range keys {
						if strings.Contains(strings.ToLower(col), k.AESKey) {
							t.Errorf("column value %q holds the AES key of %s", col, k.PublicName)
						}
					}
				}
			}
			if b.Name != "sqlite" {
				return
			}
			st.Close()
			file := strings.TrimPrefix(dsn, "sqlite:")
			var disk []byte
			for _, f := range []string{file, file + "-wal"} {
				data, err := os.ReadFile(f)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				disk = append(disk, data...)
			}
			for _, k := range keys {
				raw, _ := hex.DecodeString(k.AESKey)
				if bytes.Contains(disk, []byte(k.AESKey)) || bytes.Contains(disk, raw) {
					t.Errorf("the SQLite files hold the AES key of %s", k.PublicName)
				}
			}
		})
	}
}

// copyRows copies every row of yubikeys from one database to another, as
// a dump or a stolen backup would.
func copyRows(t testing.TB, from, to *sql.DB) {
	t.Helper()
	for _, row := range rawRows(t, from) {
		args := make([]any, len(row))
		for i, v := range row {
			args[i] = v
		}
		exec(t, to, "INSERT INTO yubikeys (serialnr, publicname, created, internalname, aeskey, lockcode, creator, active, hardware) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", args...)
	}
}

// TestCopiedWithoutKEK: the rows of a sealed database copied elsewhere give
// no key without the KEK, and a clear error.
func TestCopiedWithoutKEK(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			sealer, _ := newSealer(t)
			srcDSN := b.DSN(t)
			src := open(t, srcDSN, sqlstore.Options{Sealer: sealer})
			keys := randomKeys(3)
			if err := src.Import(context.Background(), plainKeys(keys)); err != nil {
				t.Fatal(err)
			}
			dsn := b.DSN(t)
			dst := open(t, dsn, sqlstore.Options{})
			if _, err := dst.Widen(context.Background()); err != nil {
				t.Fatal(err)
			}
			copyRows(t, src.DB().DB, dst.DB().DB)
			for _, k := range keys {
				got, err := dst.Lookup(context.Background(), k.PublicName)
				if !errors.Is(err, ksm.ErrDatabase) || !errors.Is(err, sqlstore.ErrNoKEK) || got.AESKey != "" {
					t.Errorf("copy without KEK: Lookup(%s) = %q, %v; want ErrDatabase and ErrNoKEK", k.PublicName, got.AESKey, err)
				}
				if err != nil && !strings.Contains(err.Error(), sealer.KeyID()) {
					t.Errorf("Lookup error %q does not name the key ID %s", err, sealer.KeyID())
				}
			}
			if err := dst.Each(context.Background(), func(ksm.Key) error { return nil }); !errors.Is(err, sqlstore.ErrNoKEK) {
				t.Errorf("copy without KEK: Each = %v, want ErrNoKEK", err)
			}
			wrong, _ := newSealer(t)
			_, err := sqlstore.OpenOptions(context.Background(), sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: wrong})
			if !errors.Is(err, sqlstore.ErrWrongKEK) || !strings.Contains(err.Error(), "3 under key ID "+sealer.KeyID()) {
				t.Errorf("copy with another KEK: OpenOptions = %v, want ErrWrongKEK naming 3 keys under %s", err, sealer.KeyID())
			}
			if b.Name == "sqlite" { // the database files themselves, copied
				src.Close()
				from := strings.TrimPrefix(srcDSN, "sqlite:")
				to := strings.TrimPrefix(b.DSN(t), "sqlite:")
				for _, suffix := range []string{"", "-wal"} {
					data, err := os.ReadFile(from + suffix)
					if errors.Is(err, os.ErrNotExist) && suffix != "" {
						continue
					}
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(to+suffix, data, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				cp := open(t, "sqlite:"+to, sqlstore.Options{})
				if _, err := cp.Lookup(context.Background(), keys[0].PublicName); !errors.Is(err, sqlstore.ErrNoKEK) {
					t.Errorf("copied file without KEK: Lookup = %v, want ErrNoKEK", err)
				}
			}
		})
	}
}

// TestMovedOrEditedRow: a sealed value moved to another public ID, a row
// edited to another UID, a row copied under another public ID, and a
// plaintext key planted in a sealed database all fail, as database errors.
func TestMovedOrEditedRow(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			sealer, _ := newSealer(t)
			st := open(t, b.DSN(t), sqlstore.Options{Sealer: sealer})
			keys := randomKeys(5)
			if err := st.Import(context.Background(), plainKeys(keys)); err != nil {
				t.Fatal(err)
			}
			db := st.DB().DB
			ctx := context.Background()
			var sealedB string
			if err := db.QueryRow("SELECT aeskey FROM yubikeys WHERE publicname = ?", keys[1].PublicName).Scan(&sealedB); err != nil {
				t.Fatal(err)
			}
			exec(t, db, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", sealedB, keys[0].PublicName)
			exec(t, db, "UPDATE yubikeys SET internalname = ? WHERE publicname = ?", "0123456789ab", keys[2].PublicName)
			exec(t, db, "UPDATE yubikeys SET publicname = ? WHERE publicname = ?", "cccccccccccb", keys[3].PublicName)
			exec(t, db, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", keys[4].AESKey, keys[4].PublicName)
			for _, tt := range []struct {
				name, pub string
				want      error
			}{
				{"value moved to another public ID", keys[0].PublicName, seal.ErrOpen},
				{"internalname edited", keys[2].PublicName, seal.ErrOpen},
				{"row renamed to another public ID", "cccccccccccb", seal.ErrOpen},
				{"plaintext key planted", keys[4].PublicName, sqlstore.ErrPlaintext},
			} {
				got, err := st.Lookup(ctx, tt.pub)
				if !errors.Is(err, ksm.ErrDatabase) || !errors.Is(err, tt.want) || got.AESKey != "" {
					t.Errorf("%s: Lookup = %q, %v; want ErrDatabase and %v", tt.name, got.AESKey, err, tt.want)
				}
				if err != nil && !strings.Contains(err.Error(), tt.pub) {
					t.Errorf("%s: error %q does not name the public ID", tt.name, err)
				}
				for _, k := range keys {
					if err != nil && strings.Contains(strings.ToLower(err.Error()), k.AESKey) {
						t.Errorf("%s: error %q holds a key", tt.name, err)
					}
				}
				// The decrypter answers ERR Database error, never OK.
				res, err := ksmserver.NewDecrypter(st, nil).Decrypt(ctx, keys[0].otp)
				if line := ksm.Line(err); line != "ERR Database error" {
					t.Errorf("%s: Decrypt = %v, %v (%s); want ERR Database error", tt.name, res, err, line)
				}
			}
			if got, err := st.Lookup(ctx, keys[1].PublicName); err != nil || got.AESKey != keys[1].AESKey {
				t.Errorf("untouched row: Lookup = %q, %v; want its key", got.AESKey, err)
			}
			if err := st.Each(ctx, func(ksm.Key) error { return nil }); !errors.Is(err, ksm.ErrDatabase) {
				t.Errorf("Each over the tampered rows = %v, want ErrDatabase", err)
			}
		})
	}
}

// TestPlaintextPolicy: a store with a KEK reads plaintext keys while the
// database held any when it opened (seal in progress), not once it is
// fully sealed, and as Options.Plaintext forces.
func TestPlaintextPolicy(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			keys := randomKeys(3)
			if err := open(t, dsn, sqlstore.Options{}).Import(ctx, plainKeys(keys)); err != nil {
				t.Fatal(err)
			}
			sealer, _ := newSealer(t)
			lookup := func(st *sqlstore.Store) error {
				_, err := st.Lookup(ctx, keys[0].PublicName)
				return err
			}
			auto := open(t, dsn, sqlstore.Options{Sealer: sealer})
			if err := lookup(auto); err != nil || !auto.ReadsPlaintext() {
				t.Errorf("auto on a plaintext database: Lookup = %v, ReadsPlaintext %v; want the key", err, auto.ReadsPlaintext())
			}
			refuse := open(t, dsn, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextRefuse})
			if err := lookup(refuse); !errors.Is(err, sqlstore.ErrPlaintext) || refuse.ReadsPlaintext() {
				t.Errorf("refuse: Lookup = %v, want ErrPlaintext", err)
			}
			if _, err := auto.Convert(ctx, sqlstore.Seal, sqlstore.ConvertOptions{}); err != nil {
				t.Fatal(err)
			}
			exec(t, auto.DB().DB, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", keys[0].AESKey, keys[0].PublicName)
			if err := lookup(auto); err != nil {
				t.Errorf("auto opened during the seal: Lookup(plaintext) = %v, want the key", err)
			}
			exec(t, auto.DB().DB, "UPDATE yubikeys SET aeskey = '' WHERE publicname = ?", keys[0].PublicName)
			sealed := open(t, dsn, sqlstore.Options{Sealer: sealer})
			if sealed.ReadsPlaintext() {
				t.Error("auto on a fully sealed database reads plaintext keys")
			}
			exec(t, auto.DB().DB, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", keys[0].AESKey, keys[0].PublicName)
			if err := lookup(sealed); !errors.Is(err, sqlstore.ErrPlaintext) {
				t.Errorf("auto opened on a sealed database: Lookup(planted plaintext) = %v, want ErrPlaintext", err)
			}
			allow := open(t, dsn, sqlstore.Options{Sealer: sealer, Plaintext: sqlstore.PlaintextAllow})
			if err := lookup(allow); err != nil {
				t.Errorf("allow: Lookup = %v, want the key", err)
			}
		})
	}
}

// TestConvert: seal in place, rotate and unseal keep every key (the
// checksum never changes), are idempotent, widen a MySQL column, and report
// rows that do not open.
func TestConvert(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			keys := randomKeys(250)
			keys[7].AESKey = strings.ToUpper(keys[7].AESKey)
			keys[8].AESKey = ""
			keys[9].PublicName = ""
			plain := open(t, dsn, sqlstore.Options{})
			if err := plain.Import(ctx, plainKeys(keys)); err != nil {
				t.Fatal(err)
			}
			want := digest(t, plain)
			if w, err := plain.ColumnWidth(ctx); err != nil || (b.Name == "mysql" && w != 32) {
				t.Errorf("ColumnWidth = %d, %v; want 32 on MySQL (Yubico's schema)", w, err)
			}
			status := func(st *sqlstore.Store) string {
				s, err := st.Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return fmt.Sprintf("%s e=%d p=%d s=%v m=%d", s.Mode(), s.Empty, s.Plaintext, s.Sealed, s.Malformed)
			}
			if got := status(plain); got != "plaintext e=1 p=249 s=map[] m=0" {
				t.Errorf("Status = %s", got)
			}

			kOld := mustKEK(t)
			old := seal.New(kOld)
			st := open(t, dsn, sqlstore.Options{Sealer: old})
			var progress []int
			res, err := st.Convert(ctx, sqlstore.Seal, sqlstore.ConvertOptions{BatchSize: 40, Progress: func(r sqlstore.ConvertResult) { progress = append(progress, r.Scanned) }})
			if err != nil || res.Scanned != 250 || res.Changed != 249 || res.Raced != 0 || len(res.Failed) != 0 {
				t.Errorf("Convert(Seal) = %+v, %v; want 250 scanned, 249 changed", res, err)
			}
			if fmt.Sprint(progress) != "[40 80 120 160 200 240 250]" {
				t.Errorf("progress = %v, want every 40 rows", progress)
			}
			if w, err := st.ColumnWidth(ctx); err != nil || (b.Name == "mysql" && w != seal.ColumnWidth) {
				t.Errorf("after sealing ColumnWidth = %d, %v; want %d on MySQL", w, err, seal.ColumnWidth)
			}
			if got, want := status(st), fmt.Sprintf("sealed e=1 p=0 s=map[%s:249] m=0", old.KeyID()); got != want {
				t.Errorf("after sealing Status = %s, want %s", got, want)
			}
			if got := digest(t, st); got != want {
				t.Errorf("after sealing the checksum is %s, want %s", got, want)
			}
			if res, err := st.Convert(ctx, sqlstore.Seal, sqlstore.ConvertOptions{}); err != nil || res.Changed != 0 {
				t.Errorf("Convert(Seal) again = %+v, %v; want nothing changed", res, err)
			}

			kNew := mustKEK(t)
			both := open(t, dsn, sqlstore.Options{Sealer: seal.New(kNew, kOld)})
			res, err = both.Convert(ctx, sqlstore.Rotate, sqlstore.ConvertOptions{BatchSize: 100})
			if err != nil || res.Changed != 249 || len(res.Failed) != 0 {
				t.Errorf("Convert(Rotate) = %+v, %v; want 249 changed", res, err)
			}
			if got, want := status(both), fmt.Sprintf("sealed e=1 p=0 s=map[%s:249] m=0", kNew.ID()); got != want {
				t.Errorf("after rotating Status = %s, want %s", got, want)
			}
			if res, err := both.Convert(ctx, sqlstore.Rotate, sqlstore.ConvertOptions{}); err != nil || res.Changed != 0 {
				t.Errorf("Convert(Rotate) again = %+v, %v; want nothing changed", res, err)
			}
			onlyNew := open(t, dsn, sqlstore.Options{Sealer: seal.New(kNew)})
			if got := digest(t, onlyNew); got != want {
				t.Errorf("after rotating the checksum is %s, want %s", got, want)
			}
			if _, err := sqlstore.OpenOptions(ctx, sqldb.Config{DSN: dsn}, sqlstore.Options{Sealer: old}); !errors.Is(err, sqlstore.ErrWrongKEK) {
				t.Errorf("the old KEK after the rotation: OpenOptions = %v, want ErrWrongKEK", err)
			}

			// A moved value is reported and left alone; the rest unseal.
			db := onlyNew.DB().DB
			var v string
			if err := db.QueryRow("SELECT aeskey FROM yubikeys WHERE publicname = ?", keys[1].PublicName).Scan(&v); err != nil {
				t.Fatal(err)
			}
			exec(t, db, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", v, keys[0].PublicName)
			exec(t, db, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", "$yks1$zz", keys[2].PublicName)
			if got, want := status(onlyNew), fmt.Sprintf("sealed e=1 p=0 s=map[%s:248] m=1", kNew.ID()); got != want {
				t.Errorf("Status = %s, want %s", got, want)
			}
			res, err = onlyNew.Convert(ctx, sqlstore.Unseal, sqlstore.ConvertOptions{BatchSize: 1000})
			if err != nil || res.Changed != 247 || fmt.Sprint(res.Failed) != fmt.Sprint(sortedPair(keys[0].PublicName, keys[2].PublicName)) {
				t.Errorf("Convert(Unseal) = %+v, %v; want 247 changed, %s and %s failed", res, err, keys[0].PublicName, keys[2].PublicName)
			}
			exec(t, db, "UPDATE yubikeys SET aeskey = ? WHERE publicname IN (?, ?)", keys[0].AESKey, keys[0].PublicName, keys[2].PublicName)
			exec(t, db, "UPDATE yubikeys SET aeskey = ? WHERE publicname = ?", keys[2].AESKey, keys[2].PublicName)
			if got := status(onlyNew); got != "plaintext e=1 p=249 s=map[] m=0" {
				t.Errorf("after unsealing Status = %s", got)
			}
			if got := digest(t, open(t, dsn, sqlstore.Options{})); got != want {
				t.Errorf("after unsealing the checksum without a KEK is %s, want %s", got, want)
			}
			if _, err := plain.Convert(ctx, sqlstore.Seal, sqlstore.ConvertOptions{}); err == nil {
				t.Error("Convert without a KEK succeeded")
			}
		})
	}
}

func sortedPair(a, b string) []string {
	if b < a {
		return []string{b, a}
	}
	return []string{a, b}
}

func mustKEK(t testing.TB) *seal.KEK {
	t.Helper()
	k, err := seal.NewKEK(seal.GenerateKEK())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestConvertWhileServing: OTPs keep decrypting, from several goroutines,
// while the keys are sealed in place, re-sealed under a new KEK, and
// unsealed: no answer is ever anything but the right OK.
func TestConvertWhileServing(t *testing.T) {
	for _, b := range testdb.Backends() {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			dsn := b.DSN(t)
			keys := randomKeys(300)
			if err := open(t, dsn, sqlstore.Options{}).Import(ctx, plainKeys(keys)); err != nil {
				t.Fatal(err)
			}
			kOld, kNew := mustKEK(t), mustKEK(t)
			// The server holds both KEKs from the start and opened on a
			// plaintext database: it reads all three forms.
			server := open(t, dsn, sqlstore.Options{Sealer: seal.New(kNew, kOld)})
			dec := ksmserver.NewDecrypter(server, nil)
			admin := open(t, dsn, sqlstore.Options{Sealer: seal.New(kOld), Plaintext: sqlstore.PlaintextAllow})

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var answers atomic.Int64
			var mu sync.Mutex
			var bad []string
			for g := range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := g; ; i += 4 {
						select {
						case <-stop:
							return
						default:
						}
						k := keys[i%len(keys)]
						res, err := dec.Decrypt(ctx, k.otp)
						answers.Add(1)
						if err != nil || res.String() != k.want {
							mu.Lock()
							bad = append(bad, fmt.Sprintf("%s: %v %v", k.PublicName, res, err))
							mu.Unlock()
						}
					}
				}()
			}
			step := func(name string, st *sqlstore.Store, op sqlstore.ConvertOp) {
				before := answers.Load()
				res, err := st.Convert(ctx, op, sqlstore.ConvertOptions{BatchSize: 16})
				if err != nil || res.Changed != len(keys) || len(res.Failed) != 0 {
					t.Errorf("%s: Convert = %+v, %v; want %d changed", name, res, err, len(keys))
				}
				t.Logf("%s: %d answers while converting", name, answers.Load()-before)
			}
			step("seal", admin, sqlstore.Seal)
			step("rotate", open(t, dsn, sqlstore.Options{Sealer: seal.New(kNew, kOld)}), sqlstore.Rotate)
			step("unseal", open(t, dsn, sqlstore.Options{Sealer: seal.New(kNew), Plaintext: sqlstore.PlaintextAllow}), sqlstore.Unseal)
			close(stop)
			wg.Wait()
			if answers.Load() == 0 {
				t.Fatal("no decryptions ran")
			}
			if len(bad) > 0 {
				t.Errorf("%d of %d answers were wrong, e.g. %s", len(bad), answers.Load(), bad[0])
			}
		})
	}
}

// TestImportWidens: a sealed import into Yubico's schema on MySQL widens
// the aeskey column first; a database user who may not ALTER gets a clear
// error naming the column.
func TestImportWidens(t *testing.T) {
	ctx := context.Background()
	dsn := testdb.MySQL(t)
	sealer, _ := newSealer(t)
	st := open(t, dsn, sqlstore.Options{Sealer: sealer})
	if w, _ := st.ColumnWidth(ctx); w != 32 {
		t.Fatalf("new table: aeskey is varchar(%d), want Yubico's 32", w)
	}
	if err := st.Import(ctx, plainKeys(randomKeys(1))); err != nil {
		t.Fatalf("Import: %v", err)
	}
	if w, _ := st.ColumnWidth(ctx); w != seal.ColumnWidth {
		t.Errorf("after a sealed import aeskey is varchar(%d), want %d", w, seal.ColumnWidth)
	}
	if changed, err := st.Widen(ctx); changed || err != nil {
		t.Errorf("Widen on a wide column = %v, %v; want false, nil", changed, err)
	}
}

// TestStatusModes: Status counts and names every state.
func TestStatusModes(t *testing.T) {
	for _, tt := range []struct {
		st   sqlstore.Status
		want string
	}{
		{sqlstore.Status{}, "empty"},
		{sqlstore.Status{Empty: 3}, "empty"},
		{sqlstore.Status{Plaintext: 1}, "plaintext"},
		{sqlstore.Status{Sealed: map[string]int{"0123abcd": 2}}, "sealed"},
		{sqlstore.Status{Malformed: 1}, "sealed"},
		{sqlstore.Status{Plaintext: 1, Sealed: map[string]int{"0123abcd": 2}}, "mixed"},
	} {
		if got := tt.st.Mode(); got != tt.want {
			t.Errorf("%+v.Mode() = %q, want %q", tt.st, got, tt.want)
		}
	}
}
