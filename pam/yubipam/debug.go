package yubipam

import (
	"io"
	"log/slog"
	"syscall"
)

// openDebug returns the debug logger cfg asks for and a function that
// closes its file. Without debug it discards. debug_file is "stdout" (the
// default), "stderr" or the path of an existing regular file, opened for
// appending without following a symbolic link, without becoming the
// controlling terminal and close-on-exec (so no child inherits it). If the
// file cannot be used, debug output goes to fallback (the system log) and
// the reason is logged there.
func openDebug(cfg Config, env Env, fallback *slog.Logger) (*slog.Logger, func()) {
	nop := func() {}
	if !cfg.Debug {
		return slog.New(slog.DiscardHandler), nop
	}
	var w io.Writer
	closer := nop
	switch cfg.DebugFile {
	case "", "stdout":
		w = env.Stdout
	case "stderr":
		w = env.Stderr
	default:
		f, err := openRegular(cfg.DebugFile, syscall.O_WRONLY|syscall.O_APPEND|syscall.O_NOFOLLOW)
		if err != nil {
			fallback.Warn("debug_file cannot be used; debug output goes to the system log", "err", err)
			return fallback, nop
		}
		w, closer = f, func() { f.Close() }
	}
	if w == nil {
		return fallback, nop
	}
	h := slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(h).With("module", "pam_yubico"), closer
}
