// Package flagfile reads a command's settings from a configuration file
// whose lines are named like the command's long flags:
//
//	# ykvald.conf
//	listen       = 0.0.0.0:8080
//	sync-peer    = https://val2.example.com/wsapi/2.0/sync
//	sync-peer    = https://val3.example.com/wsapi/2.0/sync
//	sync-allow   = 192.0.2.0/24
//	queue-worker = false
//
// Each line is "NAME = VALUE": NAME is a long flag without its dashes, VALUE
// the rest of the line with surrounding blanks removed (enclose it in double
// quotes to keep blanks or a leading '#'; inside quotes \" and \\ stand for
// " and \). A repeatable flag takes one line per value. Blank lines and
// lines starting with '#' are ignored. A flag given on the command line
// wins over the file: all of the file's lines for it are ignored.
package flagfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"
)

// Setting is one line of a configuration file.
type Setting struct {
	Line  int
	Name  string
	Value string
}

// Parse reads the settings of a configuration file's contents and reports
// every malformed line at once.
func Parse(data []byte) ([]Setting, error) {
	var (
		out  []Setting
		errs []error
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff")
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("line %d: want NAME = VALUE", n))
			continue
		case name == "" || strings.HasPrefix(name, "-") || strings.ContainsAny(name, " \t\""):
			errs = append(errs, fmt.Errorf("line %d: %q is not a setting name (a long flag without its dashes)", n, name))
			continue
		}
		if strings.HasPrefix(value, `"`) {
			v, err := unquote(value)
			if err != nil {
				errs = append(errs, fmt.Errorf("line %d: %w", n, err))
				continue
			}
			value = v
		}
		out = append(out, Setting{Line: n, Name: name, Value: value})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// unquote reads a double-quoted value: \" and \\ are escapes, nothing may
// follow the closing quote.
func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			if i+1 == len(s) || (s[i+1] != '"' && s[i+1] != '\\') {
				return "", errors.New(`in quotes, a backslash must precede " or \`)
			}
			i++
			b.WriteByte(s[i])
		case '"':
			if i != len(s)-1 {
				return "", errors.New("text after the closing quote")
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("no closing quote")
}

// Options adjust Apply.
type Options struct {
	// IgnoreUnknown skips settings the flag set does not have, so that
	// several commands can share a file; otherwise they are errors.
	IgnoreUnknown bool
	// Reserved are flags a file may not set (say "config" and "help").
	Reserved []string
}

// Apply reads the file at path and sets the flags of fs it names that the
// command line did not set (fs.Changed). It reports every problem at once,
// each with the file name and line.
func Apply(fs *pflag.FlagSet, path string, o Options) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("flagfile: %w", err)
	}
	settings, err := Parse(data)
	if err != nil {
		return fmt.Errorf("flagfile: %s: %w", path, err)
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { onCommandLine[f.Name] = true })
	reserved := map[string]bool{}
	for _, r := range o.Reserved {
		reserved[r] = true
	}
	var errs []error
	for _, s := range settings {
		f := fs.Lookup(s.Name)
		switch {
		case reserved[s.Name]:
			errs = append(errs, fmt.Errorf("%s:%d: %q cannot be set in a file", path, s.Line, s.Name))
		case f == nil && o.IgnoreUnknown:
		case f == nil:
			errs = append(errs, fmt.Errorf("%s:%d: unknown setting %q", path, s.Line, s.Name))
		case onCommandLine[s.Name]:
		default:
			if err := fs.Set(s.Name, s.Value); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %s: %w", path, s.Line, s.Name, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("flagfile: %w", err)
	}
	return nil
}
