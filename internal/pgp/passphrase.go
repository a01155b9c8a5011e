package pgp

import (
	"bytes"
	"errors"
	"fmt"
	"os"

	"golang.org/x/term"
)

// A PassphraseFunc returns the passphrase of a protected secret key; about
// describes the key. It is called at most once per Decrypt or Encrypt.
type PassphraseFunc func(about string) ([]byte, error)

// Errors about passphrases.
var (
	ErrNoPassphrase = errors.New("pgp: the secret key is protected by a passphrase and none was given")
	ErrPassphrase   = errors.New("pgp: wrong passphrase")
)

// PassphraseFile returns a PassphraseFunc that reads the first line of the
// file at path (without its line ending), as gpg's --passphrase-file does.
func PassphraseFile(path string) PassphraseFunc {
	return func(string) ([]byte, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("pgp: passphrase file: %w", err)
		}
		line, _, _ := bytes.Cut(data, []byte("\n"))
		return bytes.TrimSuffix(line, []byte("\r")), nil
	}
}

// TerminalPassphrase returns a PassphraseFunc that asks on the terminal
// device tty (normally "/dev/tty", never standard input, which may carry the
// message), with echo off. Where tty cannot be opened, as under cron or
// systemd, it fails with an error wrapping ErrNoPassphrase.
func TerminalPassphrase(tty string) PassphraseFunc {
	return func(about string) ([]byte, error) {
		f, err := os.OpenFile(tty, os.O_RDWR, 0)
		if err != nil {
			return nil, fmt.Errorf("%w (no terminal to ask on: %v)", ErrNoPassphrase, err)
		}
		defer f.Close()
		if !term.IsTerminal(int(f.Fd())) {
			return nil, fmt.Errorf("%w (%s is not a terminal)", ErrNoPassphrase, tty)
		}
		fmt.Fprintf(f, "Passphrase for %s: ", about)
		pass, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(f)
		if err != nil {
			return nil, fmt.Errorf("pgp: read passphrase: %w", err)
		}
		return pass, nil
	}
}
