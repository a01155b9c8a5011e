package yubipam

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

// asUser runs fn on one OS thread whose file-system uid, gid and
// supplementary groups are those of the user (what pam_modutil_drop_priv
// does), then restores them. Only that thread changes: the raw setfsuid,
// setfsgid and setgroups system calls are per thread on Linux. When the
// process is not root, fn runs unchanged (it cannot read more than its
// own identity allows anyway).
func asUser(uid, gid uint32, groups []uint32, fn func() error) error {
	if os.Geteuid() != 0 {
		return fn()
	}
	runtime.LockOSThread()
	// The thread is unlocked only if everything was restored; otherwise it
	// dies with the goroutine rather than serve others with the user's ids.
	oldGroups, err := threadGroups()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	oldUID := setfsuid(^uint32(0)) // -1 changes nothing and returns the current value
	oldGID := setfsgid(^uint32(0))
	restore := func() bool {
		ok := setThreadGroups(oldGroups) == nil
		setfsuid(oldUID)
		setfsgid(oldGID)
		return ok && setfsuid(^uint32(0)) == oldUID && setfsgid(^uint32(0)) == oldGID
	}
	if len(groups) == 0 {
		groups = []uint32{gid}
	}
	if err := setThreadGroups(groups); err != nil {
		if restore() {
			runtime.UnlockOSThread()
		}
		return fmt.Errorf("yubipam: setgroups: %w", err)
	}
	setfsgid(gid)
	setfsuid(uid)
	if setfsuid(^uint32(0)) != uid || setfsgid(^uint32(0)) != gid {
		if restore() {
			runtime.UnlockOSThread()
		}
		return fmt.Errorf("yubipam: could not take the user's file-system identity")
	}
	err = fn()
	if restore() {
		runtime.UnlockOSThread()
	} else {
		return fmt.Errorf("yubipam: could not restore the file-system identity")
	}
	return err
}

func setfsuid(id uint32) uint32 {
	r, _, _ := syscall.RawSyscall(syscall.SYS_SETFSUID, uintptr(id), 0, 0)
	return uint32(r)
}

func setfsgid(id uint32) uint32 {
	r, _, _ := syscall.RawSyscall(syscall.SYS_SETFSGID, uintptr(id), 0, 0)
	return uint32(r)
}

// threadGroups returns the calling thread's supplementary groups.
func threadGroups() ([]uint32, error) {
	n, _, e := syscall.RawSyscall(syscall.SYS_GETGROUPS, 0, 0, 0)
	if e != 0 {
		return nil, fmt.Errorf("yubipam: getgroups: %w", e)
	}
	g := make([]uint32, n+1)
	n, _, e = syscall.RawSyscall(syscall.SYS_GETGROUPS, uintptr(len(g)), uintptr(unsafe.Pointer(&g[0])), 0)
	if e != 0 {
		return nil, fmt.Errorf("yubipam: getgroups: %w", e)
	}
	return g[:n], nil
}

// setThreadGroups sets the calling thread's supplementary groups only
// (libc's setgroups would change every thread of the process).
func setThreadGroups(g []uint32) error {
	var p unsafe.Pointer
	if len(g) > 0 {
		p = unsafe.Pointer(&g[0])
	}
	_, _, e := syscall.RawSyscall(syscall.SYS_SETGROUPS, uintptr(len(g)), uintptr(p), 0)
	if e != 0 {
		return e
	}
	return nil
}
