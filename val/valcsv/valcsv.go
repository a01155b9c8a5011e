// Package valcsv reads and writes the text formats YK-VAL's admin tools
// exchange: YubiKey info lines (ykval-export, ykval-import)
//
//	active,created,modified,yk_publicname,yk_counter,yk_use,yk_low,yk_high,nonce,notes
//
// client info lines (ykval-export-clients, ykval-import-clients)
//
//	id,active,created,secret,email,notes,otp
//
// and the lines the checksum tools hash.
//
// Lines are written as the PHP tools wrote them: fields joined by commas, the
// active flag as 0 or 1, no header. The PHP tools never quoted a field, so a
// comma in a note broke the line; here a field holding a comma, a double
// quote or a line break is quoted the CSV way, which YK-VAL's importers
// (PHP's fgetcsv) and ours both read back.
//
// Reading follows the PHP importers: CSV records, empty lines and records
// whose first field starts with '#' skipped. Unlike them, every field is
// checked before anything is imported, so a malformed line is an error that
// names the line rather than a half-done import: numbers must be decimal
// integers that fit the tables' INT columns, texts must fit their VARCHAR
// columns and hold no control characters. A YubiKey line may omit notes (the
// example in Yubico's own format documentation does) and a client line may
// omit email, notes and otp; omitted fields are empty.
package valcsv

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/ykstack/ykstack/val"
)

// Field names, in line order.
var (
	KeyFields    = []string{"active", "created", "modified", "yk_publicname", "yk_counter", "yk_use", "yk_low", "yk_high", "nonce", "notes"}
	ClientFields = []string{"id", "active", "created", "secret", "email", "notes", "otp"}
)

// ErrSyntax is wrapped by every error about malformed input.
var ErrSyntax = errors.New("valcsv: malformed line")

// FormatKey returns k as a YubiKey info line, without the line feed.
func FormatKey(k val.KeyState) string {
	return join(flag(k.Active), itoa(k.Created), itoa(k.Modified), k.PublicName,
		strconv.Itoa(k.Counter), strconv.Itoa(k.Use), strconv.Itoa(k.Low), strconv.Itoa(k.High), k.Nonce, k.Notes)
}

// FormatClient returns c as a client info line, without the line feed.
func FormatClient(c val.Client) string {
	return join(itoa(c.ID), flag(c.Active), itoa(c.Created), c.Secret, c.Email, c.Notes, c.OTP)
}

// ClientChecksumLine is the line ykval-checksum-clients hashes for c:
// id TAB active TAB secret LF, active as 0 or 1.
func ClientChecksumLine(c val.Client) string {
	return itoa(c.ID) + "\t" + flag(c.Active) + "\t" + c.Secret + "\n"
}

// KeyChecksumLine is the line ykval-checksum-deactivated hashes for k:
// yk_publicname TAB yk_counter TAB yk_use LF.
func KeyChecksumLine(k val.KeyState) string {
	return k.PublicName + "\t" + strconv.Itoa(k.Counter) + "\t" + strconv.Itoa(k.Use) + "\n"
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func join(fields ...string) string {
	var b strings.Builder
	for i, f := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		if !strings.ContainsAny(f, ",\"\r\n") {
			b.WriteString(f)
			continue
		}
		b.WriteByte('"')
		b.WriteString(strings.ReplaceAll(f, `"`, `""`))
		b.WriteByte('"')
	}
	return b.String()
}

// ParseKey parses the fields of a YubiKey info line.
func ParseKey(fields []string) (val.KeyState, error) {
	if len(fields) != len(KeyFields) && len(fields) != len(KeyFields)-1 {
		return val.KeyState{}, fmt.Errorf("%w: %d fields, want %d (%s)", ErrSyntax, len(fields), len(KeyFields), strings.Join(KeyFields, ","))
	}
	p := parser{fields: fields, names: KeyFields}
	k := val.KeyState{
		Active:     p.flag(0),
		Created:    p.int(1),
		Modified:   p.int(2),
		PublicName: p.publicName(3),
		Counter:    int(p.int(4)),
		Use:        int(p.int(5)),
		Low:        int(p.int(6)),
		High:       int(p.int(7)),
		Nonce:      p.text(8, 40),
		Notes:      p.text(9, 100),
	}
	return k, p.err
}

