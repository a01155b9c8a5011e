package valserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ykstack/ykstack/val"
)

type verifyHandler struct{ s *Server }

// verification is what one verify request found out, step by step: enough
// to answer it, count it and log it at any point.
type verification struct {
	status val.Status
	req    *val.Request  // nil until the request passed its checks
	key    []byte        // the client's key; nil (the empty key) until the client is loaded
	client int64         // the client's id, once the store returned the client
	known  bool          // whether client is set
	dec    val.Decrypted // the KSM's answer
	sl     int           // sync success rate for the response
	reason string        // why, for the log, when the status is not OK
	err    error         // the failure behind a BACKEND_ERROR

	refused    string // the server's limit that refused the request (ykval_refused_total), or ""
	httpStatus int    // the HTTP status, when not 200
}

func (h *verifyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if v := r.PathValue("version"); v != "" && !versionSegment(v) {
		http.NotFound(w, r)
		return
	}
	v := &verification{}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.s.log.Error("valserver: panic answering a verify request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			v.status, v.err = val.StatusBackendError, errors.New("valserver: panic")
			h.answer(w, r, v, start)
		}
	}()
	if !h.admit(w, r, v) {
		h.answer(w, r, v, start)
		return
	}
	defer h.s.verifySlots.release()
	v.status = h.verify(w, r, v)
	h.answer(w, r, v, start)
}

// admit applies the limits checked before the request is read: the rate
// limit of its source, then the cap on verifies at once. It reports
// whether the request may go on; then it holds a verify slot.
func (h *verifyHandler) admit(w http.ResponseWriter, r *http.Request, v *verification) bool {
	s := h.s
	if s.rate != nil && !s.rate.Allow(sourceKey(r)) {
		w.Header()["Retry-After"] = s.rateRetry
		v.status, v.refused, v.reason = val.StatusOperationNotAllowed, refusedRateLimited, "source address over its rate limit"
		return false
	}
	if !s.verifySlots.acquire(r.Context(), s.inflightWait) {
		w.Header()["Retry-After"] = retryOneSecond
		v.status, v.refused, v.httpStatus = val.StatusBackendError, refusedBusy, http.StatusServiceUnavailable
		v.reason = "too many verify requests at once"
		return false
	}
	return true
}

// retryOneSecond is the Retry-After of a 503.
var retryOneSecond = []string{"1"}

// versionSegment reports whether s is "<digits>.<digits>", the version part
// of /wsapi/N.M/verify.
func versionSegment(s string) bool {
	major, minor, ok := strings.Cut(s, ".")
	return ok && digits(major) && digits(minor)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// answer writes v's response, counts it and logs it.
func (h *verifyHandler) answer(w http.ResponseWriter, r *http.Request, v *verification, start time.Time) {
	resp := val.Response{Status: v.status, Time: h.s.now()}
	if v.req != nil {
		resp.Extras = v.req.Extras(v.status, v.sl, v.dec)
	}
	w.Header()["Content-Type"] = contentType
	if v.httpStatus != 0 {
		w.WriteHeader(v.httpStatus)
	}
	w.Write(resp.Format(v.key))
	h.s.m.verify.WithLabelValues(string(v.status), clientLabel(v.client, v.known)).Inc()
	if v.refused != "" {
		h.s.m.refused(v.refused)
	}
	h.s.m.duration.Observe(time.Since(start).Seconds())
	h.log(r, v, start)
}

// log writes the request's log line: never the OTP, only its public ID,
// and never a secret or a signature.
func (h *verifyHandler) log(r *http.Request, v *verification, start time.Time) {
	level := slog.LevelInfo
	switch {
	case v.refused == refusedRateLimited || v.refused == refusedClientRateLimited:
		level = slog.LevelDebug // a flood must not flood the log; the metric counts them
	case v.refused != "":
	case v.status == val.StatusBackendError:
		level = slog.LevelError
	}
	ctx := r.Context()
	if !h.s.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 12)
	attrs = append(attrs, slog.String("status", string(v.status)))
	if v.known {
		attrs = append(attrs, slog.Int64("client", v.client))
	}
	if v.req != nil {
		attrs = append(attrs,
			slog.String("public_id", v.req.PublicID()),
			slog.String("nonce", v.req.Nonce),
			slog.String("protocol", strconv.FormatFloat(v.req.Version, 'f', 1, 64)),
			slog.Bool("signed", v.req.Signed()))
	}
	if v.reason != "" {
		attrs = append(attrs, slog.String("reason", v.reason))
	}
	if v.refused != "" {
		attrs = append(attrs, slog.String("refused", v.refused))
	}
	if v.err != nil {
		attrs = append(attrs, slog.String("err", v.err.Error()))
	}
	attrs = append(attrs, slog.String("ip", remoteIP(r)), slog.Duration("took", time.Since(start)))
	h.s.log.LogAttrs(ctx, level, "verify", attrs...)
}

