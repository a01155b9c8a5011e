package yubipam

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
)

// Match is the outcome of looking up a token ID for a user.
type Match int

// The outcomes of a token lookup.
const (
	// NoTokens: the user has no token configured at all.
	NoTokens Match = iota
	// NotListed: the user has tokens, but not this one.
	NotListed
	// Listed: the token belongs to the user.
	Listed
)

// String returns "no tokens", "not listed" or "listed".
func (m Match) String() string {
	switch m {
	case NoTokens:
		return "no tokens"
	case NotListed:
		return "not listed"
	case Listed:
		return "listed"
	}
	return fmt.Sprintf("Match(%d)", int(m))
}

// Mapping tells which token IDs belong to which user. An error means the
// lookup itself failed (the module answers PAM_AUTHINFO_UNAVAIL).
type Mapping interface {
	// Lookup checks id for user. With anyID true it only asks whether
	// the user has any token (Listed if so, NoTokens if not) and ignores id.
	Lookup(ctx context.Context, user, id string, anyID bool) (Match, error)
}

// ParseMapping reads a token mapping file ("user:id1:id2:..." lines, the
// format of authfile= and of ~/.yubico/authorized_yubikeys) and judges id
// for user, exactly as the original does:
//   - a line whose first character is '#' is a comment;
//   - fields are separated by ':' and empty fields are skipped (so
//     "user::id" and a trailing ':' work, and a leading ':' is ignored);
//   - the first field is the user name, compared exactly;
//   - ids are compared exactly (a '\r' or blank stays part of the id);
//   - a user may have several lines; all are read.
//
// With anyID true the result is Listed when the user has a line at all
// (even one without ids), NoTokens otherwise. Lines of any length are read
// whole (the original splits lines longer than 1023 bytes).
func ParseMapping(r io.Reader, user, id string, anyID bool) (Match, error) {
	br := bufio.NewReader(r)
	result := NoTokens
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			if m := matchLine(strings.TrimSuffix(line, "\n"), user, id, anyID); m > result {
				result = m
				if m == Listed {
					return Listed, nil
				}
			}
		}
		if err == io.EOF {
			return result, nil
		}
		if err != nil {
			return NoTokens, fmt.Errorf("yubipam: reading token mapping: %w", err)
		}
	}
}

// matchLine judges one line of a mapping file.
func matchLine(line, user, id string, anyID bool) Match {
	if strings.HasPrefix(line, "#") {
		return NoTokens
	}
	var fields []string
	for f := range strings.SplitSeq(line, ":") {
		if f != "" {
			fields = append(fields, f)
		}
	}
	if len(fields) == 0 || fields[0] != user {
		return NoTokens
	}
	if anyID {
		return Listed
	}
	for _, f := range fields[1:] {
		if f == id {
			return Listed
		}
	}
	return NotListed
}

// FileMapping is the central mapping file (authfile=).
type FileMapping struct{ Path string }

// Lookup opens the file (close-on-exec; it must be a regular file) and
// judges id for user. The file is closed on every path.
func (m FileMapping) Lookup(_ context.Context, user, id string, anyID bool) (Match, error) {
	return lookupFile(m.Path, user, id, anyID, false)
}

// lookupFile reads a mapping file. With missingOK an absent file (ENOENT)
// means NoTokens.
func lookupFile(path, user, id string, anyID, missingOK bool) (Match, error) {
	f, err := openRegular(path, syscall.O_RDONLY)
	if err != nil {
		if missingOK && errors.Is(err, os.ErrNotExist) {
			return NoTokens, nil
		}
		return NoTokens, err
	}
	defer f.Close()
	return ParseMapping(f, user, id, anyID)
}

// openRegular opens path with O_CLOEXEC|O_NOCTTY plus flag and checks that
// it is a regular file.
func openRegular(path string, flag int) (*os.File, error) {
	fd, err := syscall.Open(path, flag|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, flag|syscall.O_CLOEXEC|syscall.O_NOCTTY, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("yubipam: %s: not a regular file", path)
	}
	return f, nil
}
