package sealcli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestList(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{1, "a0"},
		{3, "a0, a1, a2"},
		{MaxListed, "a0, a1, a2, a3, a4, a5, a6, a7, a8, a9"},
		{MaxListed + 1, "a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 and 1 more"},
		{25, "a0, a1, a2, a3, a4, a5, a6, a7, a8, a9 and 15 more"},
	} {
		var names []string
		for i := range tc.n {
			names = append(names, "a"+string(rune('0'+i%10)))
		}
		if got := List(names); got != tc.want {
			t.Errorf("List(%d names) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

// fakeStore converts nothing and reports what it was given.
type fakeStore struct {
	status Status
	res    Result
	width  int
	closed bool
}

func (f *fakeStore) Database() string                         { return "test.db (mysql)" }
func (f *fakeStore) Status(context.Context) (Status, error)   { return f.status, nil }
func (f *fakeStore) ColumnWidth(context.Context) (int, error) { return f.width, nil }
func (f *fakeStore) Widen(context.Context) (bool, error)      { return true, nil }
func (f *fakeStore) Close() error                             { f.closed = true; return nil }
func (f *fakeStore) Convert(_ context.Context, _ Op, _ int, progress func(int, int)) (Result, error) {
	progress(f.res.Scanned, f.res.Changed)
	return f.res, nil
}

// keks is a configured KEK "new" with an old one "old".
type keks struct{}

func (keks) KeyID() string       { return "new" }
func (keks) Has(kid string) bool { return kid == "new" || kid == "old" }

var things = Tool{Things: "things", Column: "thing", Empty: "empty things", ColumnWidth: 100,
	Moved: "rows moved", Named: "rows ", Servers: "servers", Daemon: "thingd", PHP: "thing server"}

func TestConvert(t *testing.T) {
	for _, tc := range []struct {
		name    string
		op      Op
		res     Result
		status  Status
		wantOut string
		wantErr string
		wantLog string
	}{
		{name: "seal", op: Seal, res: Result{Scanned: 3, Changed: 3},
			status:  Status{Mode: "sealed", Sealed: map[string]int{"new": 3}, SealedTotal: 3},
			wantOut: "widened the thing column to varchar(100)\nsealed 3 things under KEK new (3 rows read)\nmode: sealed (plaintext 0, sealed 3)\nrestart the servers (thingd) now: from then on they refuse plaintext things\n",
			wantLog: "seal: 3 rows read, 3 changed\n"},
		{name: "seal failed and raced", op: Seal, res: Result{Scanned: 3, Changed: 1, Raced: 1, Failed: []string{"1"}},
			status:  Status{Mode: "mixed", Plaintext: 1, Sealed: map[string]int{"new": 1}, SealedTotal: 1},
			wantOut: "widened the thing column to varchar(100)\nsealed 1 things under KEK new (3 rows read)\nmode: mixed (plaintext 1, sealed 1)\n",
			wantErr: "seal: 1 things did not open (wrong KEK, or rows moved), left as they are: rows 1; 1 rows changed while being converted; run seal again"},
		{name: "seal plaintext left", op: Seal, res: Result{Scanned: 3, Changed: 2},
			status:  Status{Mode: "mixed", Plaintext: 1, Sealed: map[string]int{"new": 2}, SealedTotal: 2},
			wantOut: "widened the thing column to varchar(100)\nsealed 2 things under KEK new (3 rows read)\nmode: mixed (plaintext 1, sealed 2)\n",
			wantErr: "seal: 1 plaintext things remain (written during the run?); run seal again"},
		{name: "rotate", op: Rotate, res: Result{Scanned: 2, Changed: 2},
			status:  Status{Mode: "sealed", Sealed: map[string]int{"new": 2}, SealedTotal: 2},
			wantOut: "widened the thing column to varchar(100)\nre-sealed 2 things under KEK new (2 rows read)\nmode: sealed (plaintext 0, sealed 2)\nrestart the servers with --kek-file NEW alone; the old KEK seals nothing now\n"},
		{name: "rotate left", op: Rotate, res: Result{Scanned: 2, Changed: 0},
			status:  Status{Mode: "sealed", Sealed: map[string]int{"old": 1, "other": 1}, SealedTotal: 2},
			wantOut: "widened the thing column to varchar(100)\nre-sealed 0 things under KEK new (2 rows read)\nmode: sealed (plaintext 0, sealed 2)\n",
			wantErr: "rotate: things remain sealed 1 under KEK old, 1 under KEK other; run rotate again"},
		{name: "unseal", op: Unseal, res: Result{Scanned: 2, Changed: 2},
			status:  Status{Mode: "plaintext", Plaintext: 2},
			wantOut: "unsealed 2 things (2 rows read)\nmode: plaintext (plaintext 2, sealed 0)\nrestart the servers without --kek-file; the thing column stays wide, which the PHP thing server reads as well\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			st := &fakeStore{status: tc.status, res: tc.res}
			err := things.Convert(context.Background(), &stdout, &stderr,
				func(context.Context) (Store, error) { return st, nil },
				Conversion{Op: tc.op, KEKs: keks{}, Batch: 10, Verbose: tc.wantLog != ""})
			if got := stdout.String(); got != tc.wantOut {
				t.Errorf("stdout:\n%s\nwant:\n%s", got, tc.wantOut)
			}
			if got := stderr.String(); got != tc.wantLog {
				t.Errorf("stderr %q, want %q", got, tc.wantLog)
			}
			gotErr := ""
			if err != nil {
				gotErr = err.Error()
			}
			if gotErr != tc.wantErr {
				t.Errorf("error %q, want %q", gotErr, tc.wantErr)
			}
			if !st.closed {
				t.Error("store not closed")
			}
		})
	}
}

func TestConvertWrongKEK(t *testing.T) {
	wrong := errors.New("sealed under another KEK")
	tool := things
	tool.WrongKEK = wrong
	open := func(context.Context) (Store, error) { return nil, wrong }
	err := tool.Convert(context.Background(), io.Discard, io.Discard, open, Conversion{Op: Seal, KEKs: keks{}})
	if !errors.Is(err, wrong) || err.Error() != "sealed under another KEK (to move things to a new KEK use rotate with --old-kek-file)" {
		t.Errorf("seal: %v", err)
	}
	if err := tool.Convert(context.Background(), io.Discard, io.Discard, open, Conversion{Op: Rotate, KEKs: keks{}}); err != wrong {
		t.Errorf("rotate: %v, want it unchanged", err)
	}
}

func TestPrintStatus(t *testing.T) {
	st := &fakeStore{width: 32, status: Status{Mode: "mixed", Plaintext: 1, Malformed: 1, Empty: 2,
		Sealed: map[string]int{"old": 2, "other": 1}, SealedTotal: 3}}
	open := func(context.Context) (Store, error) { return st, nil }
	var out bytes.Buffer
	if err := things.PrintStatus(context.Background(), &out, open, keks{}); err != nil {
		t.Fatal(err)
	}
	want := `database: test.db (mysql)
mode: mixed
plaintext things: 1
sealed things: 3
  KEK old: 2 (the KEK of --old-kek-file)
  KEK other: 1 (not a configured KEK)
malformed sealed values: 1
empty things: 2
configured KEK: new (seals none of the things)
thing column: varchar(32): too narrow for sealed things (seal widens it)
`
	if out.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", out.String(), want)
	}
	if !st.closed {
		t.Error("store not closed")
	}
}

func TestWriteKEK(t *testing.T) {
	name := filepath.Join(t.TempDir(), "kek")
	var out bytes.Buffer
	if err := WriteKEK(&out, name, "secret\n", "kid"); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "wrote a new KEK with key ID kid to "+name+"\n" {
		t.Errorf("stdout %q", got)
	}
	fi, err := os.Stat(name)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("%v %v", fi, err)
	}
	if err := WriteKEK(&out, name, "other\n", "kid2"); err == nil || !strings.HasPrefix(err.Error(), "gen-kek: ") || !errors.Is(err, os.ErrExist) {
		t.Errorf("second write: %v", err)
	}
	if b, _ := os.ReadFile(name); string(b) != "secret\n" {
		t.Errorf("file overwritten: %q", b)
	}
	out.Reset()
	if err := WriteKEK(&out, "-", "secret\n", "kid"); err != nil || out.String() != "secret\n" {
		t.Errorf("-: %q %v", out.String(), err)
	}
}