// verify takes YK-VAL's decisions in YK-VAL's order (see the package
// documentation) and returns the status to answer.
func (h *verifyHandler) verify(w http.ResponseWriter, r *http.Request, v *verification) val.Status {
	ctx := r.Context()
	s := h.s

	// Steps 1–6: the request itself. Answered with the empty key.
	req, problem := s.levels.ParseRequest(r.RequestURI, verifyParams(w, r))
	if problem != nil {
		v.reason = problem.Reason
		return problem.Status
	}
	v.req = &req // for the log; Extras gives early errors none

	// Steps 7–8: the client. Still the empty key.
	client, err := s.store.Client(ctx, req.ClientID)
	switch {
	case errors.Is(err, val.ErrNotFound):
		v.reason = "no active client " + strconv.FormatInt(req.ClientID, 10)
		return val.StatusNoSuchClient
	case err != nil:
		v.err = fmt.Errorf("load client: %w", err)
		return val.StatusBackendError
	}
	v.client, v.known = client.ID, true
	v.key = val.DecodeKey(client.Secret)

	// Step 9: the signature, when there is one.
	if !req.SignatureOK(v.key) {
		v.reason = "request signature does not match"
		return val.StatusBadSignature
	}

	// Ours: the client's rate limit. Signed with its key.
	if s.clientRate != nil && !s.clientRate.Allow(strconv.FormatInt(client.ID, 10)) {
		w.Header()["Retry-After"] = s.clientRetry
		v.refused, v.reason = refusedClientRateLimited, "client over its rate limit"
		return val.StatusOperationNotAllowed
	}

	// Steps 10–11: the KSM.
	if !s.ksmSlots.acquire(ctx, s.inflightWait) {
		w.Header()["Retry-After"] = retryOneSecond
		v.refused, v.httpStatus, v.reason = refusedKSMBusy, http.StatusServiceUnavailable, "too many KSM calls at once"
		return val.StatusBackendError
	}
	d, status := h.decrypt(ctx, req.OTP, v)
	s.ksmSlots.release()
	if status != val.StatusOK {
		return status
	}
	v.dec = d

	// Steps 12–15: the key's state and the replay checks.
	now := s.now().Unix()
	publicID := req.PublicID()
	next := val.KeyState{
		PublicName: publicID,
		Active:     true,
		Modified:   now,
		Counter:    int(d.Counter),
		Use:        int(d.Use),
		Low:        int(d.Low),
		High:       int(d.High),
		Nonce:      req.Nonce,
	}
	enrol := false // the key has no state yet: enrol it
	if s.checker != nil && s.syncer == nil {
		// Steps 12–17 in one store call: the read, the checks and the
		// compare-and-set in one transaction.
		var status val.Status
		var reason string
		prev, advanced, err := s.checker.CheckAndAdvance(ctx, publicID, func(prev val.KeyState) (val.KeyState, bool) {
			status, reason = judge(prev, next)
			return next, status == val.StatusOK
		})
		switch {
		case errors.Is(err, val.ErrNotFound):
			enrol = true // a key seen for the first time: below
		case err != nil:
			v.err = fmt.Errorf("check and store counters: %w", err)
			return val.StatusBackendError
		case status != val.StatusOK:
			v.reason = reason
			return status
		case !advanced:
			return h.lost(ctx, v, next)
		default:
			h.phishing(prev, next, now, client.ID)
			return val.StatusOK
		}
	}
	var prev val.KeyState
	err = val.ErrNotFound
	if !enrol {
		prev, err = s.store.KeyState(ctx, publicID)
	}
	if errors.Is(err, val.ErrNotFound) {
		prev, err = s.store.EnrollKey(ctx, publicID, now) // the KSM knows it: enrol it
	}
	if err != nil {
		v.err = fmt.Errorf("load key state: %w", err)
		return val.StatusBackendError
	}
	if status, reason := judge(prev, next); status != val.StatusOK {
		v.reason = reason
		return status
	}

	// Steps 16–17: the counter update, an atomic compare-and-set, and in
	// the same transaction the queue entries for the sync peers.
	var sreq SyncRequest
	if s.syncer != nil {
		sreq = h.syncRequest(req, prev, next)
		sreq.Queued = s.syncer.Queue(sreq)
	}
	advanced, err := s.store.AdvanceKeyQueued(ctx, next, sreq.Queued)
	switch {
	case err != nil:
		v.err = fmt.Errorf("store counters: %w", err)
		return val.StatusBackendError
	case !advanced:
		return h.lost(ctx, v, next)
	}

	// Step 18: replication.
	if s.syncer != nil {
		if status := h.sync(ctx, sreq, v); status != val.StatusOK {
			return status
		}
	}

	h.phishing(prev, next, now, client.ID)
	return val.StatusOK
}

