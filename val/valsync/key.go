package valsync

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MinKeyLen is the shortest pool key accepted, in bytes.
const MinKeyLen = 16

// ParseKey decodes a pool key written in base64 (standard alphabet, with
// or without padding; surrounding blanks ignored), e.g. the output of
// "openssl rand -base64 32". It must decode to at least MinKeyLen bytes.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		return nil, errors.New("valsync: the pool key is not base64")
	}
	if len(key) < MinKeyLen {
		return nil, fmt.Errorf("valsync: the pool key has %d bytes, want at least %d", len(key), MinKeyLen)
	}
	return key, nil
}

// ReadKeyFile reads a pool key from the first line of a file (ParseKey).
// The file must not be readable by every user.
func ReadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("valsync: pool key: %w", err)
	}
	if fi.Mode().Perm()&0o004 != 0 {
		return nil, fmt.Errorf("valsync: pool key file %s is readable by every user (mode %v): chmod o-r it", path, fi.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("valsync: pool key: %w", err)
	}
	line, _, _ := strings.Cut(string(data), "\n")
	key, err := ParseKey(line)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return key, nil
}
