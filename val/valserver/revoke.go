package valserver

import (
	"errors"
	"io"
	"log/slog"
	"net/http"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
)

// revokeHandler serves /wsapi/revoke?yk=<public id>&do=enable|disable: it
// sets a key's active flag in the local store (not replicated, as in
// YK-VAL). Only the addresses and networks of allow may call it; the
// answers are YK-VAL's LF-terminated lines.
type revokeHandler struct {
	s     *Server
	allow *netallow.List
}

func (h revokeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	status, msg := h.revoke(w, r, ip)
	w.Header()["Content-Type"] = contentType
	io.WriteString(w, msg+"\n")
	h.s.log.LogAttrs(r.Context(), status, "revoke", slog.String("answer", msg), slog.String("ip", ip))
}

// revoke checks the request in YK-VAL's order and returns the answer line
// and the level to log it at.
func (h revokeHandler) revoke(w http.ResponseWriter, r *http.Request, ip string) (slog.Level, string) {
	if !h.allow.ContainsHostPort(r.RemoteAddr) {
		h.s.m.refused(refusedNotAllowed)
		return slog.LevelWarn, "ERROR Authorization failed (logged " + ip + ")"
	}
	params := requestParams(w, r)
	yk, do := last(params, "yk"), last(params, "do")
	if phpFalsy(yk) || phpFalsy(do) {
		return slog.LevelInfo, "ERROR Missing parameter"
	}
	if len(yk) > otp.MaxPublicIDLen || !modhex.Valid(yk) {
		return slog.LevelInfo, "ERROR Unknown yk value: " + yk
	}
	if do != "enable" && do != "disable" {
		return slog.LevelInfo, "ERROR Unknown do value: " + do
	}
	err := h.s.store.SetActive(r.Context(), yk, do == "enable")
	switch {
	case errors.Is(err, val.ErrNotFound):
		return slog.LevelInfo, "ERROR Unknown yubikey: " + yk
	case err != nil:
		h.s.log.Error("valserver: revoke: store failed", "public_id", yk, "err", err)
		return slog.LevelError, "ERROR Could not " + do + " for " + yk
	}
	return slog.LevelInfo, "OK Processed " + yk + " with " + do
}

// phpFalsy reports whether PHP counts a request value as false.
func phpFalsy(s string) bool { return s == "" || s == "0" }
