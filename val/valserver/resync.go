package valserver

import (
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
)

// resyncBatch is how many queue entries one Enqueue transaction carries.
const resyncBatch = 1000

// resyncHandler serves /wsapi/2.0/resync?yk=<public id>|all: it queues the
// stored state of one key, or of every active key, for every peer of the
// pool, so that the queue worker sends it. Only the addresses in allow may
// call it; the answers are YK-VAL's LF-terminated lines.
type resyncHandler struct {
	s     *Server
	allow *netallow.List
}

func (h resyncHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := remoteIP(r)
	level, msg, queued := h.resync(w, r, ip)
	w.Header()["Content-Type"] = contentType
	io.WriteString(w, msg+"\n")
	h.s.log.LogAttrs(r.Context(), level, "resync", slog.String("answer", msg), slog.Int("queued", queued), slog.String("ip", ip))
}

// resync checks the request in YK-VAL's order, queues the keys' states and
// returns the level to log at, the answer line and how many entries it
// queued.
func (h resyncHandler) resync(w http.ResponseWriter, r *http.Request, ip string) (slog.Level, string, int) {
	if !h.allow.ContainsHostPort(r.RemoteAddr) {
		h.s.m.refused(refusedNotAllowed)
		return slog.LevelWarn, "ERROR Authorization failed (logged " + ip + ")", 0
	}
	yk := last(requestParams(w, r), "yk")
	if phpFalsy(yk) {
		return slog.LevelInfo, "ERROR Missing parameter", 0
	}
	if yk != "all" && (len(yk) > otp.MaxPublicIDLen || !modhex.Valid(yk)) {
		return slog.LevelInfo, "ERROR Unknown yk value: " + yk, 0
	}
	ctx := r.Context()
	var keys []val.KeyState
	if yk == "all" {
		err := h.s.store.EachKey(ctx, func(k val.KeyState) error {
			if k.Active { // inactive keys are not resynced, as in YK-VAL
				keys = append(keys, k)
			}
			return nil
		})
		if err != nil {
			h.s.log.Error("valserver: resync: list keys", "err", err)
			return slog.LevelError, "ERROR Database connect error (1)", 0
		}
	} else {
		k, err := h.s.store.KeyState(ctx, yk)
		switch {
		case errors.Is(err, val.ErrNotFound):
			return slog.LevelInfo, "ERROR Unknown yubikey: " + yk, 0
		case err != nil:
			h.s.log.Error("valserver: resync: read key", "public_id", yk, "err", err)
			return slog.LevelError, "ERROR Database connect error (1)", 0
		}
		keys = []val.KeyState{k}
	}
	if h.s.syncer == nil { // a single node: nobody to resync
		return slog.LevelInfo, "OK Initiated resync of " + yk, 0
	}
	var batch []val.QueueEntry
	queued := 0
	flush := func() error {
		if err := h.s.store.Enqueue(ctx, batch); err != nil {
			return err
		}
		queued += len(batch)
		batch = batch[:0]
		return nil
	}
	for _, k := range keys {
		// A key never accepted has nothing to replicate (its -1 values
		// would be refused by every peer), nor has one without a public
		// name (the sync protocol requires one).
		if k.Counter < 0 || k.Modified < 0 || k.PublicName == "" {
			continue
		}
		batch = append(batch, h.s.syncer.Queue(SyncRequest{
			OTP:      k.PublicName + strings.Repeat("c", val.TokenLen), // YK-VAL's fake OTP
			Accepted: k,
			Previous: k,
		})...)
		if len(batch) >= resyncBatch {
			if err := flush(); err != nil {
				h.s.log.Error("valserver: resync: queue", "err", err)
				return slog.LevelError, "ERROR Failed resync", queued
			}
		}
	}
	if err := flush(); err != nil {
		h.s.log.Error("valserver: resync: queue", "err", err)
		return slog.LevelError, "ERROR Failed resync", queued
	}
	return slog.LevelInfo, "OK Initiated resync of " + yk, queued
}