// judge takes the decisions of steps 13–15 on the key's stored state prev
// and the state next an OTP would store: OK when next may be stored (the
// compare-and-set still has the last word), else the status and the reason
// for the log.
func judge(prev, next val.KeyState) (val.Status, string) {
	switch {
	case !prev.Active:
		return val.StatusBadOTP, "key is disabled"
	case next.Pos() == prev.Pos() && next.Nonce == prev.Nonce:
		return val.StatusReplayedRequest, "same OTP and nonce as the last accepted request"
	case !prev.Pos().Less(next.Pos()):
		return val.StatusReplayedOTP, "OTP is not after the last accepted one"
	}
	return val.StatusOK, ""
}

// lost answers a request whose compare-and-set another request won. If it
// was this very request (a client asks several servers sharing one
// database at once, with one nonce), it says so: clients keep waiting for a
// sibling's answer on REPLAYED_REQUEST, but give up on REPLAYED_OTP.
func (h *verifyHandler) lost(ctx context.Context, v *verification, next val.KeyState) val.Status {
	if cur, err := h.s.store.KeyState(ctx, next.PublicName); err == nil && cur.Pos() == next.Pos() && cur.Nonce == next.Nonce {
		v.reason = "same OTP and nonce accepted by a concurrent request"
		return val.StatusReplayedRequest
	}
	v.reason = "a concurrent request accepted this OTP or a later one"
	return val.StatusReplayedOTP
}

// phishing is step 19: the phishing test, logged only (as in YK-VAL).
func (h *verifyHandler) phishing(prev, next val.KeyState, now, client int64) {
	if delayed(prev, next, now) {
		h.s.log.Warn("OTP failed phishing test", "public_id", next.PublicName, "client", client,
			"counter", next.Counter, "use", next.Use, "elapsed_s", now-prev.Modified)
	}
}

// decrypt asks the KSM. A rejection is BAD_OTP, as in YK-VAL; a KSM that
// gives no verdict is BACKEND_ERROR, where YK-VAL answered BAD_OTP.
func (h *verifyHandler) decrypt(ctx context.Context, otp string, v *verification) (val.Decrypted, val.Status) {
	start := time.Now()
	d, err := h.s.ksm.Decrypt(ctx, otp)
	result := ksmOK
	status := val.StatusOK
	switch {
	case err == nil:
	case errors.Is(err, val.ErrKSMRejected) && !errors.Is(err, val.ErrKSMUnavailable):
		result, status = ksmRejected, val.StatusBadOTP
		v.reason = err.Error()
	default: // unavailable, or an error that says neither: fail closed
		result, status = ksmUnavailable, val.StatusBackendError
		v.err = err
	}
	h.s.m.ksm.WithLabelValues(result).Observe(time.Since(start).Seconds())
	return d, status
}

// syncRequest is what the Syncer is told of an accepted OTP, with the
// request's timeout bounded by the server's maximum.
func (h *verifyHandler) syncRequest(req val.Request, prev, next val.KeyState) SyncRequest {
	timeout := req.Timeout
	if timeout <= 0 || timeout > h.s.maxTimeout {
		timeout = h.s.maxTimeout
	}
	return SyncRequest{
		OTP:      req.OTP,
		Accepted: next,
		Previous: prev,
		Level:    req.SyncLevel,
		Timeout:  timeout,
	}
}

// sync replicates an accepted OTP and turns the pool's answers into a
// status: OK when enough peers agreed, REPLAYED_OTP when one had seen it,
// NOT_ENOUGH_ANSWERS otherwise.
func (h *verifyHandler) sync(ctx context.Context, sreq SyncRequest, v *verification) val.Status {
	res, err := h.s.syncer.Sync(ctx, sreq)
	if err != nil {
		v.err = fmt.Errorf("sync: %w", err)
		return val.StatusBackendError
	}
	v.sl = res.SL()
	if res.Valid >= res.Required {
		return val.StatusOK
	}
	if res.Replayed {
		v.reason = "a peer of the sync pool had seen this OTP or a later one"
		return val.StatusReplayedOTP
	}
	v.reason = fmt.Sprintf("%d of %d required peers confirmed", res.Valid, res.Required)
	return val.StatusNotEnoughAnswers
}