// ParseClient parses the fields of a client info line.
func ParseClient(fields []string) (val.Client, error) {
	if len(fields) < 4 || len(fields) > len(ClientFields) {
		return val.Client{}, fmt.Errorf("%w: %d fields, want %d (%s)", ErrSyntax, len(fields), len(ClientFields), strings.Join(ClientFields, ","))
	}
	p := parser{fields: fields, names: ClientFields}
	c := val.Client{
		ID:      p.int(0),
		Active:  p.flag(1),
		Created: p.int(2),
		Secret:  p.text(3, 60),
		Email:   p.text(4, 255),
		Notes:   p.text(5, 100),
		OTP:     p.text(6, 100),
	}
	if p.err == nil && c.ID < 0 {
		p.fail(0, "negative")
	}
	return c, p.err
}

// parser checks fields one by one and keeps the first error.
type parser struct {
	fields, names []string
	err           error
}

func (p *parser) fail(i int, problem string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s %q: %s", ErrSyntax, p.names[i], p.fields[i], problem)
	}
}

// get returns field i, or "" when the line omits it.
func (p *parser) get(i int) string {
	if i < len(p.fields) {
		return p.fields[i]
	}
	return ""
}

func (p *parser) flag(i int) bool {
	b, err := strconv.ParseBool(strings.TrimSpace(p.get(i)))
	if err != nil {
		p.fail(i, "not 0 or 1")
	}
	return b
}

// int parses a decimal integer in the range of an SQL INT.
func (p *parser) int(i int) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(p.get(i)), 10, 32)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			p.fail(i, "out of range")
		} else {
			p.fail(i, "not a decimal integer")
		}
	}
	return n
}

func (p *parser) text(i, max int) string {
	s := p.get(i)
	switch {
	case len(s) > max:
		p.fail(i, fmt.Sprintf("longer than %d bytes", max))
	case !utf8.ValidString(s):
		p.fail(i, "not UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		p.fail(i, "control character")
	}
	return s
}

func (p *parser) publicName(i int) string {
	s := p.get(i)
	switch {
	case s == "":
		p.fail(i, "empty")
	case len(s) > 16:
		p.fail(i, "longer than 16 bytes")
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }):
		p.fail(i, "not printable ASCII")
	}
	return s
}

// LineError is a malformed record and the line it starts on.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

func (e *LineError) Unwrap() error { return e.Err }

// read calls parse for every record of r that is not a comment.
func read(r io.Reader, parse func([]string) error) error {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.Comment = '#'
	cr.ReuseRecord = true
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return &LineError{Line: pe.StartLine, Err: fmt.Errorf("%w: %w", ErrSyntax, pe.Err)}
			}
			return fmt.Errorf("valcsv: read: %w", err)
		}
		if strings.HasPrefix(rec[0], "#") {
			continue
		}
		if err := parse(rec); err != nil {
			line, _ := cr.FieldPos(0)
			return &LineError{Line: line, Err: err}
		}
	}
}

// ReadKeys reads YubiKey info lines up to the end of r. The error for a
// malformed line is a *LineError wrapping ErrSyntax.
func ReadKeys(r io.Reader) ([]val.KeyState, error) {
	var out []val.KeyState
	err := read(r, func(rec []string) error {
		k, err := ParseKey(rec)
		out = append(out, k)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReadClients reads client info lines up to the end of r. The error for a
// malformed line is a *LineError wrapping ErrSyntax.
func ReadClients(r io.Reader) ([]val.Client, error) {
	var out []val.Client
	err := read(r, func(rec []string) error {
		c, err := ParseClient(rec)
		out = append(out, c)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
