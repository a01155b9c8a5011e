//go:build !linux

package yubipam

// asUser runs fn as is: changing only one thread's file-system identity is
// possible on Linux alone.
func asUser(uid, gid uint32, groups []uint32, fn func() error) error { return fn() }
