package valserver

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/ykstack/ykstack/internal/netallow"
	"github.com/ykstack/ykstack/otp"
	"github.com/ykstack/ykstack/otp/modhex"
	"github.com/ykstack/ykstack/val"
)

// SyncParams are the parameters of a sync request, in the order YK-VAL's
// ykval-sync.php reads them.
var SyncParams = []string{"modified", "otp", "nonce", "yk_publicname", "yk_counter", "yk_use", "yk_high", "yk_low"}

// BoundRequestField is the name under which the answer to a signed sync
// request binds that request: when the pool shares a key (Config.SyncKey),
// the answer's h is the HMAC under that key of the answer's fields plus the
// field h_request=<the request's h>, which is not written in the body. A
// sender thereby knows the answer comes from a peer holding the key, and
// answers this very request.
const BoundRequestField = "h_request"

// SyncState is a sync request that passed the receiver's checks.
type SyncState struct {
	OTP   string
	State val.KeyState // PublicName, Modified, Counter, Use, High, Low, Nonce
}

// SyncProblem is why a sync request was refused before the store was
// asked: the status to answer (signed with the empty key) and a reason for
// the log.
type SyncProblem struct {
	Status val.Status
	Reason string
}

// ParseSyncRequest checks a sync request's parameters as YK-VAL's
// ykval-sync.php does after the address check (spec 2.9, steps 3, 5 and 6),
// in its order: every value is trimmed of " \t\n\r\x00\x0b" and stripped of
// backslashes (of a repeated key the last counts), then
//
//   - each of modified, otp, nonce, yk_publicname, yk_counter, yk_use,
//     yk_high and yk_low must be present and non-empty,
//   - modified must be digits, and yk_counter, yk_use, yk_high and yk_low
//     digits or exactly "-1",
//   - otp must be 32 to 48 modhex characters, yk_publicname 1 to 16 and
//     nonce 16 to 40 ASCII letters and digits;
//
// anything else is MISSING_PARAMETER. One check is ours: numbers beyond
// the database's 32-bit INT columns are refused too (YK-VAL handed them to
// the database, which refused or clipped them).
func ParseSyncRequest(q url.Values) (SyncState, *SyncProblem) {
	get := func(key string) string {
		vs := q[key]
		if len(vs) == 0 {
			return ""
		}
		return strings.ReplaceAll(strings.Trim(vs[len(vs)-1], " \t\n\r\x00\x0b"), `\`, "")
	}
	v := map[string]string{}
	for _, p := range SyncParams {
		v[p] = get(p)
		if v[p] == "" {
			return SyncState{}, &SyncProblem{val.StatusMissingParameter, p + " is missing"}
		}
	}
	var s SyncState
	nums := []struct {
		name     string
		minusOne bool
		dst      *int64
	}{
		{"modified", false, &s.State.Modified},
		{"yk_counter", true, nil}, {"yk_use", true, nil}, {"yk_high", true, nil}, {"yk_low", true, nil},
	}
	ints := map[string]int{}
	for _, n := range nums {
		x := v[n.name]
		var value int64
		switch {
		case n.minusOne && x == "-1":
			value = -1
		case digits(x):
			var err error
			value, err = strconv.ParseInt(x, 10, 64)
			if err != nil || value > math.MaxInt32 {
				return SyncState{}, &SyncProblem{val.StatusMissingParameter, n.name + " is out of range"}
			}
		default:
			return SyncState{}, &SyncProblem{val.StatusMissingParameter, n.name + " is not a number"}
		}
		if n.dst != nil {
			*n.dst = value
		} else {
			ints[n.name] = int(value)
		}
	}
	s.State.Counter, s.State.Use, s.State.High, s.State.Low = ints["yk_counter"], ints["yk_use"], ints["yk_high"], ints["yk_low"]
	s.OTP, s.State.PublicName, s.State.Nonce = v["otp"], v["yk_publicname"], v["nonce"]
	switch {
	case !val.ValidOTP(s.OTP):
		return SyncState{}, &SyncProblem{val.StatusMissingParameter, "otp is not 32 to 48 modhex characters"}
	case len(s.State.PublicName) > otp.MaxPublicIDLen || !modhex.Valid(s.State.PublicName):
		return SyncState{}, &SyncProblem{val.StatusMissingParameter, "yk_publicname is not 1 to 16 modhex characters"}
	case len(s.State.Nonce) < val.MinNonceLen || len(s.State.Nonce) > val.MaxNonceLen || !alnumOnly(s.State.Nonce):
		return SyncState{}, &SyncProblem{val.StatusMissingParameter, "nonce is not 16 to 40 letters and digits"}
	}
	return s, nil
}

func alnumOnly(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return s != ""
}

// syncHandler serves /wsapi/2.0/sync, the receiving end of replication.
type syncHandler struct {
	s     *Server
	allow *netallow.List
	key   []byte // the pool key; nil: requests are not signed
}

// syncAnswer is what one sync request came to.
type syncAnswer struct {
	status val.Status
	extras []val.Field
	bind   string // the request's h when the answer is signed with the pool key
	state  SyncState
	known  bool // state is set
	reason string
	err    error
}

func (h syncHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ip := remoteIP(r)
	a := &syncAnswer{}
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			h.s.log.Error("valserver: panic answering a sync request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			*a = syncAnswer{status: val.StatusBackendError, err: errors.New("valserver: panic")}
			h.answer(w, r, a, ip, start)
		}
	}()
	h.sync(r, a)
	h.answer(w, r, a, ip, start)
}

// answer writes a's response: signed with the empty key, as YK-VAL signs
// every sync answer, or with the pool key bound to the request.
func (h syncHandler) answer(w http.ResponseWriter, r *http.Request, a *syncAnswer, ip string, start time.Time) {
	resp := val.Response{Status: a.status, Time: h.s.now(), Extras: a.extras}
	var body []byte
	if a.bind != "" {
		body = signBound(resp, h.key, a.bind)
	} else {
		body = resp.Format(nil)
	}
	w.Header()["Content-Type"] = contentType
	w.Write(body)
	h.s.m.syncReceived.WithLabelValues(string(a.status)).Inc()

	level := slog.LevelInfo
	if a.status == val.StatusBackendError {
		level = slog.LevelError
	}
	ctx := r.Context()
	if !h.s.log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{slog.String("status", string(a.status))}
	if a.known {
		attrs = append(attrs, slog.String("public_id", a.state.State.PublicName),
			slog.Int("counter", a.state.State.Counter), slog.Int("use", a.state.State.Use),
			slog.String("nonce", a.state.State.Nonce), slog.Int64("modified", a.state.State.Modified))
	}
	if a.reason != "" {
		attrs = append(attrs, slog.String("reason", a.reason))
	}
	if a.err != nil {
		attrs = append(attrs, slog.String("err", a.err.Error()))
	}
	attrs = append(attrs, slog.String("ip", ip), slog.Duration("took", time.Since(start)))
	h.s.log.LogAttrs(ctx, level, "sync", attrs...)
}

// signBound formats resp with the signature of its fields plus the bound
// request's h under key.
func signBound(resp val.Response, key []byte, requestH string) []byte {
	body := resp.Format(nil)
	fields := []val.Field{{Key: "status", Value: string(resp.Status)}, {Key: "t", Value: val.FormatTime(resp.Time)}}
	fields = append(fields, resp.Extras...)
	fields = append(fields, val.Field{Key: BoundRequestField, Value: requestH})
	_, rest, _ := strings.Cut(string(body), "\r\n")
	return []byte("h=" + val.Sign(key, fields) + "\r\n" + rest)
}

// sync takes YK-VAL's steps in YK-VAL's order (spec 2.9).
func (h syncHandler) sync(r *http.Request, a *syncAnswer) {
	raw := r.URL.RawQuery
	// Step 1: PHP's empty() is true for "" and "0".
	if raw == "" || raw == "0" {
		a.status, a.reason = val.StatusMissingParameter, "empty query"
		return
	}
	// Step 2: the address.
	if !h.allow.ContainsHostPort(r.RemoteAddr) {
		h.s.m.refused(refusedNotAllowed)
		a.status, a.reason = val.StatusOperationNotAllowed, "address not in the sync allow-list"
		return
	}
	q := val.ParseQuery(raw)
	// Ours: the pool key, when the pool has one.
	if h.key != nil {
		sig := last(q, "h")
		var fields []val.Field
		for _, f := range val.FieldsFromValues(q) {
			if f.Key != "h" {
				fields = append(fields, f)
			}
		}
		if sig == "" || !val.Verify(h.key, fields, sig) {
			a.status, a.reason = val.StatusOperationNotAllowed, "sync request not signed with the pool key"
			return
		}
		a.bind = sig
	}
	// Steps 3, 5 and 6: the parameters.
	st, problem := ParseSyncRequest(q)
	if problem != nil {
		a.status, a.reason = problem.Status, problem.Reason
		return
	}
	a.state, a.known = st, true
	remote := st.State

	// Steps 4, 7 and 8: read (enrolling an unknown key) and update if
	// higher, as one atomic step.
	before, updated, err := h.s.store.SyncKey(r.Context(), remote, h.s.now().Unix())
	if err != nil {
		a.status, a.err = val.StatusBackendError, fmt.Errorf("sync key: %w", err)
		return
	}

	// Step 9: YK-VAL's warnings.
	h.warn(r, before, remote, updated)

	// Step 10: a disabled key. Its counters were updated all the same.
	if !before.Active {
		a.status, a.reason = val.StatusBadOTP, "key is disabled"
		return
	}
	// Step 11: the state before the update.
	a.status = val.StatusOK
	a.extras = []val.Field{
		{Key: "modified", Value: strconv.FormatInt(before.Modified, 10)},
		{Key: "nonce", Value: before.Nonce},
		{Key: "yk_publicname", Value: remote.PublicName},
		{Key: "yk_counter", Value: strconv.Itoa(before.Counter)},
		{Key: "yk_use", Value: strconv.Itoa(before.Use)},
		{Key: "yk_high", Value: strconv.Itoa(before.High)},
		{Key: "yk_low", Value: strconv.Itoa(before.Low)},
	}
}

// warn logs what YK-VAL logs when comparing a sync request with the local
// state (never the OTP).
func (h syncHandler) warn(r *http.Request, before, remote val.KeyState, updated bool) {
	log := h.s.log.With("public_id", remote.PublicName, "ip", remoteIP(r))
	if remote.Pos().Less(before.Pos()) {
		log.Warn("sync: the remote server is out of sync (its counters are below ours)",
			"local_counter", before.Counter, "local_use", before.Use, "remote_counter", remote.Counter, "remote_use", remote.Use)
	}
	if before.Pos() == remote.Pos() {
		if remote.Modified == before.Modified && remote.Nonce == before.Nonce {
			log.Info("sync: request unnecessarily sent (we already had this OTP from it)")
		}
		if remote.Modified != before.Modified && remote.Nonce == before.Nonce {
			if d := remote.Modified - before.Modified; d < -1 || d > 1 {
				log.Warn("sync: possible replay: two events at different times have the same counters and nonce", "delta_s", d)
			}
		}
		if remote.Nonce != before.Nonce {
			log.Warn("sync: the remote server was asked to validate an OTP we had already validated",
				"counter", remote.Counter, "use", remote.Use)
		}
	}
	if !before.Active {
		log.Warn("sync: request for a disabled key (counters updated; answering BAD_OTP): check the pool's key states",
			"updated", updated)
	}
}
