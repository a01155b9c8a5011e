package yubipam

import (
	"context"
	"errors"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseMapping(t *testing.T) {
	const file = "# comment\nfoo:vvincredible\ntest:cccccccfhcbe:ccccccbchvth:\n" +
		"#test:vvvvvvvvvvvv\n two:ccccccaaaaaa\ntwo:ccccccbbbbbb\n:lead:ccccccdddddd\n" +
		"crlf:cccccceeeeee\r\nsp:ccccccffffff \nempty:\nfoo::vvvvvvvvvvvv\nlast:cccccclast00"
	tests := []struct {
		user, id string
		anyID    bool
		want     Match
	}{
		{"foo", "vvincredible", false, Listed},
		{"foo", "vvvvvvvvvvvv", false, Listed}, // empty field skipped, second line counts
		{"foo", "", true, Listed},
		{"test", "cccccccfhcbe", false, Listed},
		{"test", "ccccccbchvth", false, Listed},    // trailing ':'
		{"test", "vvvvvvvvvvvv", false, NotListed}, // commented out
		{"test", "", false, NotListed},
		{"two", "ccccccbbbbbb", false, Listed},
		{"two", "ccccccaaaaaa", false, NotListed},  // " two" is another user
		{"lead", "ccccccdddddd", false, Listed},    // a leading ':' is skipped like strtok
		{"crlf", "cccccceeeeee", false, NotListed}, // "\r" stays in the id
		{"sp", "ccccccffffff", false, NotListed},
		{"empty", "", true, Listed},
		{"empty", "x", false, NotListed},
		{"last", "cccccclast00", false, Listed}, // no final newline
		{"nobody", "", true, NoTokens},
		{"nobody", "vvincredible", false, NoTokens},
		{"#test", "vvvvvvvvvvvv", false, NoTokens},
		{"", "", true, NoTokens},
	}
	for _, tt := range tests {
		got, err := ParseMapping(strings.NewReader(file), tt.user, tt.id, tt.anyID)
		if err != nil || got != tt.want {
			t.Errorf("ParseMapping(%q, %q, any=%v) = %v, %v; want %v", tt.user, tt.id, tt.anyID, got, err, tt.want)
		}
	}
	long := "u:" + strings.Repeat("cccccccccccc:", 200) + "vvvvvvvvvvvv\n"
	if got, _ := ParseMapping(strings.NewReader(long), "u", "vvvvvvvvvvvv", false); got != Listed {
		t.Errorf("ParseMapping(2.6 kB line) = %v, want listed", got)
	}
	if _, err := ParseMapping(iotest.ErrReader(errors.New("boom")), "u", "x", false); err == nil {
		t.Errorf("ParseMapping(failing reader) returned no error")
	}
}

func FuzzParseMapping(f *testing.F) {
	f.Add("foo:vvincredible\n#x\nbar::a:b:\n", "foo", "vvincredible")
	f.Add(":::\n\n#\n", "", "")
	f.Fuzz(func(t *testing.T, file, user, id string) {
		m, err := ParseMapping(strings.NewReader(file), user, id, false)
		if err != nil {
			t.Fatal(err)
		}
		any, _ := ParseMapping(strings.NewReader(file), user, "", true)
		if m != NoTokens && any != Listed {
			t.Fatalf("ParseMapping: %v for id but %v for any", m, any)
		}
		if m == Listed && (id == "" || strings.ContainsAny(id, ":\n")) {
			t.Fatalf("ParseMapping listed impossible id %q", id)
		}
	})
}

func TestUserFileMapping(t *testing.T) {
	home := t.TempDir()
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	lookup := func(name string) (*user.User, error) {
		switch name {
		case "bob", "mallory":
			u := *me
			u.Username, u.HomeDir = name, home
			return &u, nil
		case "nohome":
			u := *me
			u.HomeDir = ""
			return &u, nil
		}
		return nil, user.UnknownUserError(name)
	}
	m := UserFileMapping{LookupUser: lookup}
	ctx := context.Background()

	// No file yet: no tokens (not an error).
	if got, err := m.Lookup(ctx, "bob", "", true); got != NoTokens || err != nil {
		t.Errorf("Lookup(no file) = %v, %v; want no tokens", got, err)
	}
	if err := os.MkdirAll(filepath.Join(home, ".yubico"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(home, UserFilePath), []byte("bob:"+bobID+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, id string
		anyID    bool
		want     Match
		wantErr  bool
	}{
		{"bob", bobID, false, Listed, false},
		{"bob", "", true, Listed, false},
		{"bob", "vvvvvvvvvvvv", false, NotListed, false},
		{"mallory", bobID, false, NoTokens, false}, // the file names another user
		{"ghost", bobID, false, NoTokens, true},    // unknown to the passwd database
		{"nohome", bobID, false, NoTokens, true},
	}
	for _, tt := range tests {
		got, err := m.Lookup(ctx, tt.user, tt.id, tt.anyID)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("Lookup(%q, %q) = %v, %v; want %v, error %v", tt.user, tt.id, got, err, tt.want, tt.wantErr)
		}
	}
	// A directory where the file should be is an error, not "no tokens".
	os.Remove(filepath.Join(home, UserFilePath))
	os.Mkdir(filepath.Join(home, UserFilePath), 0o700)
	if _, err := m.Lookup(ctx, "bob", bobID, false); err == nil {
		t.Errorf("Lookup(file is a directory) returned no error")
	}
}

// TestUserFilePrivileges checks that the per-user file is read with the
// user's identity: as root, a file only root may read is refused when it
// belongs to an unprivileged user's home.
func TestUserFilePrivileges(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root; this test needs root")
		}
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	home, err := os.MkdirTemp("", "ykpam-home")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	os.Chmod(home, 0o755)
	dir := filepath.Join(home, ".yubico")
	os.Mkdir(dir, 0o755)
	path := filepath.Join(home, UserFilePath)
	if err := os.WriteFile(path, []byte("nobody:"+bobID+"\n"), 0o600); err != nil { // root-owned, 0600
		t.Fatal(err)
	}
	lookup := func(string) (*user.User, error) { u := *nobody; u.HomeDir = home; return &u, nil }
	m := UserFileMapping{LookupUser: lookup}
	if got, err := m.Lookup(context.Background(), "nobody", bobID, false); err == nil {
		t.Errorf("Lookup(root-only file) = %v, nil; want a permission error", got)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if got, err := m.Lookup(context.Background(), "nobody", bobID, false); got != Listed || err != nil {
		t.Errorf("Lookup(user's own file) = %v, %v; want listed", got, err)
	}
	// A symbolic link to a file the user cannot read is refused too.
	secret := writeFile(t, "shadow", "nobody:"+bobID+"\n")
	os.Remove(path)
	os.Symlink(secret, path)
	if got, err := m.Lookup(context.Background(), "nobody", bobID, false); err == nil {
		t.Errorf("Lookup(link to a root-only file) = %v, nil; want a permission error", got)
	}
	// And the process got its identity back.
	if b, err := os.ReadFile(secret); err != nil || len(b) == 0 {
		t.Errorf("reading a root-only file after Lookup: %v", err)
	}
}
