package sqldb

import (
	"errors"
	"io/fs"
	"testing"
)

func TestParseDSN(t *testing.T) {
	tests := []struct {
		dsn     string
		dialect Dialect
		path    string // SQLite path, or MySQL net(addr)/db
		wantErr bool
	}{
		{"sqlite:/var/lib/ykstack/ksm.db", SQLite, "/var/lib/ykstack/ksm.db", false},
		{"sqlite://tmp/x.db", SQLite, "tmp/x.db", false},
		{"sqlite:k.db?_pragma=synchronous(NORMAL)", SQLite, "k.db?_pragma=synchronous(NORMAL)", false},
		{"/tmp/ksm.db", SQLite, "/tmp/ksm.db", false},
		{"ksm.db", SQLite, "ksm.db", false},
		{"mysql:u:p@tcp(127.0.0.1:3306)/ykksm", MySQL, "tcp(127.0.0.1:3306)/ykksm", false},
		{"u:p@tcp(db:3306)/ykval", MySQL, "tcp(db:3306)/ykval", false},
		{"DBI:mysql:dbname=ykksm;host=db.example.org", MySQL, "tcp(db.example.org:3306)/ykksm", false},
		{"dbi:mysql:dbname=ykksm;host=127.0.0.1;port=3307", MySQL, "tcp(127.0.0.1:3307)/ykksm", false},
		{"DBI:mysql:database=ykval;host=10.0.0.1", MySQL, "tcp(10.0.0.1:3306)/ykval", false},
		{"dbi:mysql:dbname=ykksm;mysql_socket=/tmp/m.sock", MySQL, "unix(/tmp/m.sock)/ykksm", false},
		{"DBI:SQLite:dbname=/tmp/k.db", SQLite, "/tmp/k.db", false},
		{"", "", "", true},
		{"sqlite:", "", "", true},
		{"dbi:Pg:dbname=ykksm", "", "", true},
		{"dbi:mysql", "", "", true},
		{"mysql:not a dsn", "", "", true},
	}
	for _, tt := range tests {
		got, err := ParseDSN(tt.dsn)
		if tt.wantErr {
			if !errors.Is(err, ErrDSN) {
				t.Errorf("ParseDSN(%q) error = %v, want ErrDSN", tt.dsn, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDSN(%q) error: %v", tt.dsn, err)
			continue
		}
		where := got.Path
		if got.Dialect == MySQL {
			where = got.MySQL.Net + "(" + got.MySQL.Addr + ")/" + got.MySQL.DBName
		}
		if got.Dialect != tt.dialect || where != tt.path {
			t.Errorf("ParseDSN(%q) = %s %q, want %s %q", tt.dsn, got.Dialect, where, tt.dialect, tt.path)
		}
	}
}

func TestSplitStatements(t *testing.T) {
	got := splitStatements("-- c\nCREATE TABLE a (\n x int\n);\n\nCREATE TABLE b (y int);\n")
	if len(got) != 2 || got[1] != "CREATE TABLE b (y int)" {
		t.Errorf("splitStatements = %q", got)
	}
}

func FuzzParseDSN(f *testing.F) {
	for _, s := range []string{"sqlite:/x.db", "DBI:mysql:dbname=a;host=b;port=1", "mysql:u@tcp(h:1)/d", "dbi:sqlite:dbname=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseDSN(s)
		if err != nil {
			if !errors.Is(err, ErrDSN) {
				t.Fatalf("ParseDSN(%q) error %v does not wrap ErrDSN", s, err)
			}
			return
		}
		if got.Dialect == MySQL && got.MySQL == nil || got.Dialect == SQLite && got.Path == "" {
			t.Fatalf("ParseDSN(%q) = %+v: incomplete target", s, got)
		}
	})
}

func TestRequireExisting(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		dsn  string
		want error
	}{
		{"sqlite:" + dir + "/missing.db", fs.ErrNotExist},
		{dir + "/missing.db?_pragma=x", fs.ErrNotExist},
		{"sqlite:" + dir, nil}, // exists (a directory; Open reports that)
		{"mysql:u@tcp(h:1)/d", nil},
		{"", nil},
	}
	for _, tt := range tests {
		if err := RequireExisting(tt.dsn); !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
			t.Errorf("RequireExisting(%q) = %v, want %v", tt.dsn, err, tt.want)
		}
	}
}
