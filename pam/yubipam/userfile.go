package yubipam

import (
	"context"
	"fmt"
	"os/user"
	"path/filepath"
	"strconv"
)

// UserFilePath is where a user's own mapping file lives, relative to the
// home directory.
const UserFilePath = ".yubico/authorized_yubikeys"

// UserFileMapping is the per-user mapping file ~/.yubico/authorized_yubikeys,
// used when no authfile and no LDAP is configured. The file holds lines like
// the central file; only lines naming the user count. An absent file means
// the user has no tokens.
type UserFileMapping struct {
	// LookupUser finds the user's account; nil means os/user.Lookup.
	LookupUser func(name string) (*user.User, error)
}

// Lookup reads the user's file with the user's file-system identity (when
// running as root), so that a user cannot make the module read a file they
// could not read themselves.
func (m UserFileMapping) Lookup(_ context.Context, name, id string, anyID bool) (Match, error) {
	lookup := m.LookupUser
	if lookup == nil {
		lookup = user.Lookup
	}
	u, err := lookup(name)
	if err != nil {
		return NoTokens, fmt.Errorf("yubipam: looking up user %q: %w", name, err)
	}
	if u.HomeDir == "" {
		return NoTokens, fmt.Errorf("yubipam: user %q has no home directory", name)
	}
	id64, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid64, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return NoTokens, fmt.Errorf("yubipam: user %q has a non-numeric uid or gid", name)
	}
	var groups []uint32
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	path := filepath.Join(u.HomeDir, UserFilePath)
	var match Match
	err = asUser(uint32(id64), uint32(gid64), groups, func() error {
		var err error
		match, err = lookupFile(path, name, id, anyID, true)
		return err
	})
	return match, err
}
